"""What the installed TensorRT can do, by feature checks (never version strings).

TensorRT 8.5/8.6 (JetPack 5), 10.x (JetPack 6, desktop) and 11 (desktop
``pip install tensorrt``) differ in how precision is chosen:

* 8.5 .. 10: ``BuilderFlag.FP16``/``INT8`` exist; ``IInt8EntropyCalibrator2``
  exists (deprecated since 10.1).
* 10.0+: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: tensor types (and
  Q/DQ) in the ONNX decide precision; precision flags must not be set.
* 11: no FP16/INT8 flags and no calibrators at all; networks are always
  strongly typed (the ``STRONGLY_TYPED`` flag is kept but ignored, so a
  release without it and without precision flags counts as strongly typed).

:func:`plan_build` turns those features plus the request into one plan; it is
pure, so every branch is tested here with stand-in modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from enet.errors import EnetError

PRECISIONS = ("fp32", "fp16", "int8")
INT8_MODES = ("auto", "qdq", "calibrator")


@dataclass(frozen=True)
class TrtFeatures:
    """Capabilities of one TensorRT module."""

    version: Version
    fp16_flag: bool
    int8_flag: bool
    calibrators: bool
    strongly_typed: bool
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists (to set it)
    tensor_api: bool  # get_tensor_name / set_tensor_address / execute_async_v3 (8.5+)
    memory_pools: bool  # IBuilderConfig.set_memory_pool_limit (8.4+)


def _has(obj: Any, *path: str) -> bool:
    for name in path:
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def trt_features(trt: Any) -> TrtFeatures:
    """Probe a ``tensorrt`` module (or a stand-in with the same attributes)."""
    fp16, int8 = _has(trt, "BuilderFlag", "FP16"), _has(trt, "BuilderFlag", "INT8")
    st_flag = _has(trt, "NetworkDefinitionCreationFlag", "STRONGLY_TYPED")
    return TrtFeatures(
        version=Version(str(trt.__version__)),
        fp16_flag=fp16,
        int8_flag=int8,
        calibrators=_has(trt, "IInt8EntropyCalibrator2"),
        strongly_typed=st_flag or not (fp16 or int8),
        strongly_typed_flag=st_flag,
        tensor_api=_has(trt, "ICudaEngine", "get_tensor_name") and _has(trt, "IExecutionContext", "execute_async_v3"),
        memory_pools=_has(trt, "IBuilderConfig", "set_memory_pool_limit"),
    )


@dataclass(frozen=True)
class BuildPlan:
    """How to build one engine.

    Attributes:
        onnx_precision: precision the ONNX to parse must carry (``fp32|fp16|int8``).
        strongly_typed: parse with ``STRONGLY_TYPED`` (types from the ONNX).
        flags: builder flags to set (``"FP16"``, ``"INT8"``).
        calibrator: use the legacy entropy calibrator (implicit INT8).
        notes: human-readable reasons, logged by the CLI.
    """

    onnx_precision: str
    strongly_typed: bool
    flags: tuple[str, ...] = ()
    calibrator: bool = False
    notes: tuple[str, ...] = field(default=())


def plan_build(features: TrtFeatures, precision: str, *, int8_mode: str = "auto",
               onnx_precision: str = "fp32", dla: bool = False) -> BuildPlan:
    """Choose how TensorRT gets the requested precision.

    Args:
        features: see :func:`trt_features`.
        precision: requested engine precision ``fp32|fp16|int8``.
        int8_mode: ``auto`` (legacy calibrator when TensorRT has one and the
            given ONNX is plain FP32, else Q/DQ), ``qdq`` or ``calibrator``.
        onnx_precision: precision of the ONNX the user passed.
        dla: building for a DLA core (needs FP16 or INT8).

    Raises:
        EnetError: the installed TensorRT cannot do what was asked.
    """
    if precision not in PRECISIONS:
        raise EnetError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if int8_mode not in INT8_MODES:
        raise EnetError(f"unknown INT8 mode {int8_mode!r}; choose one of {', '.join(INT8_MODES)}")
    if onnx_precision != "fp32" and precision != onnx_precision:
        raise EnetError(
            f"the ONNX is already {onnx_precision}; building it as {precision} needs the float32 ONNX "
            "from enet-export"
        )
    if dla and precision == "fp32":
        raise EnetError("DLA runs FP16 or INT8 only; add --fp16 or --int8 to --dla-core")
    v = features.version
    if not features.tensor_api:
        raise EnetError(
            f"TensorRT {v} lacks the name-based tensor API (execute_async_v3); TensorRT 8.5 or newer is needed "
            "(JetPack 5.1+)"
        )
    if precision == "fp32":
        return BuildPlan("fp32", strongly_typed=False, notes=("float32 engine",))
    if precision == "fp16":
        if features.strongly_typed:
            return BuildPlan("fp16", strongly_typed=True,
                             notes=(f"TensorRT {v}: strongly typed network from the FP16 ONNX",))
        if features.fp16_flag and onnx_precision == "fp32":
            return BuildPlan("fp32", strongly_typed=False, flags=("FP16",),
                             notes=(f"TensorRT {v}: no strong typing; FP16 builder flag on the FP32 ONNX",))
        if features.fp16_flag:
            return BuildPlan("fp16", strongly_typed=False, flags=("FP16",),
                             notes=(f"TensorRT {v}: FP16 ONNX with the FP16 builder flag",))
        raise EnetError(f"TensorRT {v} offers neither strong typing nor an FP16 builder flag")
    # int8
    want_calib = int8_mode == "calibrator" or (
        int8_mode == "auto" and onnx_precision == "fp32" and features.calibrators and features.int8_flag
    )
    if want_calib:
        if not (features.calibrators and features.int8_flag):
            raise EnetError(
                f"TensorRT {v} has no INT8 calibrator (removed in TensorRT 11); "
                "use the Q/DQ path: --int8 --int8-mode qdq"
            )
        if onnx_precision != "fp32":
            raise EnetError("the calibrator path needs the float32 ONNX, not a Q/DQ one")
        flags = ("INT8", "FP16") if features.fp16_flag else ("INT8",)
        return BuildPlan("fp32", strongly_typed=False, flags=flags, calibrator=True,
                         notes=(f"TensorRT {v}: implicit INT8 with the legacy entropy calibrator "
                                "(IInt8EntropyCalibrator2) and a calibration cache",))
    if features.strongly_typed:
        return BuildPlan("int8", strongly_typed=True,
                         notes=(f"TensorRT {v}: strongly typed network from the INT8 Q/DQ ONNX",))
    if features.int8_flag:
        # TRT 8.x explicit quantization: Q/DQ in the network and the INT8 flag;
        # FP16 lets the layers left unquantized run in half precision.
        flags = ("INT8", "FP16") if features.fp16_flag else ("INT8",)
        return BuildPlan("int8", strongly_typed=False, flags=flags,
                         notes=(f"TensorRT {v}: explicit quantization (Q/DQ ONNX) with the INT8 builder flag",))
    raise EnetError(f"TensorRT {v} offers neither strong typing nor an INT8 builder flag")
