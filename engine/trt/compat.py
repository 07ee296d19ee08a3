"""What a TensorRT release can do, and the one build plan that follows from it.

TensorRT 8.5/8.6 (JetPack 5), 10.x (JetPack 6, desktop) and 11 (desktop
``pip install tensorrt``) differ in how precision is chosen:

* 8.5 .. 10: ``BuilderFlag.FP16``/``INT8`` exist; ``IInt8EntropyCalibrator2``
  exists (deprecated since 10.1).
* 9.0+: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: tensor types (and
  Q/DQ) in the ONNX decide precision; precision flags must not be set.
* 11: no FP16/INT8 flags and no calibrators at all; networks are always
  strongly typed (the ``STRONGLY_TYPED`` flag is kept but ignored, so a
  release without it and without precision flags counts as strongly typed).

The installed module is probed by feature checks (:func:`trt_features`), never
by comparing version strings; :func:`features_for_version` writes the same
facts down per release, so ``enet-build-engine --dry-run --trt-version 10.3``
plans a build for a TensorRT that is not installed here. :func:`plan_build`
turns features plus the request into one plan; it is pure, so every branch
is tested with stand-in modules and with the release table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

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


#: First release of each feature (NVIDIA's release notes and 10.x -> 11.x migration guide).
_TENSOR_API = Version("8.5")  # get_tensor_name / set_tensor_address / execute_async_v3
_MEMORY_POOLS = Version("8.4")  # IBuilderConfig.set_memory_pool_limit
_STRONGLY_TYPED_FLAG = Version("9.0")  # NetworkDefinitionCreationFlag.STRONGLY_TYPED
_NO_WEAK_TYPING = Version("11.0")  # BuilderFlag.FP16/INT8 and the INT8 calibrators removed


def features_for_version(version: str) -> TrtFeatures:
    """The features of TensorRT ``version`` (``"8.6"``, ``"10.3.0"``, ``"11"``), without importing it.

    Raises:
        EnetError: not a version number.
    """
    try:
        v = Version(str(version))
    except InvalidVersion:
        raise EnetError(f"--trt-version {version!r} is not a version number; e.g. 8.6, 10.3 or 11") from None
    weak = v < _NO_WEAK_TYPING
    st_flag = v >= _STRONGLY_TYPED_FLAG
    return TrtFeatures(version=v, fp16_flag=weak, int8_flag=weak, calibrators=weak,
                       strongly_typed=st_flag or not weak, strongly_typed_flag=st_flag,
                       tensor_api=v >= _TENSOR_API, memory_pools=v >= _MEMORY_POOLS)


@dataclass(frozen=True)
class BuildPlan:
    """How to build one engine.

    Attributes:
        onnx_precision: precision of the ONNX TensorRT parses (``fp32|fp16|int8``);
            ``int8`` is the calibrated Q/DQ ONNX whose accuracy was measured.
        strongly_typed: parse with ``STRONGLY_TYPED`` (types from the ONNX).
        flags: builder flags to set (``"FP16"``, ``"INT8"``).
        calibrator: the legacy entropy calibrator (implicit INT8), fed with a
            TensorRT calibration cache written from enet-rt's own ranges.
        notes: human-readable reasons, printed with the plan.
        blocked: why enet-rt cannot build this plan with this TensorRT (the
            plan is still shown by a dry run); None when it can.
    """

    onnx_precision: str
    strongly_typed: bool
    flags: tuple[str, ...] = ()
    calibrator: bool = False
    notes: tuple[str, ...] = field(default=())
    blocked: str | None = None


def plan_build(features: TrtFeatures, precision: str, *, int8_mode: str = "auto",
               onnx_precision: str = "fp32", dla: bool = False) -> BuildPlan:
    """Choose how TensorRT gets the requested precision.

    INT8 has one path on every TensorRT from 8.5: the calibrated Q/DQ ONNX
    (explicit quantization), strongly typed where the release has it, else
    with the ``INT8`` builder flag (8.5/8.6; no ``FP16`` flag, so the layers
    left in float stay float32 exactly as in the ONNX whose accuracy was
    measured). The legacy calibrator is used only when asked for
    (``int8_mode="calibrator"``) or below TensorRT 8.5, where it is the only
    INT8 path.

    Args:
        features: :func:`trt_features` or :func:`features_for_version`.
        precision: requested engine precision ``fp32|fp16|int8``.
        int8_mode: ``auto`` (Q/DQ from 8.5, the calibrator below), ``qdq`` or ``calibrator``.
        onnx_precision: precision of the ONNX the user passed.
        dla: building for a DLA core (needs FP16 or INT8).

    Raises:
        EnetError: the request contradicts itself or this TensorRT cannot do it.
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
    # Polygraphy (>= 0.49 needs TensorRT 8.5) and the runner's name-based tensor API
    blocked = None if features.tensor_api else (
        f"TensorRT {v} is older than 8.5: enet-rt builds with Polygraphy and runs engines through the "
        "name-based tensor API (execute_async_v3), both TensorRT 8.5 or newer (JetPack 5.1+)")
    plan = _precision_plan(features, precision, int8_mode, onnx_precision)
    return BuildPlan(plan.onnx_precision, plan.strongly_typed, plan.flags, plan.calibrator, plan.notes, blocked)


def _precision_plan(features: TrtFeatures, precision: str, int8_mode: str, onnx_precision: str) -> BuildPlan:
    v = features.version
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
    if int8_mode == "calibrator" or (int8_mode == "auto" and not features.tensor_api):
        if not (features.calibrators and features.int8_flag):
            raise EnetError(
                f"TensorRT {v} has no INT8 calibrator (removed in TensorRT 11); "
                "use the Q/DQ path: --int8 (--int8-mode auto or qdq)"
            )
        if onnx_precision != "fp32":
            raise EnetError("the calibrator path needs the float32 ONNX, not a Q/DQ one")
        why = ("asked for with --int8-mode calibrator" if int8_mode == "calibrator"
               else "the only INT8 path below TensorRT 8.5")
        flags = ("INT8", "FP16") if features.fp16_flag else ("INT8",)
        return BuildPlan("fp32", strongly_typed=False, flags=flags, calibrator=True, notes=(
            f"TensorRT {v}: implicit INT8 with the legacy entropy calibrator ({why}), fed with a TensorRT "
            "calibration cache written from enet-rt's measured ranges; TensorRT picks the INT8 layers itself, "
            "so this engine is not the Q/DQ model whose accuracy enet-rt measured",))
    if features.strongly_typed:
        return BuildPlan("int8", strongly_typed=True,
                         notes=(f"TensorRT {v}: strongly typed network from the calibrated INT8 Q/DQ ONNX",))
    if features.int8_flag:
        return BuildPlan("int8", strongly_typed=False, flags=("INT8",), notes=(
            f"TensorRT {v}: explicit quantization from the calibrated INT8 Q/DQ ONNX with the INT8 builder flag "
            "(no FP16 flag: layers outside Q/DQ stay float32, as in the measured ONNX)",))
    raise EnetError(f"TensorRT {v} offers neither strong typing nor an INT8 builder flag")
