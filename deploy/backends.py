"""Opening the inference backend for the camera pipeline.

Which file and backend kind run a model is decided by the one resolution
every command and the API share, :func:`enet.engine.runtime.resolve.resolve`
(``--backend auto``: a TensorRT engine where TensorRT and a GPU are present,
else an ONNX runtime, the fastest installed CPU backend without CUDA, else
PyTorch). This module opens what it picked, sizes its threads and streams and
checks it once; it uses only :mod:`enet.engine.runtime`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from enet.errors import EnetError, ShapeError

log = logging.getLogger(__name__)


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
        self.concurrency = max(1, int(backend.concurrency))
        #: frames one call may take, ``(n, 3, H, W)`` with n up to this (the rig batches its cameras)
        self.batch = max(1, int(getattr(backend, "max_batch", 1)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(1, 3, H, W)`` -> logits ``(1, C, H, W)`` or labels ``(1, H, W)``.

        Labels when the backend computes them in its graph (less to copy
        back from a GPU); logits when it would take the argmax on the host
        anyway (``labels_in_graph`` False), so the argmax runs in the output
        stage, beside the next inference, instead of in the inference stage.
        """
        if self.backend.labels_in_graph:
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


def open_predictor(model: str | os.PathLike[str] | None, *, backend: str = "auto",
                   size: tuple[int, int] | None = None, cache_dir: str | os.PathLike[str] | None = None,
                   threads: int | None = None, streams: int | None = None,
                   precision: str = "auto", batch: int = 1, data_root: str | os.PathLike[str] | None = None,
                   min_agreement: float | None = None, live: bool = False) -> tuple[Any, Any]:
    """Resolve, construct and check a backend; returns ``(backend context manager, resolution)``.

    ``model``: a shipped name (``camvid``), a model file, or None (the default
    model); ``backend`` and ``precision`` as :func:`enet.engine.runtime.resolve.resolve`
    takes them (``data_root``, ``min_agreement``: a TensorRT engine built on first run, its calibration
    data and gate); the resolution is its :class:`~enet.engine.runtime.resolve.Resolution`.

    Use as::

        ctx, choice = open_predictor(path, size=(360, 480))
        with ctx as predictor: ...

    Raises:
        EnetError: a missing model, a size ENet cannot take, a model whose
            static input differs from ``size``, a backend that cannot run.

    ``streams`` (CPU backends: OpenVINO, and ONNX Runtime on the CPU):
    frames inferred at once. Default: 2 on 2+ CPUs when ``threads`` is not
    given, every CPU shared between them (measured in docs/deploy.md); for
    one ``live`` camera, 1 stream on every CPU: each frame finishes sooner,
    and a live camera's frames arrive one at a time (docs/deploy.md).
    ``threads`` None: :func:`enet.cpus.default_threads` less one CPU for
    one-frame-at-a-time backends (capture, preprocessing and rendering run
    beside).
    """
    from enet.cpus import default_threads, usable_cpus
    from enet.engine.runtime.backend import open_backend
    from enet.engine.runtime.cpu_choice import ort_has_cuda
    from enet.engine.runtime.resolve import resolve
    from enet.transforms import check_input_size

    if size is not None:
        check_input_size(*size)
    choice = resolve(model, backend=backend, precision=precision, size=size, cache_dir=cache_dir,
                     data_root=data_root, min_agreement=min_agreement)
    if size is None:
        size = _native_size(choice.path)
        check_input_size(*size)
    options: dict[str, Any] = {"input_shape": (1, 3, size[0], size[1])}
    on_cpu = choice.kind == "openvino" or (choice.kind in ("ort", "ort-fast") and not ort_has_cuda())
    if on_cpu and streams is None and threads is None:
        if live:
            streams, threads = 1, usable_cpus()
        else:
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
    if choice.kind == "ort-fast":
        options["spin"] = False  # capture, rendering and encoding share the cores (OrtBackend's spin)
    if batch > 1:
        options.update(batch_options(choice.kind, batch))
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


def batch_options(kind: str, batch: int) -> dict[str, Any]:
    """Backend options for up to ``batch`` frames per inference, where the backend can: OpenVINO reshapes
    the batch-1 ONNX to a dynamic batch (``OvBackend(max_batch=...)``). ONNX Runtime and TensorRT run the
    static batch-1 files one frame at a time (an ``enet-export --batch N`` file would be needed); PyTorch
    likewise here. Empty when the backend runs one frame at a time."""
    if kind == "openvino":
        return {"max_batch": int(batch)}
    log.info("%s runs one frame per inference (its model has a static batch of 1); cameras are not batched",
             kind)
    return {}


def _native_size(model: Path) -> tuple[int, int]:
    """The size a model file was made for: the checkpoint's input_size, or the ONNX/engine static shape.

    ``model`` is a resolved path (:func:`enet.engine.runtime.resolve.resolve` checked that it exists).
    """
    from enet.engine.runtime.backend import open_backend

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
