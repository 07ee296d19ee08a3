"""Choosing and opening the inference backend for the camera pipeline.

``--backend auto`` picks the fastest that works here:

1. ``trt``: the model is an ``.engine``, or a ``.pth``/``.onnx`` with an
   ``.engine`` of the same stem beside it, and TensorRT plus a GPU are present;
   without such an engine, TensorRT plus a GPU build one on first run and
   cache it (:func:`enet.engine.engine_cache.auto_engine`; FP16 unless
   ``--precision`` says otherwise);
2. an ONNX runtime: the model is an ``.onnx``, or a ``.pth`` exported on the
   fly to an ONNX in the user's cache folder (:func:`enet.export.cache.cached_onnx`,
   keyed by the checkpoint's sha256 and size). ``ort`` on its CUDA provider
   when this onnxruntime has it, else the fastest installed CPU backend in
   the measured order of :data:`enet.engine.cpu_choice.CPU_PREFERENCE`
   (``openvino``, then ``ort-fast``);
3. ``torch``: the checkpoint in PyTorch.

A step whose pieces are missing or fail is skipped with a log line; an
explicitly asked backend that cannot run fails in one line.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enet.defaults import env_note
from enet.errors import EnetError, ShapeError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "ort", "ort-fast", "openvino", "trt")
_ONNX_KINDS = ("ort", "ort-fast", "openvino")


@dataclass(frozen=True)
class Choice:
    """A model file and the backend kind that will run it."""

    path: Path
    kind: str
    why: str


def _model_kind(path: Path) -> str:
    from enet.engine.backend import backend_kind

    return backend_kind(path)


def trt_usable() -> bool:
    """TensorRT imports and a CUDA GPU is visible (never raises)."""
    from enet._lazy import available
    from enet.engine.cuda import gpu_available

    return available("tensorrt") and gpu_available()


def onnx_runner() -> tuple[str, str] | None:
    """The kind that runs an ONNX here under ``auto``, and why; None without any ONNX runtime."""
    from enet.engine.cpu_choice import fastest_cpu_kind, ort_has_cuda, preference_text

    if ort_has_cuda():
        return "ort", "ONNX Runtime with CUDA"
    kind = fastest_cpu_kind()
    if kind is None:
        return None
    return kind, f"fastest installed CPU backend, in the measured order {preference_text()}"


def _exported(model: Path, size: tuple[int, int], cache_dir: Path | None) -> Path:
    from enet.export.cache import cached_onnx

    return cached_onnx(model, height=size[0], width=size[1], labels=True, folder=cache_dir)


def choose(model: Path, backend: str, size: tuple[int, int], cache_dir: Path | None = None,
           precision: str = "fp16") -> Choice:
    """Decide which file and backend kind run ``model``.

    Args:
        precision: of the TensorRT engine ``auto`` builds on first run.

    Raises:
        EnetError: unknown backend, or an explicit one that cannot run this model.
    """
    if backend not in BACKENDS:
        raise EnetError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not model.is_file():
        raise EnetError(f"model file {model}{env_note(model)} does not exist; pass --model PATH to an enet-rt checkpoint, ONNX or engine")
    kind = _model_kind(model)
    engine = model.with_suffix(".engine")
    if backend == kind or (backend == "auto" and kind == "trt"):
        return Choice(model, kind, f"{model.suffix} file")
    if backend == "torch":
        raise EnetError(f"backend torch runs .pth checkpoints, not {model.name}; use --backend {kind}")
    if backend == "trt":
        if engine.is_file():
            return Choice(engine, "trt", f"engine beside {model.name}")
        raise EnetError(f"backend trt needs an engine; none at {engine}; build one with enet-build-engine")
    if backend in _ONNX_KINDS:
        if kind == "ort":
            return Choice(model, backend, ".onnx file")
        if kind != "torch":
            raise EnetError(f"backend {backend} cannot run {model.name}; use --backend {kind}")
        return Choice(_exported(model, size, cache_dir), backend, "exported from the checkpoint")
    # auto, model is .pth or .onnx
    if engine.is_file() and engine != model:
        if trt_usable():
            return Choice(engine, "trt", f"engine beside {model.name}")
        log.info("not using %s: TensorRT or a GPU is missing", engine)
    elif trt_usable():
        from enet.engine.engine_cache import auto_engine

        onnx_path = model if kind == "ort" else _exported(model, size, cache_dir)
        built = auto_engine(onnx_path, precision=precision)
        if built is not None:
            return Choice(built, "trt", f"TensorRT {precision} engine built from {model.name} on first run, cached")
    runner = onnx_runner()
    if kind == "ort":
        if runner is None:
            raise EnetError(f"no ONNX runtime is installed to run {model.name}; pip install 'enet-rt[openvino]' "
                            "or onnxruntime")
        return Choice(model, runner[0], f".onnx file; {runner[1]}")
    if runner is not None:
        try:
            return Choice(_exported(model, size, cache_dir), runner[0],
                          f"exported from the checkpoint; {runner[1]}")
        except ImportError as exc:
            log.warning("ONNX export is not available (%s); using PyTorch", exc)
        except EnetError as exc:
            log.warning("ONNX export failed (%s); using PyTorch", exc)
    return Choice(model, "torch", "fallback")


class Predictor:
    """An entered backend plus the checks the pipeline needs.

    Attributes:
        backend: the entered backend.
        size: ``(H, W)`` the model takes.
        meta: model metadata (classes, palette, mean, std, ...).
        num_classes: len(meta["classes"]).
    """

    def __init__(self, backend: Any, size: tuple[int, int]) -> None:
        self.backend = backend
        self.size = size
        self.meta = backend.meta
        self.num_classes = len(self.meta["classes"])
        self.name = backend.name
        #: frames the backend may run at once (the pipeline starts that many inference threads)
        self.concurrency = int(getattr(backend, "concurrency", 1) or 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(1, 3, H, W)`` -> logits ``(1, C, H, W)`` or labels ``(1, H, W)``.

        Labels when the backend computes them in its graph (less to copy
        back from a GPU); logits when it would take the argmax on the host
        anyway (``labels_in_graph`` False), so the argmax runs in the output
        stage, beside the next inference, instead of in the inference stage.
        """
        if getattr(self.backend, "labels_in_graph", None) is False:
            return self.backend.infer(x)
        if hasattr(self.backend, "infer_labels"):
            return self.backend.infer_labels(x)
        return self.backend.infer(x)

    def check(self) -> None:
        """One inference on zeros: the output must be ``C`` classes at the input size.

        Raises:
            ShapeError: the model's output does not fit its metadata or the size.
        """
        h, w = self.size
        y = self(np.zeros((1, 3, h, w), dtype=np.float32))
        if y.ndim == 4:
            if y.shape[1] != self.num_classes:
                raise ShapeError(
                    f"model outputs {y.shape[1]} classes but its metadata names {self.num_classes}; "
                    "re-export it from a matching checkpoint"
                )
            spatial = y.shape[2:]
        else:
            spatial = y.shape[1:]
        if tuple(spatial) != (h, w):
            raise ShapeError(f"model output is {spatial[1]}x{spatial[0]}, expected {w}x{h} (WxH)")


def open_predictor(model: str | os.PathLike[str], *, backend: str = "auto", size: tuple[int, int] | None = None,
                   cache_dir: str | os.PathLike[str] | None = None, threads: int | None = None,
                   streams: int | None = None, precision: str = "fp16") -> tuple[Any, Choice]:
    """Choose, construct and check a backend; returns ``(backend context manager, choice)``.

    Use as::

        ctx, choice = open_predictor(path, size=(360, 480))
        with ctx as predictor: ...

    Raises:
        EnetError: a missing model, a size ENet cannot take, a model whose
            static input differs from ``size``, a backend that cannot run.

    ``streams`` (CPU backends: OpenVINO, and ONNX Runtime on the CPU):
    frames inferred at once. Default: 2 on 2+ CPUs when ``threads`` is not
    given, every CPU shared between them. On the idle 2-core machine two
    one-thread OpenVINO requests ran ``make demo`` at 21.7-22.7 fps against
    20.5-22.9 for one two-thread request and 17.1-17.5 for one thread;
    ``ort-fast`` 15.8 fps against 10.2-12.6 with one run at a time, ``ort``
    11.9 against 6.7-9.0 (docs/deploy.md).
    ``threads`` None: :func:`enet.cpus.default_threads` less one CPU for
    one-frame-at-a-time backends (capture, preprocessing and rendering run
    beside).
    """
    from enet.cpus import default_threads, usable_cpus
    from enet.engine.backend import open_backend
    from enet.engine.cpu_choice import ort_has_cuda

    model = Path(model)
    if size is None:
        size = _native_size(model)
    from enet.transforms import check_input_size

    check_input_size(*size)
    choice = choose(model, backend, size, Path(cache_dir) if cache_dir else None, precision)
    options: dict[str, Any] = {"input_shape": (1, 3, size[0], size[1])}
    on_cpu = choice.kind == "openvino" or (choice.kind in ("ort", "ort-fast") and not ort_has_cuda())
    if on_cpu and streams is None and threads is None:
        streams = 2 if usable_cpus() >= 2 else 1
    if on_cpu and streams:
        options["streams"] = streams
        threads = threads or (usable_cpus() if streams > 1 else None)
    elif streams not in (None, 1):
        raise EnetError(f"--streams {streams} needs a CPU backend (openvino, ort-fast or ort); "
                        f"{choice.kind} runs one frame at a time")
    if threads is None and choice.kind != "trt":
        # capture, preprocessing and rendering run beside inference: leave them one CPU
        threads = default_threads(reserve=1)
    if threads:
        options["threads"] = threads
    try:
        b = open_backend(choice.path, choice.kind, **options)
    except ShapeError as exc:
        raise ShapeError(f"model {choice.path.name} does not take {size[1]}x{size[0]} input: {exc}") from None
    if tuple(b.input_shape[2:]) != tuple(size):
        raise ShapeError(
            f"model {choice.path.name} takes {b.input_shape[3]}x{b.input_shape[2]} input, not the asked "
            f"{size[1]}x{size[0]}; drop --size or re-export/rebuild it at that size"
        )
    if b.input_shape[0] != 1 or b.input_shape[1] != 3:
        raise ShapeError(f"model {choice.path.name} takes input {tuple(b.input_shape)}; the camera pipeline needs (1, 3, H, W)")
    return _Entered(b, size), choice


def _native_size(model: Path) -> tuple[int, int]:
    """The size a model file was made for: the checkpoint's input_size, or the ONNX/engine static shape."""
    from enet.engine.backend import open_backend

    if not model.is_file():
        raise EnetError(f"model file {model}{env_note(model)} does not exist; pass --model PATH to an enet-rt checkpoint, ONNX or engine")
    b = open_backend(model)
    n, c, h, w = b.input_shape
    return int(h), int(w)


class _Entered:
    def __init__(self, backend: Any, size: tuple[int, int]) -> None:
        self._backend = backend
        self._size = size

    def __enter__(self) -> Predictor:
        self._backend.__enter__()
        try:
            p = Predictor(self._backend, self._size)
            p.check()
        except BaseException:
            self._backend.__exit__(None, None, None)
            raise
        return p

    def __exit__(self, *exc: object) -> None:
        self._backend.__exit__(*exc)
