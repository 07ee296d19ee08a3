"""The public API: ``enet.Segmenter``, a model ready to segment frames as OpenCV gives them.

Shaped after jetson-inference's ``segNet`` (``Process``/``Mask``) and
torchvision's weights API::

    import enet
    seg = enet.Segmenter("camvid")            # a name, .pth, .onnx or .engine; backend="auto", precision=...
    labels = seg.segment(frame_bgr)           # uint8 (H, W) class ids at the frame's own size
                                              # (8/16-bit or 0-1 float, BGR/BGRA/grey, any size and aspect)
    scores = seg.scores(frame_bgr)            # float32 (C, h, w) class probabilities at the model's size
    view = seg.overlay(frame_bgr, labels, alpha=0.5)
    seg.classes, seg.palette, seg.fractions(labels), seg.backend_name

The model file, backend and precision are decided by the same resolution as
every command (:func:`enet.engine.runtime.resolve.resolve`); preprocessing is
the model's own (:meth:`enet.transforms.Preprocess.from_meta`), so a frame
gives the labels ``enet-eval`` and ``enet-run`` give. No torch is imported
unless the model is a ``.pth`` run in PyTorch. See docs/api.md.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from enet._lazy import require
from enet.errors import InputError, ShapeError
from enet.transforms import DEFAULT_FIT, Placement, to_rgb8
from enet.overlay import blend, class_fractions, colorize, palette_array


class Segmenter:
    """A segmentation model opened on the best backend here, ready for frames.

    Args:
        model: a shipped name (``"camvid"``), or a ``.pth``, ``.onnx`` or ``.engine`` file.
        backend: ``"auto"`` (default) or one of ``torch``, ``ort``, ``ort-fast``, ``openvino``, ``trt``.
        precision: ``"auto"`` (default: an FP16 TensorRT engine with a GPU;
            a shipped model's calibrated INT8 ONNX on a CPU backend that runs INT8
            faster; the choice is named in the log), ``"fp32"``, ``"fp16"`` or ``"int8"``: a precision
            the chosen backend cannot run (``"fp16"`` without TensorRT) is refused with an EnetError.
        threads: CPU threads of a CPU backend (default: the CPUs this process may use).
        cache_dir: where a ``.pth`` is exported to ONNX (default: the user's cache folder).
        calib_data, min_agreement: a TensorRT engine built on first run: the model's dataset it is
            calibrated (INT8) and checked on, and the least argmax agreement with the float32 model (percent,
            default 95); see docs/engines.md "First run".
        fit: how a frame whose aspect ratio is not the model's is fitted
            (:data:`enet.transforms.FITS`): ``"letterbox"`` (default: scaled
            to fit, padded with the mean colour; every pixel labelled),
            ``"crop"`` (scaled to cover, the centre cut; the borders take
            the nearest labels) or ``"stretch"`` (resized whatever the aspect).

    Thread safety: every method may be called from several threads at once.
    Inference calls beyond what the backend runs at once
    (:attr:`concurrency`) wait their turn; everything else works on the
    caller's arrays only. Close the segmenter (or use it as a context
    manager) to free the backend; it is closed when garbage-collected too.

    Raises:
        EnetError: the model is missing or unusable, or the backend cannot run it.
    """

    def __init__(self, model: str | os.PathLike[str] = "camvid", *, backend: str = "auto",
                 precision: str = "auto", threads: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 calib_data: str | os.PathLike[str] | None = None, min_agreement: float | None = None,
                 fit: str = DEFAULT_FIT) -> None:
        from enet.engine.runtime.backend import open_backend
        from enet.engine.runtime.resolve import resolve
        from enet.transforms import Preprocess, check_fit

        check_fit(fit)

        #: which file and backend kind run the model, and why (:class:`~enet.engine.runtime.resolve.Resolution`)
        self.resolution = resolve(model, backend=backend, precision=precision, cache_dir=cache_dir,
                                  data_root=calib_data, min_agreement=min_agreement)
        options: dict[str, Any] = {"threads": threads} if threads and self.resolution.kind != "trt" else {}
        b = open_backend(self.resolution.path, self.resolution.kind, **options)
        self._backend = b.__enter__()
        self._open = True
        meta = self._backend.meta
        #: class names, index = class id
        self.classes: list[str] = list(meta["classes"])
        #: uint8 ``(C, 3)`` RGB colour of each class (the model's metadata)
        self.palette: np.ndarray = palette_array(meta["palette"], len(self.classes))
        self.palette.setflags(write=False)
        #: ``(H, W)`` the model runs at; frames of any size are resized to it
        self.input_size: tuple[int, int] = (int(b.input_shape[2]), int(b.input_shape[3]))
        #: inference calls the backend runs at once
        self.concurrency: int = max(1, int(b.concurrency))
        self._pre = Preprocess.from_meta(meta, self.input_size, fit=fit)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._bgr_palette = np.ascontiguousarray(self.palette[:, ::-1])

    # -- lifecycle -------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        """The backend running the model, e.g. ``"openvino-cpu-int8"``, ``"trt-fp16"``."""
        return self._backend.name

    def close(self) -> None:
        """Free the backend (idempotent)."""
        if getattr(self, "_open", False):
            self._open = False
            self._backend.__exit__(None, None, None)

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to free into
            pass

    def __repr__(self) -> str:
        return (f"Segmenter({self.resolution.path.name!r}, backend={self.backend_name!r}, "
                f"classes={len(self.classes)}, input={self.input_size[1]}x{self.input_size[0]})")

    # -- frames ------------------------------------------------------------------
    def _input(self, frame: Any) -> tuple[np.ndarray, Placement]:
        """A frame -> float32 ``(1, 3, H, W)`` and where it went (:meth:`enet.transforms.Preprocess.frame`)."""
        if not isinstance(frame, np.ndarray):
            raise InputError(f"expected a numpy image (as OpenCV gives it), got {type(frame).__name__}")
        try:
            x, placement = self._pre.frame(frame, order="bgr", what="the image")
        except ShapeError as exc:
            raise InputError(str(exc)) from None
        return x[None], placement

    def _infer(self, x: np.ndarray, labels: bool) -> np.ndarray:
        if not self._open:
            raise InputError("this Segmenter is closed")
        with self._slots:
            return self._backend.infer_labels(x) if labels else self._backend.infer(x)

    def segment(self, frame: Any) -> np.ndarray:
        """Class ids of every pixel.

        Args:
            frame: ``(H, W, 3)`` BGR, ``(H, W, 4)`` BGRA or ``(H, W)`` grayscale, any
                size and aspect ratio (fitted by the ``fit`` the segmenter was
                made with); uint8, uint16 (its top 8 bits are used, ``v >> 8``,
                as OpenCV reads a 16-bit PNG into 8 bits) or float in [0, 1].

        Returns:
            uint8 ``(H, W)`` class ids (index into :attr:`classes`) at the frame's
            own size (nearest-neighbour from the model's size).

        Raises:
            InputError: not such an image (a float frame outside [0, 1] included).
        """
        x, placement = self._input(frame)
        labels = self._infer(x, True)[0].astype(np.uint8, copy=False)
        return placement.labels_to_frame(labels)

    def scores(self, frame: Any) -> np.ndarray:
        """Class probabilities (softmax of the logits) at the model's size.

        Returns:
            float32 ``(C, h, w)``, ``(h, w)`` = :attr:`input_size`; sums to 1 over ``C``.

        Raises:
            InputError: not an image :meth:`segment` takes.
            EnetError: the model outputs labels only (an engine built without logits).

        With ``fit="letterbox"`` and a frame of another aspect ratio, the
        padding's rows or columns hold scores too (of the mean colour).
        """
        logits = self._infer(self._input(frame)[0], False)[0]
        e = np.exp(logits - logits.max(axis=0, keepdims=True))
        return (e / e.sum(axis=0, keepdims=True)).astype(np.float32, copy=False)

    def overlay(self, frame: Any, labels: np.ndarray | None = None, alpha: float = 0.5) -> np.ndarray:
        """The frame with its classes' colours blended in.

        Args:
            frame: as :meth:`segment` takes it.
            labels: :meth:`segment`'s result for this frame (computed when None);
                labels at the model's input size are resized (nearest) to the frame's;
                any other size is an :class:`InputError`.
            alpha: colour opacity in [0, 1].

        Returns:
            uint8 ``(H, W, 3)`` BGR, the frame's size.

        Raises:
            InputError: a bad frame, labels that are not a 2-D integer map of the frame's (or the
                model's input) size, alpha outside [0, 1].
        """
        if not 0.0 <= float(alpha) <= 1.0:
            raise InputError(f"alpha {alpha} is outside [0, 1]")
        if not isinstance(frame, np.ndarray):
            raise InputError(f"expected a numpy image (as OpenCV gives it), got {type(frame).__name__}")
        try:
            bgr = to_rgb8(frame, order="rgb", what="the image")  # channels kept: BGR stays BGR
        except ShapeError as exc:
            raise InputError(str(exc)) from None
        if labels is None:
            labels = self.segment(frame)
        labels = self._check_labels(labels)
        h, w = bgr.shape[:2]
        if labels.shape != (h, w):
            if labels.shape != tuple(self.input_size):  # a slice, or another frame's labels: no silent stretch
                raise InputError(f"labels of shape {labels.shape} fit neither the frame ({h}, {w}) nor the model's "
                                 f"input {tuple(self.input_size)}; pass segment(frame)'s result for this frame")
            cv2 = require("cv2")
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return blend(bgr, colorize(labels, self._bgr_palette), float(alpha))

    def fractions(self, labels: np.ndarray) -> dict[str, float]:
        """Share of pixels of each class in ``labels`` (class name -> fraction, summing to 1)."""
        labels = self._check_labels(labels)
        return dict(zip(self.classes, (float(f) for f in class_fractions(labels, len(self.classes)))))

    def _check_labels(self, labels: Any) -> np.ndarray:
        if not isinstance(labels, np.ndarray) or labels.ndim != 2 or labels.dtype.kind not in "ui":
            raise InputError("labels must be a 2-D integer class-id map, as segment() returns")
        if labels.size and int(labels.max()) >= len(self.classes):
            raise InputError(f"labels hold class {int(labels.max())}; the model has {len(self.classes)} classes")
        return labels.astype(np.uint8, copy=False)
