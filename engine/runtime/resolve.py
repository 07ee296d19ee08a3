"""Which model file, which backend, which precision: the one resolution every command and the API use.

``enet-run``, ``enet-demo``, ``enet-eval``, ``enet-bench --model`` and
:class:`enet.Segmenter` hand a model argument (a shipped name such as
``camvid``, or a ``.pth``/``.onnx``/``.engine`` path), a backend (``auto``
or a kind of :data:`enet.engine.runtime.backend.BACKEND_KINDS`) and a
precision (``auto``, ``fp32``, ``fp16``, ``int8``) to :func:`resolve`, which
returns the file to open and the kind to open it with. ``backend="auto"``:

1. ``trt``: the model is an ``.engine``, or a ``.pth``/``.onnx`` with an
   ``.engine`` of the same stem beside it, and TensorRT plus a GPU are present
   (:func:`trt_ready`); without such an engine, TensorRT plus a GPU build one
   on first run and cache it (:func:`enet.engine.trt.engine_cache.auto_engine`;
   FP16 unless the precision says otherwise): the one place this runtime
   layer reaches into :mod:`enet.engine.trt`, imported only then;
2. an ONNX runtime: the model is an ``.onnx`` (a shipped name: its packaged
   ONNX), or a ``.pth`` exported on the fly to an ONNX in the user's cache
   folder (:func:`enet.export.cache.cached_onnx`). ``ort`` on its CUDA provider
   when this onnxruntime has it, else the fastest installed CPU backend in the
   order of :data:`enet.engine.runtime.cpu_choice.CPU_PREFERENCE`. On the CPU,
   a shipped name runs its calibrated INT8 ONNX when the chosen backend runs
   INT8 faster on this CPU (:func:`enet.engine.runtime.cpu_choice.int8_faster`:
   OpenVINO on x86-64, measured with and without VNNI) and the precision is
   ``auto`` (``fp32`` opts out), or whenever it is ``int8``;
3. ``torch``: the checkpoint in PyTorch.

A step whose pieces are missing or fail is skipped with a log line; an
explicitly asked backend that cannot run the model fails in one line.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from enet.engine.runtime.backend import BACKEND_CHOICES, BACKEND_KINDS, backend_kind
from enet.errors import CheckpointError, EnetError, MissingDependencyError

log = logging.getLogger(__name__)

#: Precision values every command and the API accept; ``auto``: FP16 for a TensorRT engine built on
#: first run, the shipped INT8 ONNX on a CPU backend that runs INT8 faster, else the file as it is.
PRECISIONS = ("auto", "fp32", "fp16", "int8")


@dataclass(frozen=True)
class Resolution:
    """A model file and the backend kind that will run it.

    Attributes:
        path: the file to open (``.pth``, ``.onnx`` or ``.engine``).
        kind: a key of :data:`~enet.engine.runtime.backend.BACKEND_KINDS`.
        why: one line for logs (``".onnx file; fastest installed CPU backend ..."``).
        precision: what runs, as far as known: ``fp32``, ``fp16``, ``int8`` or
            ``""`` (an engine or file whose precision this step does not read).
    """

    path: Path
    kind: str
    why: str
    precision: str = ""


def trt_ready() -> bool:
    """TensorRT imports and an NVIDIA GPU is visible (never raises)."""
    from enet._lazy import available
    from enet.engine.runtime.cuda import gpu_available

    return available("tensorrt") and gpu_available()


def onnx_runner() -> tuple[str, str] | None:
    """The kind that runs an ONNX here under ``auto``, and why; None without any ONNX runtime."""
    from enet.engine.runtime.cpu_choice import fastest_cpu_kind, ort_has_cuda, preference_text

    if ort_has_cuda():
        return "ort", "ONNX Runtime with CUDA"
    kind = fastest_cpu_kind()
    if kind is None:
        return None
    return kind, f"fastest installed CPU backend, in the order {preference_text()}"


def _exported(model: Path, size: tuple[int, int] | None, cache_dir: Path | None) -> Path:
    from enet.export.cache import cached_onnx

    h, w = size if size else (None, None)
    return cached_onnx(model, height=h, width=w, labels=True, folder=cache_dir)


def _spec(model: str | os.PathLike[str] | None) -> str | os.PathLike[str]:
    """A model argument with None replaced by ``$ENET_MODEL`` (a path or a name), else the default name."""
    from enet.weights import DEFAULT_WEIGHTS, resolve_model

    if model is None and os.environ.get("ENET_MODEL"):
        resolve_model(None)  # a $ENET_MODEL naming nothing fails here, in one line naming the variable
    return model if model is not None else (os.environ.get("ENET_MODEL") or DEFAULT_WEIGHTS)


def _named(spec: str | os.PathLike[str]):
    """The shipped weights ``spec`` names, or None for a path."""
    from enet.weights import WEIGHTS

    if not Path(spec).exists() and str(spec) in WEIGHTS:
        return WEIGHTS[str(spec)]
    return None


def model_file(model: str | os.PathLike[str] | None) -> Path:
    """The one file a model argument names, for tools that derive their own variants (``enet-bench``).

    A shipped name is its checkpoint when torch is installed, else its shipped
    FP32 ONNX (so a torch-free install still has a model); a path is itself.
    """
    from enet._lazy import available

    model = _spec(model)
    weights = _named(model)
    if weights is None:
        return Path(model)
    onnx = weights.onnx_files().get("fp32")
    return onnx if onnx is not None and not available("torch") else weights.path()


def resolve(model: str | os.PathLike[str] | None, *, backend: str = "auto", precision: str = "auto",
            size: tuple[int, int] | None = None, cache_dir: str | os.PathLike[str] | None = None,
            data_root: str | os.PathLike[str] | None = None, measure: bool = False,
            min_agreement: float | None = None) -> Resolution:
    """Decide which file and backend kind run ``model`` (see the module docstring for the rules).

    Args:
        model: a shipped name (``camvid``; None: ``$ENET_MODEL`` or ``camvid``) or a model file.
        backend: ``auto`` or a kind of :data:`~enet.engine.runtime.backend.BACKEND_KINDS`.
        precision: one of :data:`PRECISIONS`.
        size: ``(H, W)`` a ``.pth`` is exported at (default: its own); a shipped
            name at another size than its ONNX runs from its checkpoint.
        cache_dir: where a ``.pth`` is exported to (default: the user's cache folder).
        data_root: dataset an INT8 engine built on first run calibrates on.
        measure: ``enet-eval`` passes True so that it measures the model as
            named: without TensorRT a ``.pth`` runs in PyTorch (not exported),
            and ``precision="auto"`` keeps a shipped model's FP32 file.

    Raises:
        EnetError: unknown backend or precision, a missing model, or an explicit
            backend that cannot run this model.
    """
    if backend not in BACKEND_CHOICES:
        raise EnetError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    if precision not in PRECISIONS:
        raise EnetError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    r = _resolve(model, backend=backend, precision=precision, size=size, cache_dir=cache_dir, data_root=data_root,
                 measure=measure, min_agreement=min_agreement)
    runs = _runs(r, exact=precision != "auto")
    fell_back = r.kind == "trt" and precision == "int8" and runs == "fp16" and "first run" in r.why  # noted
    if precision != "auto" and runs != precision and not fell_back:
        raise EnetError(f"precision {precision} cannot run here: {r.kind} runs {r.path.name} as {runs or 'it is'} "
                        f"({r.why}); {_precision_fix(precision)}")
    if precision == "auto":  # the commands print the resolution on their own line; -v shows this one
        log.debug("precision auto: %s runs %s as %s (%s)", r.kind, r.path.name, runs or "built", r.why)
    return r


def _runs(r: Resolution, *, exact: bool = False) -> str:
    """The precision a resolution runs: an engine's from its sidecar, an ONNX's from its name, or (``exact``,
    a precision was asked) from the graph itself (Q/DQ nodes, float16 weights)."""
    if r.precision:
        return r.precision
    if r.kind == "trt":
        try:
            from enet.engine.runtime.sidecar import read_sidecar

            return str(read_sidecar(r.path).get("precision", ""))
        except EnetError:
            return ""
    name = r.path.name.lower()
    if ".int8." in name or ".fp16." in name or not exact or r.path.suffix.lower() != ".onnx":
        return "int8" if ".int8." in name else "fp16" if ".fp16." in name else "fp32"
    from enet.engine.runtime.onnx_info import load_onnx, precision_of

    return precision_of(load_onnx(r.path, check=False))


def _precision_fix(precision: str) -> str:
    if precision == "fp16":
        return ("FP16 runs in a TensorRT engine (TensorRT and an NVIDIA GPU); pass --precision auto or fp32, "
                "or build one: enet-build-engine MODEL.onnx --fp16")
    if precision == "int8":
        return ("INT8 runs from a calibrated Q/DQ model: a shipped model's INT8 ONNX, or enet-build-engine "
                "MODEL.onnx --int8 (an engine with TensorRT, else the INT8 ONNX); or pass --precision auto")
    return "pass the float32 model, or --precision auto"


def _resolve(model: str | os.PathLike[str] | None, *, backend: str, precision: str,
             size: tuple[int, int] | None, cache_dir: str | os.PathLike[str] | None,
             data_root: str | os.PathLike[str] | None, measure: bool, min_agreement: float | None) -> Resolution:
    cache = Path(cache_dir) if cache_dir else None
    model = _spec(model)
    weights = _named(model)
    shipped: dict[str, Path] = {}
    if weights is not None:
        shipped = weights.onnx_files()
        native = tuple(weights.meta()["meta"]["input_size"])
        if backend == "torch" or backend == "trt" or not shipped or (size and tuple(size) != native):
            shipped = {}
        model = shipped["fp32"] if shipped else weights.path()
    model = Path(model)
    if not model.is_file():
        from enet.defaults import env_note, what_is_wrong

        raise EnetError(f"model file {model}{env_note(model)} {what_is_wrong(model)}; pass a model file (.pth, .onnx, "
                        ".engine) or a shipped name (camvid)")
    kind = backend_kind(model)
    engine = model.with_suffix(".engine")
    engine_precision = "fp16" if precision == "auto" else precision
    if kind == "trt" and backend in ("auto", "trt"):
        reason = _engine_reason(model, None, precision, size, check_host=False)
        if reason:
            raise EnetError(f"{model.name} cannot run as asked: {reason}; rebuild it: {_rebuild(model)}")
        return Resolution(model, kind, f"{model.suffix} file")
    if backend == kind and kind != "ort":
        return Resolution(model, kind, f"{model.suffix} file", "fp32" if kind == "torch" else "")
    if backend == "torch":
        raise EnetError(f"backend torch runs .pth checkpoints, not {model.name}; use --backend {kind}")
    if backend in ("auto", "trt") and kind in ("ort", "torch"):
        ready = trt_ready()
        stale = ""
        if engine.is_file():
            reason = _engine_reason(engine, model, precision, size, check_host=ready)
            if reason is None and (ready or backend == "trt"):
                return Resolution(engine, "trt", f"engine beside {model.name}")
            if reason is not None and not ready and backend == "trt":
                raise EnetError(f"{engine} is not this model's engine: {reason}; rebuild it: {_rebuild(engine)}")
            if reason is not None:
                stale = f"; {engine.name} beside it is not its engine ({reason}), rebuild it: {_rebuild(engine)}"
                if ready:
                    log.warning("not using %s: %s; building one on first run instead", engine, reason)
                else:
                    log.debug("not using %s: %s (and TensorRT or a GPU is missing)", engine, reason)
        if ready:
            _check_onnx_size(model, size)  # before minutes of building an engine for the wrong shape
            from enet.engine.trt.engine_cache import auto_engine

            built = auto_engine(model, precision=engine_precision, size=size, data_root=data_root,
                                min_agreement=min_agreement)
            if built is not None:
                from enet.engine.runtime.sidecar import read_sidecar

                try:  # the first run may have fallen back from INT8 to FP16 (its note says why)
                    got = str(read_sidecar(built).get("precision", engine_precision))
                except EnetError:
                    got = engine_precision
                return Resolution(built, "trt", f"TensorRT {got} engine built from {model.name} on first "
                                                "run, cached", got)
            if backend == "trt":
                raise EnetError(f"backend trt: no TensorRT engine for {model.name} could be built (see the "
                                f"warning above){stale or f'; build one with enet-build-engine {model.name}'}")
        elif backend == "trt":
            raise EnetError(f"backend trt needs an engine; none at {engine}; build one with enet-build-engine")
    if backend in BACKEND_KINDS:  # an ONNX runtime, asked by name
        if kind == "trt":
            raise EnetError(f"backend {backend} cannot run {model.name}; use --backend trt")
        if kind == "ort":
            return _onnx_choice(model, backend, ".onnx file", precision, shipped, not measure)
        return Resolution(_exported(model, size, cache), backend, "exported from the checkpoint", "fp32")
    # auto, model is .pth or .onnx, no TensorRT engine for it
    runner = onnx_runner()
    if kind == "ort":
        if runner is None:
            raise EnetError(f"no ONNX runtime is installed to run {model.name}; pip install 'enet-rt[openvino]' "
                            "or onnxruntime")
        return _onnx_choice(model, runner[0], f".onnx file; {runner[1]}", precision, shipped, not measure)
    from enet._lazy import available, install_hint

    if not available("torch"):  # a checkpoint with no ONNX to run: say so before any "using PyTorch"
        raise MissingDependencyError(f"{model.name} is a PyTorch checkpoint with no exported ONNX to run here; running "
                                     f"or exporting it needs torch: {install_hint('torch')}; or run an exported "
                                     ".onnx (enet-export on a machine with torch)")
    if runner is not None and not measure:
        try:
            return Resolution(_exported(model, size, cache), runner[0], f"exported from the checkpoint; {runner[1]}",
                              "fp32")
        except ImportError as exc:
            log.warning("ONNX export is not available (%s); using PyTorch", exc)
        except CheckpointError:
            raise  # not a usable checkpoint: PyTorch cannot run it either
        except EnetError as exc:
            log.warning("ONNX export failed (%s); using PyTorch", exc)
    return Resolution(model, "torch", "the checkpoint itself" if measure else "fallback", "fp32")


def _engine_reason(engine: Path, model: Path | None, precision: str, size: tuple[int, int] | None, *,
                   check_host: bool) -> str | None:
    """Why ``engine`` is not valid for ``model`` here, from the one authority
    (:func:`enet.engine.runtime.sidecar.engine_mismatch`); None when it is."""
    from enet.engine.runtime.sidecar import engine_mismatch, this_host
    from enet.fileio import sha256_file

    onnx_sha = ckpt_sha = None
    if model is not None and backend_kind(model) == "ort":
        onnx_sha = sha256_file(model)
    elif model is not None:
        ckpt_sha = sha256_file(model)
    reason = engine_mismatch(engine, onnx_sha256=onnx_sha, checkpoint_sha256=ckpt_sha,
                             precision=None if precision == "auto" else precision, size=size,
                             host=this_host() if check_host else None, check_bytes=model is not None)
    return reason


def _rebuild(engine: Path) -> str:
    from enet.engine.runtime.sidecar import rebuild_command

    return rebuild_command(engine)


def _check_onnx_size(model: Path, size: tuple[int, int] | None) -> None:
    """Refuse ``--size`` an ``.onnx`` with a fixed other input size cannot take (a checkpoint is exported at it)."""
    if size is None or backend_kind(model) != "ort":
        return
    from enet.engine.runtime.onnx_info import input_dims, load_onnx

    _, dims = input_dims(load_onnx(model, check=False))
    hw = tuple(dims[2:4])
    if all(isinstance(d, int) and d > 0 for d in hw) and hw != tuple(size):
        raise EnetError(f"{model.name} takes {hw[1]}x{hw[0]} input, not --size {size[1]}x{size[0]}; re-export it "
                        f"at that size (enet-export CHECKPOINT.pth --size {size[1]}x{size[0]}) or pass the .pth; "
                        "no engine was built")


def _onnx_choice(model: Path, kind: str, why: str, precision: str, shipped: dict[str, Path],
                 int8_on_cpu: bool) -> Resolution:
    """An ``.onnx`` in an ONNX runtime; a shipped model's INT8 file where the precision asks for it."""
    import platform

    from enet.engine.runtime.cpu_choice import INT8_FASTER, int8_faster, ort_has_cuda

    on_cpu = kind != "ort" or not ort_has_cuda()
    int8 = shipped.get("int8")
    auto_int8 = int8 is not None and on_cpu and precision == "auto" and int8_on_cpu and kind in INT8_FASTER
    if auto_int8 and not int8_faster(kind):
        auto_int8 = False
        log.info("running the FP32 model: %s was not measured faster in INT8 on this CPU (%s); --precision int8 "
                 "opts in", kind, platform.machine())
    if int8 is not None and on_cpu and (precision == "int8" or auto_int8):
        if precision == "auto":
            log.info("using the shipped INT8 model %s: %s runs INT8 faster on this CPU (--precision fp32 opts out)",
                     int8.name, kind)
        return Resolution(int8, kind, f"{why}; shipped INT8 model", "int8")
    if precision == "int8" and not shipped:
        log.info("--precision int8 applies to TensorRT engines and shipped models; running %s as it is", model.name)
    return Resolution(model, kind, why, "int8" if ".int8." in model.name else "")
