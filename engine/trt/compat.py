"""What a TensorRT release can do, and the one build plan that follows from it.

TensorRT 8.5/8.6 (JetPack 5), 10.x (JetPack 6, desktop) and 11 (desktop
``pip install tensorrt``) differ in how precision is chosen:

* 8.5 .. 10: ``BuilderFlag.FP16``/``INT8`` exist.
* 9.0+: ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: tensor types (and
  Q/DQ) in the ONNX decide precision; precision flags must not be set.
* 11: no FP16/INT8 flags and no calibrators at all; networks are always
  strongly typed (the ``STRONGLY_TYPED`` flag is kept but ignored, so a
  release without it and without precision flags counts as strongly typed).
  11.0 to 11.3 have no DLA.

INT8 has one path on all of them: the calibrated Q/DQ ONNX whose accuracy
enet-rt measured (explicit quantization). TensorRT's legacy calibrators
(implicit INT8) are not used: every release enet-rt builds with (8.5+)
takes the Q/DQ model, and 11 has no calibrators.

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


@dataclass(frozen=True)
class TrtFeatures:
    """Capabilities of one TensorRT module."""

    version: Version
    fp16_flag: bool
    int8_flag: bool
    strongly_typed: bool
    strongly_typed_flag: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED exists (to set it)
    tensor_api: bool  # get_tensor_name / set_tensor_address / execute_async_v3 (8.5+)
    memory_pools: bool  # IBuilderConfig.set_memory_pool_limit (8.4+)
    dla: bool = True  # DLA cores can be targeted (not in TensorRT 11.0 .. 11.3)


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
    version = Version(str(trt.__version__))
    return TrtFeatures(
        version=version,
        fp16_flag=fp16,
        int8_flag=int8,
        strongly_typed=st_flag or not (fp16 or int8),
        strongly_typed_flag=st_flag,
        tensor_api=_has(trt, "ICudaEngine", "get_tensor_name") and _has(trt, "IExecutionContext", "execute_async_v3"),
        memory_pools=_has(trt, "IBuilderConfig", "set_memory_pool_limit"),
        dla=_has(trt, "DeviceType", "DLA") and not _NO_DLA[0] <= version < _NO_DLA[1],
    )


#: First release of each feature (NVIDIA's release notes and 10.x -> 11.x migration guide).
_TENSOR_API = Version("8.5")  # get_tensor_name / set_tensor_address / execute_async_v3
_MEMORY_POOLS = Version("8.4")  # IBuilderConfig.set_memory_pool_limit
_STRONGLY_TYPED_FLAG = Version("9.0")  # NetworkDefinitionCreationFlag.STRONGLY_TYPED
_NO_WEAK_TYPING = Version("11.0")  # BuilderFlag.FP16/INT8 and the INT8 calibrators removed
_NO_DLA = (Version("11.0"), Version("11.4"))  # releases without DLA support (issue 20)
#: The oldest TensorRT enet-rt builds with: Polygraphy >= 0.49 and the name-based tensor API.
OLDEST = _TENSOR_API


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
    return TrtFeatures(version=v, fp16_flag=weak, int8_flag=weak,
                       strongly_typed=st_flag or not weak, strongly_typed_flag=st_flag,
                       tensor_api=v >= _TENSOR_API, memory_pools=v >= _MEMORY_POOLS,
                       dla=not _NO_DLA[0] <= v < _NO_DLA[1])


@dataclass(frozen=True)
class BuildPlan:
    """How to build one engine.

    Attributes:
        onnx_precision: precision of the ONNX TensorRT parses (``fp32|fp16|int8``);
            ``int8`` is the calibrated Q/DQ ONNX whose accuracy was measured.
        strongly_typed: parse with ``STRONGLY_TYPED`` (types from the ONNX).
        flags: builder flags to set (``"FP16"``, ``"INT8"``).
        fp32_mask: weakly typed FP16 (TensorRT 8.5/8.6): the layers that
            compute the unpooling mask (space-to-depth, ReduceMax, Equal) are
            constrained to float32 (``layer.precision``, ``set_output_type``,
            ``OBEY_PRECISION_CONSTRAINTS``), so the ReduceMax and the Equal
            that looks for its result always see the same values.
        notes: human-readable reasons, printed with the plan.
        blocked: why enet-rt cannot build this plan with this TensorRT (the
            plan is still shown by a dry run); None when it can.
    """

    onnx_precision: str
    strongly_typed: bool
    flags: tuple[str, ...] = ()
    fp32_mask: bool = False
    notes: tuple[str, ...] = field(default=())
    blocked: str | None = None
    placement: tuple[str, ...] = field(default=())  # with --dla-core: what runs on the DLA and what on the GPU


def plan_build(features: TrtFeatures, precision: str, *, onnx_precision: str = "fp32",
               dla: bool = False) -> BuildPlan:
    """Choose how TensorRT gets the requested precision.

    INT8 has one path on every TensorRT from 8.5: the calibrated Q/DQ ONNX
    (explicit quantization), strongly typed where the release has it, else
    with the ``INT8`` builder flag (8.5/8.6; no ``FP16`` flag, so the layers
    left in float stay float32 exactly as in the ONNX whose accuracy was
    measured). Below 8.5 there is no INT8 (nor any build, :attr:`BuildPlan.blocked`).

    Args:
        features: :func:`trt_features` or :func:`features_for_version`.
        precision: requested engine precision ``fp32|fp16|int8``.
        onnx_precision: precision of the ONNX the user passed.
        dla: building for a DLA core (needs FP16 or INT8, and a TensorRT with DLA).

    Raises:
        EnetError: the request contradicts itself or this TensorRT cannot do it.
    """
    if precision not in PRECISIONS:
        raise EnetError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if onnx_precision != "fp32" and precision != onnx_precision:
        raise EnetError(
            f"the ONNX is already {onnx_precision}; building it as {precision} needs the float32 ONNX "
            "from enet-export"
        )
    if dla and precision == "fp32":
        raise EnetError("DLA runs FP16 or INT8 only; add --fp16 or --int8 to --dla-core")
    v = features.version
    if dla and not features.dla:
        raise EnetError(f"TensorRT {v} has no DLA support (TensorRT 11.0 to 11.3 dropped it); build for the GPU "
                        "without --dla-core, or with the TensorRT of JetPack 5.1/6.x")
    if precision == "int8" and not features.tensor_api:
        raise EnetError(f"INT8 needs TensorRT 8.5 or newer (JetPack 5.1+), this plan is for TensorRT {v}: "
                        "enet-rt's one INT8 path is the calibrated Q/DQ model")
    # Polygraphy (>= 0.49 needs TensorRT 8.5) and the runner's name-based tensor API
    blocked = None if features.tensor_api else (
        f"TensorRT {v} is older than 8.5: enet-rt builds with Polygraphy and runs engines through the "
        "name-based tensor API (execute_async_v3), both TensorRT 8.5 or newer (JetPack 5.1+)")
    plan = _precision_plan(features, precision, onnx_precision)
    placement: tuple[str, ...] = ()
    if dla:
        placement, dla_blocked = dla_placement(features, plan, precision)
        blocked = blocked or dla_blocked
    return BuildPlan(plan.onnx_precision, plan.strongly_typed, plan.flags, plan.fp32_mask, plan.notes, blocked,
                     placement)


#: First release whose DLA runs explicitly quantized (Q/DQ) networks. TensorRT 8.x's DLA chapter says DLA
#: does not support explicit quantization (INT8 on DLA there needs a calibrator or per-tensor dynamic ranges,
#: which enet-rt does not use: its one INT8 path is the calibrated Q/DQ ONNX), so with GPU fallback a Q/DQ
#: network built for DLA on 8.5/8.6 runs on the GPU. From 10.x the DLA takes Q/DQ INT8 (10.11 adds the parser
#: flag for asymmetric UINT8 Q/DQ on DLA); 11.0 to 11.3 have no DLA at all (:data:`_NO_DLA`).
_DLA_QDQ = Version("10.0")


def dla_placement(features: TrtFeatures, plan: BuildPlan, precision: str) -> tuple[tuple[str, ...], str | None]:
    """What runs where when building for a DLA core with this TensorRT: ``(lines, why blocked or None)``.

    DLA computes in FP16 or INT8 only; layers it cannot run go to the GPU (GPU fallback on). The lines
    say so for the plan at hand, so a dry run (``--trt-version 8.5 --dla-core 0 --int8``) shows what
    really runs on the DLA before a Jetson spends minutes building.
    """
    v = features.version
    fallback = "layers DLA does not support fall back to the GPU (TensorRT's build log, -v, lists them)"
    if precision == "int8":
        if v < _DLA_QDQ:
            why = (f"TensorRT {v}'s DLA does not run explicitly quantized (Q/DQ) networks, enet-rt's only INT8 "
                   "path: with GPU fallback the whole INT8 engine would run on the GPU, not the DLA; build for the "
                   "DLA with --fp16, or INT8 for the GPU without --dla-core (or use TensorRT 10, JetPack 6)")
            return (f"DLA: nothing of the INT8 Q/DQ network; every layer would run on the GPU (TensorRT {v})",), why
        return (f"DLA: the INT8 Q/DQ convolutions and what DLA supports around them (TensorRT {v} runs Q/DQ on DLA)",
                f"GPU: {fallback}"), None
    if plan.fp32_mask:
        return ("DLA: the FP16 layers DLA supports (convolutions, deconvolutions, pooling, activations, sums)",
                "GPU: the unpooling-mask layers pinned to float32 (DLA has no FP32), and " + fallback), None
    return ("DLA: the FP16 layers DLA supports (convolutions, deconvolutions, pooling, activations, sums)",
            f"GPU: {fallback}"), None


def _precision_plan(features: TrtFeatures, precision: str, onnx_precision: str) -> BuildPlan:
    v = features.version
    if precision == "fp32":
        return BuildPlan("fp32", strongly_typed=False, notes=("float32 engine",))
    if precision == "fp16":
        if features.strongly_typed:
            return BuildPlan("fp16", strongly_typed=True,
                             notes=(f"TensorRT {v}: strongly typed network from the FP16 ONNX",))
        if features.fp16_flag:
            mask = ("the unpooling mask layers (space-to-depth, ReduceMax, Equal) are constrained to float32, "
                    "so FP16 cannot make the Equal miss the ReduceMax's value")
            if onnx_precision == "fp32":
                return BuildPlan("fp32", strongly_typed=False, flags=("FP16",), fp32_mask=True,
                                 notes=(f"TensorRT {v}: no strong typing; FP16 builder flag on the FP32 ONNX", mask))
            return BuildPlan("fp16", strongly_typed=False, flags=("FP16",), fp32_mask=True,
                             notes=(f"TensorRT {v}: FP16 ONNX with the FP16 builder flag", mask))
        raise EnetError(f"TensorRT {v} offers neither strong typing nor an FP16 builder flag")
    # int8: the calibrated Q/DQ ONNX
    if features.strongly_typed:
        return BuildPlan("int8", strongly_typed=True,
                         notes=(f"TensorRT {v}: strongly typed network from the calibrated INT8 Q/DQ ONNX",))
    if features.int8_flag:
        return BuildPlan("int8", strongly_typed=False, flags=("INT8",), notes=(
            f"TensorRT {v}: explicit quantization from the calibrated INT8 Q/DQ ONNX with the INT8 builder flag "
            "(no FP16 flag: layers outside Q/DQ stay float32, as in the measured ONNX)",))
    raise EnetError(f"TensorRT {v} offers neither strong typing nor an INT8 builder flag")
