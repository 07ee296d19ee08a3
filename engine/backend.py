"""One small inference interface over PyTorch, ONNX Runtime and TensorRT.

Shaped after Polygraphy's runners: construction is cheap, ``__enter__``
allocates (session, context, buffers), ``__exit__`` frees and is idempotent,
``infer`` maps float32 NCHW to logits. Timing lives in ``enet.bench``.

``open_backend(path, kind=None)`` picks the implementation from the file type
(``.pth`` -> torch, ``.onnx`` -> ort, ``.engine``/``.plan`` -> trt) and imports
it lazily, so nothing heavy is imported until a backend is opened. An
``.onnx`` also runs in ``ort-fast`` (ONNX Runtime on the exact CPU form of
the graph, :mod:`enet.export.cpu_graph`) and ``openvino`` (OpenVINO on the CPU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from enet.defaults import env_note
from enet.errors import EnetError

try:  # Python >= 3.11
    from typing import Self
except ImportError:  # pragma: no cover - Python 3.10
    from typing_extensions import Self  # type: ignore[assignment]

KINDS = ("torch", "ort", "ort-fast", "openvino", "trt")
#: Kinds that run an ``.onnx`` file.
ONNX_KINDS = ("ort", "ort-fast", "openvino")
_SUFFIX_KIND = {".pth": "torch", ".pt": "torch", ".onnx": "ort", ".engine": "trt", ".plan": "trt", ".trt": "trt"}


@runtime_checkable
class Backend(Protocol):
    """What every backend offers.

    Attributes:
        name: short label, e.g. ``"torch-cpu"``, ``"ort-cpu"``, ``"trt-fp16"``.
        input_shape: static NCHW input shape ``(N, 3, H, W)``.
        meta: model metadata (classes, palette, mean, std, input_size, ...)
            read from the checkpoint, ONNX ``metadata_props`` or engine sidecar.
    """

    name: str
    input_shape: tuple[int, int, int, int]
    meta: dict[str, Any]

    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> float32 logits ``(N, C, H, W)`` on the host."""
        ...


def infer_labels(backend: Backend, x: np.ndarray) -> np.ndarray:
    """Class labels int64 ``(N, H, W)``: the backend's ``infer_labels`` when it has one.

    ONNX Runtime and TensorRT backends offer ``infer_labels``, which reads an
    in-graph ArgMax output when the model has one (``enet-export --labels``)
    and otherwise takes the argmax of ``infer``; other backends fall back here.
    """
    fn = getattr(backend, "infer_labels", None)
    if fn is not None:
        return fn(x)
    return backend.infer(x).argmax(1)


def evaluate_backend(backend: Backend, data_root: str | os.PathLike[str], split: str = "val",
                     **options: Any) -> dict[str, Any]:
    """Metrics of an entered backend on a CamVid split: the core loop :func:`enet.evaluate.evaluate`.

    The backend supplies the predictor (:func:`infer_labels`), the metadata
    and the input shape; ``options`` are :func:`~enet.evaluate.evaluate`'s
    (``limit``, ``spaced``, ``save_predictions``, ``progress``). The summary
    gains ``backend``, the backend's name.
    """
    from enet.evaluate import evaluate

    summary = evaluate(lambda x: infer_labels(backend, x), data_root, split, meta=backend.meta,
                       input_shape=backend.input_shape, **options)
    summary["backend"] = backend.name
    return summary


def backend_kind(path: str | os.PathLike[str]) -> str:
    """The backend kind for a model file, from its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_KIND:
        raise EnetError(
            f"cannot tell the model type of {path}: expected .pth (checkpoint), .onnx or .engine"
        )
    return _SUFFIX_KIND[suffix]


def open_backend(path: str | os.PathLike[str], kind: str | None = None, **options: Any) -> Backend:
    """Construct (not yet enter) the backend for ``path``.

    Args:
        path: ``.pth`` checkpoint, ``.onnx`` model or ``.engine`` file.
        kind: one of :data:`KINDS`; default from the file suffix.
        **options: passed to the backend (e.g. ``device``, ``providers``,
            ``input_shape``, ``threads``).

    Raises:
        EnetError: unknown suffix or kind, missing file, or a kind that cannot
            run that file type.
    """
    p = Path(path)
    if not p.is_file():
        raise EnetError(f"model file {p}{env_note(p)} does not exist")
    file_kind = backend_kind(p)
    kind = kind or file_kind
    if kind not in KINDS:
        raise EnetError(f"unknown backend {kind!r}; choose one of {', '.join(KINDS)}")
    if kind != file_kind and not (kind in ONNX_KINDS and file_kind == "ort"):
        raise EnetError(f"backend {kind!r} cannot run {p.name} (a {file_kind} file)")
    if kind == "torch":
        from enet._lazy import require

        require("torch")
        from enet.engine.torch_backend import TorchBackend

        return TorchBackend(p, **options)
    if kind in ("ort", "ort-fast"):
        from enet.engine.ort_backend import OrtBackend

        if kind == "ort-fast":
            options.setdefault("graph", "cpu")
        return OrtBackend(p, **options)
    if kind == "openvino":
        from enet.engine.ov_backend import OvBackend

        return OvBackend(p, **options)
    from enet.engine.trt_backend import TrtBackend

    return TrtBackend(p, **options)
