"""TensorRT engines from ONNX, as plain functions: plan, build, verify.

* :func:`plan_engine`: everything one build will do, decided before
  TensorRT is touched (a dry run prints it for any TensorRT release,
  :func:`describe`, and a real build prints the same lines).
* :func:`build_engine`: carry out a plan: convert the ONNX when the plan
  needs the FP16 or the calibrated Q/DQ file, build with Polygraphy
  (:func:`build_engine_bytes`), compare the engine with ONNX Runtime on the
  dataset's val frames (:func:`enet.engine.trt.verify.verify_engine`), and only
  when it agrees with the float32 model (the gate, :data:`DEFAULT_MIN_AGREEMENT`) write engine and
  sidecar as one pair. An engine below the threshold fails the build and
  leaves nothing behind.

``enet-build-engine``, ``enet-bench`` and the first-run engine cache
(:mod:`enet.engine.trt.engine_cache`) all build through these functions, so an
engine and its sidecar are the same whoever built them.

Never run on a GPU in this project's CI (see docs/engines.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enet._lazy import require
from enet.engine.quant.convert import CalibrationSpec, convert_onnx
from enet.engine.runtime.onnx_info import (input_dims, load_onnx, output_roles, precision_of, read_meta, static_input_shape,
                                           unpool_mask_tensors)
from enet.engine.trt.compat import BuildPlan, TrtFeatures, plan_build, trt_features
from enet.engine.trt.verify import engine_frames, verify_engine
from enet.errors import EnetError, ShapeError

log = logging.getLogger(__name__)

_ONNX_LABEL = {"fp32": "float32", "fp16": "FP16", "int8": "calibrated INT8 Q/DQ"}
#: Val frames an engine is compared with ONNX Runtime on, by default.
DEFAULT_VERIFY_IMAGES = 5
#: The gate: the least per-pixel argmax agreement (percent) of an engine with the float32 model (ONNX
#: Runtime, CPU), on val frames (else calibration frames). Chosen from the calibrated INT8 Q/DQ model's own
#: agreement with the float32 model (ONNX Runtime, CPU, all 101 CamVid val frames): 98.39% of pixels, 96.81%
#: on its worst frame (the FP16 ONNX: 99.97%, worst frame 99.94%); 95 sits below the worst frame with room for
#: TensorRT's own kernels: an engine below it is broken or badly calibrated, not rounded (docs/engines.md
#: "The gate").
DEFAULT_MIN_AGREEMENT = 95.0


def converted_path(engine_path: str | os.PathLike[str], precision: str) -> Path:
    """Where the converted ONNX goes beside an engine: ``enet.engine`` -> ``enet.int8.onnx``.

    An engine already named for its precision keeps one: ``enet.int8.engine`` -> ``enet.int8.onnx``.
    """
    p = Path(engine_path)
    stem = p.stem[: -len(precision) - 1] if p.stem.lower().endswith(f".{precision}") else p.stem
    return p.with_name(f"{stem}.{precision}.onnx")


def installed_features() -> TrtFeatures:
    """Features of the installed ``tensorrt`` (raises MissingDependencyError without it)."""
    return trt_features(require("tensorrt"))


@dataclass(frozen=True)
class EngineJob:
    """One engine build, decided before TensorRT is touched.

    Attributes:
        model: the ONNX given (float32 from enet-export, or an already converted one).
        output: the engine path; the sidecar goes to ``<output>.json``.
        precision: ``fp32|fp16|int8``.
        features: the TensorRT the plan is for; ``installed`` says whether it is this machine's.
        plan: :class:`~enet.engine.trt.compat.BuildPlan`.
        given_precision: precision of ``model``.
        compiled: the ONNX TensorRT parses (``model`` or the converted file beside the engine).
        input_name, input_shape: the network input; ``dynamic``: its ONNX dims are not all fixed,
            so the build adds an optimization profile with ``min = opt = max = input_shape``.
        calib: calibration frames (INT8).
        verify_images, data_root: val frames (of the dataset at data_root) the engine is compared on (0: none).
        min_agreement: the gate, percent of pixels whose argmax must agree with ONNX Runtime.
        mask_tensors: weakly typed FP16 only: the unpooling mask tensors whose layers are pinned to float32.
    """

    model: Path
    output: Path
    precision: str
    features: TrtFeatures
    installed: bool
    plan: BuildPlan
    given_precision: str
    compiled: Path
    input_name: str
    input_shape: tuple[int, int, int, int]
    dynamic: bool
    calib: CalibrationSpec | None = None
    verify_images: int = DEFAULT_VERIFY_IMAGES
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    mask_tensors: tuple[str, ...] = ()
    data_root: Path | None = None
    dla_core: int | None = None
    workspace_mb: int | None = None
    timing_cache: Path | None = None

    @property
    def tensorrt_version(self) -> str:
        return str(self.features.version)


def plan_engine(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], *, precision: str = "fp32",
                features: TrtFeatures | None = None, calib: CalibrationSpec | None = None,
                batch: int | None = None, dla_core: int | None = None, workspace_mb: int | None = None,
                timing_cache: str | os.PathLike[str] | None = None,
                verify_images: int = DEFAULT_VERIFY_IMAGES, min_agreement: float = DEFAULT_MIN_AGREEMENT,
                data_root: str | os.PathLike[str] | None = None) -> EngineJob:
    """Decide a build (no TensorRT needed when ``features`` is given).

    Args:
        features: the TensorRT to plan for; default the installed one.
        batch: the batch of a dynamic-batch ONNX's optimization profile (default 1);
            must equal a static batch.
        min_agreement: the gate (percent, 0..100).

    Raises:
        EnetError: bad model or a request this TensorRT cannot do (a plan that
            enet-rt cannot *build* here is returned with ``plan.blocked`` set).
    """
    installed = features is None
    feats = features or installed_features()
    model, output = Path(onnx_path), Path(output)
    src = load_onnx(model)
    meta = read_meta(src, str(model))
    input_name, dims = input_dims(src)
    dynamic = any(not isinstance(d, int) or d <= 0 for d in dims)
    shape = static_input_shape(src, None, meta)
    if batch is not None:
        if batch < 1:
            raise EnetError(f"--batch must be at least 1, got {batch}")
        if isinstance(dims[0], int) and dims[0] > 0 and dims[0] != batch:
            raise ShapeError(f"{model.name} has a fixed batch of {dims[0]}, not {batch}; "
                             "re-export with enet-export --batch or a dynamic batch")
        shape = (batch, *shape[1:])
    if not 0.0 <= float(min_agreement) <= 100.0:
        raise EnetError(f"--min-agreement must be a percentage from 0 to 100, got {min_agreement}")
    given = precision_of(src)
    plan = plan_build(feats, precision, onnx_precision=given, dla=dla_core is not None)
    compiled = model if plan.onnx_precision == given else converted_path(output, plan.onnx_precision)
    needs_frames = plan.onnx_precision == "int8" and given != "int8"
    if needs_frames and calib is None:
        raise EnetError("INT8 needs calibration frames: pass --calib-data (a dataset root or a folder of frames)")
    return EngineJob(
        model=model, output=output, precision=precision, features=feats, installed=installed, plan=plan,
        given_precision=given, compiled=compiled, input_name=input_name, input_shape=tuple(shape),  # type: ignore[arg-type]
        dynamic=dynamic, calib=calib if needs_frames else None,
        verify_images=max(0, int(verify_images)), min_agreement=float(min_agreement),
        mask_tensors=tuple(unpool_mask_tensors(src)) if plan.fp32_mask else (),
        data_root=Path(data_root) if data_root else None,
        dla_core=dla_core, workspace_mb=workspace_mb, timing_cache=Path(timing_cache) if timing_cache else None,
    )


def describe(job: EngineJob, *, dry_run: bool = False) -> list[str]:
    """The plan as the lines ``enet-build-engine`` prints (dry run and real build alike; only the header differs)."""
    p = job.plan
    where = ("installed here" if job.installed else "--trt-version") + ("; dry run, nothing is built" if dry_run else "")
    shape = "x".join(str(v) for v in job.input_shape)
    out = [f"build plan, TensorRT {job.tensorrt_version} ({where}):",
           f"  model       {job.model} ({_ONNX_LABEL[job.given_precision]} ONNX, input {shape}"
           f"{', dynamic dims' if job.dynamic else ''})",
           f"  precision   {job.precision}"]
    c = job.calib
    frames = (f"{c.images} frames from {c.data} ({c.method}"
              f"{'' if c.cache is None else f'; ranges cached in {c.cache}'})") if c else ""
    if job.compiled != job.model and p.onnx_precision == "int8":
        out.append(f"  converts    calibrate INT8 ranges on {frames}, write {job.compiled.name} (Q/DQ on every "
                   "Conv/ConvTranspose input and weight) and measure its val mIoU with ONNX Runtime")
    elif job.compiled != job.model:
        out.append(f"  converts    write {job.compiled.name} (float16 inside, float32 input and output)")
    out.append(f"  parses      {job.compiled.name} ({_ONNX_LABEL[p.onnx_precision]} ONNX)")
    if p.strongly_typed and not job.features.fp16_flag:
        out.append("  network     strongly typed (always, from TensorRT 11)")
    else:
        out.append("  network     " + ("strongly typed (NetworkDefinitionCreationFlag.STRONGLY_TYPED)"
                                      if p.strongly_typed else "weakly typed"))
    pin = p.fp32_mask and bool(job.mask_tensors)
    flags = [f"BuilderFlag.{f}" for f in p.flags] + (["BuilderFlag.OBEY_PRECISION_CONSTRAINTS"] if pin else [])
    out.append("  flags       " + (", ".join(flags) or "none"))
    if p.fp32_mask:
        out.append(f"  mask        {len(job.mask_tensors)} layers of the unpooling masks (space-to-depth, ReduceMax, "
                   "Equal) pinned to float32 (layer precision and output types)" if job.mask_tensors else
                   "  mask        no unpooling mask in this ONNX (nothing to pin to float32)")
    if job.dynamic:
        out.append(f"  profile     {job.input_name}: min = opt = max = {shape}")
    if job.dla_core is not None:
        out.append(f"  DLA         core {job.dla_core}, GPU fallback on")
        out += [f"  runs        {line}" for line in p.placement]
    out.append(f"  writes      {job.output} and {job.output.name}.json (a pair, with the engine's sha256)"
               + (", after the gate" if job.verify_images else ""))
    if job.verify_images:
        from enet.defaults import default_camvid_root

        root = job.data_root or default_camvid_root()
        out.append(f"  gate        compare the engine with the float32 model ({job.model.name}, ONNX Runtime) on "
                   f"{job.verify_images} val frames from {root} (else on the calibration frames); below "
                   f"{job.min_agreement:g}% argmax agreement, or with no frames to compare on, the build fails and "
                   "writes nothing")
    else:
        out.append("  gate        none (--verify-frames 0): the engine is written unchecked")
    if p.onnx_precision == "int8":
        out.append("  accuracy    the engine compiles the Q/DQ ONNX whose val mIoU is measured above")
    out += [f"  note        {n}" for n in p.notes]
    if p.blocked:
        out.append(f"  blocked     a real build stops here: {p.blocked}")
    return out


# --------------------------------------------------------------------------- Polygraphy


def pin_mask_layers(trt: Any, network: Any, tensors: Sequence[str]) -> list[str]:
    """Constrain the layers producing ``tensors`` (the unpooling masks) to float32 in a weakly typed network.

    Each such layer gets ``layer.precision = trt.float32`` and, for every
    floating-point output, ``set_output_type(i, trt.float32)``; the builder
    must obey them (``BuilderFlag.OBEY_PRECISION_CONSTRAINTS``, Polygraphy's
    ``precision_constraints="obey"``). The space-to-depth, the ReduceMax and
    the Equal then all see the same float32 values, so the Equal finds the
    maximum in every window whatever FP16 does elsewhere.

    Returns:
        Names of the layers pinned.

    Raises:
        EnetError: ``tensors`` names a mask but no layer of the network produces it
            (a build that would run the mask in FP16 unprotected).
    """
    wanted, found, pinned = set(tensors), set(), []
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        hits = {t.name for t in outs} & wanted
        if not hits:
            continue
        found |= hits
        layer.precision = trt.float32
        for j, t in enumerate(outs):
            if t.dtype in floats:
                layer.set_output_type(j, trt.float32)
        pinned.append(layer.name)
    missing = [t for t in tensors if t not in found]
    if missing:
        raise EnetError(f"TensorRT's network has no layer producing the unpooling mask tensor {missing[0]!r}; "
                        "cannot pin the mask to float32 for FP16 (build with --fp16 on TensorRT 10+, or FP32)")
    return pinned


def build_engine_bytes(onnx_path: str | os.PathLike[str], plan: BuildPlan, *, workspace_mb: int | None = None,
                       dla_core: int | None = None, timing_cache: str | os.PathLike[str] | None = None,
                       input_name: str = "input", profile_shape: Sequence[int] | None = None,
                       mask_tensors: Sequence[str] = ()) -> bytes:
    """Parse, configure and build with Polygraphy; returns the serialized engine.

    Args:
        profile_shape: a dynamic input's shape; adds the optimization profile
            ``min = opt = max = profile_shape``.
        mask_tensors: ``plan.fp32_mask`` only: the unpooling mask tensors whose
            layers :func:`pin_mask_layers` constrains to float32.

    Never run on a GPU in this project's CI (see docs/engines.md).
    """
    trt = require("tensorrt")
    require("polygraphy")
    from polygraphy.backend.trt import CreateConfig, EngineBytesFromNetwork, NetworkFromOnnxPath, Profile

    # TRT 11 keeps STRONGLY_TYPED but ignores it (always strongly typed); set it only where it exists
    has_flag = hasattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED")
    network: Any = NetworkFromOnnxPath(str(onnx_path), strongly_typed=(plan.strongly_typed and has_flag) or None)
    kwargs: dict[str, Any] = {}
    if "FP16" in plan.flags:
        kwargs["fp16"] = True
    if "INT8" in plan.flags:
        kwargs["int8"] = True
    if plan.fp32_mask and mask_tensors:
        kwargs["precision_constraints"] = "obey"
        parse = network

        def network() -> Any:  # Polygraphy calls the loader, then we edit the parsed network
            parsed = parse()
            pinned = pin_mask_layers(trt, parsed[1], mask_tensors)
            log.info("pinned %d unpooling-mask layers to float32", len(pinned))
            return parsed

    if profile_shape is not None:
        shape = tuple(int(v) for v in profile_shape)
        kwargs["profiles"] = [Profile().add(input_name, min=shape, opt=shape, max=shape)]
    if workspace_mb:
        kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: int(workspace_mb) << 20}
    if timing_cache:
        kwargs["load_timing_cache"] = str(timing_cache)
    if dla_core is not None:
        kwargs["use_dla"] = True
        kwargs["allow_gpu_fallback"] = True
    create = CreateConfig(**kwargs)

    def config(builder: Any, net: Any) -> Any:
        cfg = create(builder, net)
        if dla_core is not None:  # Polygraphy always picks DLA core 0
            if dla_core >= builder.num_DLA_cores:
                raise EnetError(f"--dla-core {dla_core}: this device has {builder.num_DLA_cores} DLA cores")
            cfg.DLA_core = int(dla_core)
        return cfg

    try:
        data = EngineBytesFromNetwork(network, config=config,
                                      save_timing_cache=str(timing_cache) if timing_cache else None)()
    except EnetError:
        raise
    except Exception as exc:  # noqa: BLE001 - Polygraphy raises PolygraphyException on build failure
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EnetError(f"TensorRT could not build {onnx_path} ({first}); run with -v for TensorRT's log") from None
    return bytes(data)


# --------------------------------------------------------------------------- build


@dataclass
class EngineResult:
    """What :func:`build_engine` wrote and found."""

    engine: Path
    sidecar: Path
    onnx: Path  # the ONNX TensorRT compiled (the input, or the converted one beside the engine)
    plan: BuildPlan
    meta: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    build_s: float = 0.0
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _default_rebuild(job: EngineJob) -> str:
    return shlex.join(["enet-build-engine", str(job.model),
                       *(["--" + job.precision] if job.precision != "fp32" else []), "-o", str(job.output)])


def build_engine(job: EngineJob, *, keep_fp32: Sequence[str] = (), rebuild_command: str | None = None,
                 extra: dict[str, Any] | None = None,
                 convert: Callable[[Path, Path, str], Any] | None = None) -> EngineResult:
    """Carry out ``job`` on this machine's TensorRT and GPU.

    Converts the ONNX when the plan needs the FP16 or the calibrated Q/DQ file
    (beside the engine, :func:`converted_path`), builds, compares the engine
    with ONNX Runtime (:func:`~enet.engine.trt.verify.verify_engine`) on
    ``job.verify_images`` val frames, and only then writes engine and sidecar
    as one pair (the sidecar's ``check`` records the comparison). Below
    ``job.min_agreement`` the build fails and removes what it wrote (the
    converted ONNX); without val frames the engine is written with a note
    that it could not be checked.

    Args:
        convert: ``(model, out, precision)`` replacing the plain
            :func:`~enet.engine.quant.convert.convert_onnx` call (the CLI reports
            accuracy there; the bench reuses its cached ONNX).

    Raises:
        EnetError: a plan this machine cannot build, TensorRT failing, bad files,
            an engine that fails the gate.

    Never run on a GPU in this project's CI (see docs/engines.md).
    """
    from enet.engine.runtime.cuda import gpu_info
    from enet.engine.runtime.sidecar import make_sidecar, write_engine_pair
    from enet.fileio import sha256_file

    plan = job.plan
    if plan.blocked:
        raise EnetError(plan.blocked)
    trt = require("tensorrt")
    if not job.installed or str(job.features.version) != str(trt_features(trt).version):
        raise EnetError(f"this plan is for TensorRT {job.tensorrt_version}, the installed one is {trt.__version__}; "
                        "plan again without --trt-version")
    started = time.perf_counter()
    src = load_onnx(job.model)
    meta = read_meta(src, str(job.model))
    notes: list[str] = []
    wrote: list[Path] = []  # what this build created; removed again when it fails (never a file it found)
    compiled = job.compiled
    try:
        if job.compiled != job.model:
            if job.compiled.exists():
                # converted into a file of its own: the existing converted ONNX (the one the previous, still
                # present engine's sidecar names) is replaced only once this build has passed its gate
                fd, tmp = tempfile.mkstemp(prefix=f".{job.compiled.stem}.", suffix=".new.onnx",
                                           dir=job.compiled.parent if str(job.compiled.parent) else ".")
                os.close(fd)
                compiled = Path(tmp)
            wrote.append(compiled)
            if convert is not None:
                convert(job.model, compiled, plan.onnx_precision)
            else:
                convert_onnx(job.model, compiled, precision=plan.onnx_precision, calib=job.calib,
                             keep_fp32=keep_fp32)
        data = build_engine_bytes(compiled, plan, workspace_mb=job.workspace_mb, dla_core=job.dla_core,
                                  timing_cache=job.timing_cache, input_name=job.input_name,
                                  profile_shape=job.input_shape if job.dynamic else None,
                                  mask_tensors=job.mask_tensors)
        gpu, cc = gpu_info(0)
        logits, labels = output_roles(load_onnx(compiled, check=False))
        folder = job.output.resolve().parent
        info: dict[str, Any] = {
            "plan": {"strongly_typed": plan.strongly_typed, "flags": list(plan.flags), "fp32_mask": plan.fp32_mask},
            "dla_core": job.dla_core,
            "profile": list(job.input_shape) if job.dynamic else None,
        }
        info.update(extra or {})
        side = make_sidecar(
            tensorrt_version=trt.__version__, gpu_name=gpu, compute_capability=cc, precision=job.precision,
            input_shape=job.input_shape, input_name=job.input_name, outputs={"logits": logits, "labels": labels},
            onnx_path=os.path.relpath(job.compiled.resolve(), folder), onnx_sha256=sha256_file(compiled),
            meta=meta, rebuild_command=rebuild_command or _default_rebuild(job), extra=info,
        )
        side["source_onnx_sha256"] = sha256_file(job.model)  # what engine_mismatch compares a model with
        verification = _gate(job, data, side, notes)
        side["check"] = _check_record(job, verification)
        if compiled != job.compiled:
            os.replace(compiled, job.compiled)
            wrote.remove(compiled)
        sidecar = write_engine_pair(job.output, data, side)
    except BaseException:
        for path in wrote:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return EngineResult(job.output, sidecar, job.compiled, plan, meta, job.input_shape, trt.__version__, gpu, cc,
                        build_s=time.perf_counter() - started, verification=verification, notes=notes)


def _check_record(job: EngineJob, v: dict[str, Any] | None) -> dict[str, Any]:
    """What the sidecar says about the gate."""
    if v is None:
        return {"checked": False}
    return {"checked": True, "frames": v["frames"], "agreement": v["agreement"],
            "min_agreement": job.min_agreement / 100.0, "miou_engine": v.get("miou_engine"),
            "miou_onnx": v.get("miou_onnx")}


def gate_frames(job: EngineJob) -> tuple[list[Path], str, Path | None]:
    """The frames the gate compares on: the dataset's val frames, else the calibration frames (argmax
    agreement needs no labels); ``([], why, None)`` when there are none.

    Returns:
        ``(frames, what they are, the dataset root whose labels may score them)``.
    """
    from enet.defaults import default_camvid_root

    root = job.data_root or default_camvid_root()
    frames = engine_frames(job.verify_images, root)
    if frames:
        return frames, f"val frames from {root}", root
    sources = [c for c in (job.calib.data if job.calib else None, job.data_root) if c]
    for src in sources:
        from enet.engine.quant.calibration import select_calibration_images
        from enet.errors import DataError

        try:
            return select_calibration_images(src, job.verify_images), f"calibration frames from {src}", None
        except DataError:
            continue
    return [], f"no val split at {root} and no calibration frames", None


def _gate(job: EngineJob, data: bytes, side: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    """Compare the built engine with the float32 model before anything is written where the engine goes.

    The reference is the float32 ONNX the build was given (ONNX Runtime, CPU),
    so a quantized engine is checked against FP32, not against its own Q/DQ
    ONNX; a build given an already converted ONNX compares with that one. The
    frames are the dataset's val frames, else the calibration frames
    (:func:`gate_frames`): argmax agreement needs no labels. There is no
    passing on nothing to compare: without frames the build fails, unless the
    gate was turned off (``--verify-frames 0``, a note says so). The engine and
    its sidecar are checked from a temporary folder beside the output (removed
    afterwards).

    Raises:
        EnetError: agreement below ``job.min_agreement``, or no frames to compare on.
    """
    from enet.engine.runtime.sidecar import write_engine_pair

    if not job.verify_images:
        notes.append("not checked against ONNX Runtime (--verify-frames 0); the engine is written unchecked")
        return None
    frames, what, labelled_root = gate_frames(job)
    if not frames:
        raise EnetError(f"cannot check the engine against the float32 model: {what}; nothing written (pass "
                        "--data-root with the model's dataset, or --verify-frames 0 to write it unchecked)")
    reference = job.model
    folder = job.output.resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{job.output.name}.check-", dir=folder))
    try:
        trial = tmp / job.output.name
        write_engine_pair(trial, data, side)
        v = verify_engine(trial, reference, frames, data_root=labelled_root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    v = dict(v, reference=reference.name, frames_from=what)
    if v["agreement"] * 100.0 < job.min_agreement:
        raise GateError(
            f"the engine agrees with the float32 model ({reference.name}, ONNX Runtime) on only "
            f"{v['agreement'] * 100:.2f}% of the pixels of {v['frames']} {what}, below --min-agreement "
            f"{job.min_agreement:g}; nothing written (a TensorRT or precision problem: try --fp16 or FP32, or run "
            "with -v)")
    return v


class GateError(EnetError):
    """An engine below the gate's agreement: nothing was written."""


__all__ = ["EngineJob", "EngineResult", "plan_engine", "describe", "build_engine_bytes", "build_engine",
           "converted_path", "installed_features", "pin_mask_layers", "DEFAULT_MIN_AGREEMENT", "GateError",
           "gate_frames"]
