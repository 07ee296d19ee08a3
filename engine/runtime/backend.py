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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from enet.defaults import env_note, what_is_wrong
from enet.errors import EnetError

if TYPE_CHECKING:  # annotations only (postponed): typing.Self is 3.11+, and typing_extensions is no dependency
    from typing_extensions import Self

@dataclass(frozen=True)
class BackendKind:
    """One kind of backend: what it runs and what it needs.

    Attributes:
        name: what ``--backend`` takes (``"ort"``).
        runs: the model file type it opens: ``"pth"``, ``"onnx"`` or ``"engine"``.
        needs: the module it imports (for messages and availability probes).
        summary: one line for help texts and docs.
    """

    name: str
    runs: str
    needs: str
    summary: str


#: The one table of backend kinds (``--backend`` of every command, the API, :func:`open_backend`).
BACKEND_KINDS: dict[str, BackendKind] = {k.name: k for k in (
    BackendKind("torch", "pth", "torch", "PyTorch on the checkpoint (CPU or CUDA)"),
    BackendKind("ort", "onnx", "onnxruntime", "ONNX Runtime on the graph as exported (CPU, or its CUDA provider)"),
    BackendKind("ort-fast", "onnx", "onnxruntime", "ONNX Runtime on the exact CPU form of the graph"),
    BackendKind("openvino", "onnx", "openvino", "OpenVINO on the CPU (exact CPU form of the graph)"),
    BackendKind("trt", "engine", "tensorrt", "a TensorRT engine on an NVIDIA GPU"),
)}
KINDS = tuple(BACKEND_KINDS)
#: What ``--backend`` accepts: ``auto`` (:func:`enet.engine.runtime.resolve.resolve`) or a kind.
BACKEND_CHOICES = ("auto", *KINDS)
#: Kinds that run an ``.onnx`` file.
ONNX_KINDS = tuple(k for k, v in BACKEND_KINDS.items() if v.runs == "onnx")
_SUFFIX_RUNS = {".pth": "pth", ".pt": "pth", ".onnx": "onnx", ".engine": "engine", ".plan": "engine", ".trt": "engine"}
_RUNS_KIND = {"pth": "torch", "onnx": "ort", "engine": "trt"}


@runtime_checkable
class Backend(Protocol):
    """What every backend offers (subclass :class:`BackendBase` for the defaults).

    Attributes:
        name: short label, e.g. ``"torch-cpu"``, ``"ort-cpu"``, ``"trt-fp16"``.
        input_shape: static NCHW input shape ``(N, 3, H, W)``.
        meta: model metadata (classes, palette, mean, std, input_size, ...)
            read from the checkpoint, ONNX ``metadata_props`` or engine sidecar.
        labels_in_graph: :meth:`infer_labels` reads labels the model computes
            itself (``enet-export --labels``); False: it takes the argmax of
            :meth:`infer` on the host (a caller may as well do that later).
        concurrency: calls of :meth:`infer`/:meth:`infer_labels` that may run at
            once from different threads (1: one at a time).
        device_timing: ``device_stages()`` exists (the model runs on a GPU;
            ``enet-bench`` times its steps with CUDA events).
        cuda_graph: ``device_stages(cuda_graph=True)`` replays a CUDA graph.
    """

    name: str
    input_shape: tuple[int, int, int, int]
    meta: dict[str, Any]
    labels_in_graph: bool
    concurrency: int
    device_timing: bool
    cuda_graph: bool

    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> float32 logits ``(N, C, H, W)`` on the host."""
        ...
    def infer_labels(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> int64 class labels ``(N, H, W)``."""
        ...


class BackendBase:
    """Defaults of the :class:`Backend` abilities: one call at a time, labels by host argmax, no GPU timing."""

    labels_in_graph: bool = False
    concurrency: int = 1
    device_timing: bool = False
    cuda_graph: bool = False

    def infer(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def infer_labels(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> int64 class labels ``(N, H, W)``: the argmax of :meth:`infer`."""
        return self.infer(x).argmax(1)


def evaluate_backend(backend: Backend, data_root: str | os.PathLike[str], split: str = "val",
                     **options: Any) -> dict[str, Any]:
    """Metrics of an entered backend on a CamVid split: the core loop :func:`enet.evaluate.evaluate`.

    The backend supplies the predictor (``infer_labels``), the metadata
    and the input shape; ``options`` are :func:`~enet.evaluate.evaluate`'s
    (``limit``, ``spaced``, ``save_predictions``, ``progress``). The summary
    gains ``backend``, the backend's name.
    """
    from enet.evaluate import evaluate

    summary = evaluate(backend.infer_labels, data_root, split, meta=backend.meta,
                       input_shape=backend.input_shape, **options)
    summary["backend"] = backend.name
    return summary


def backend_kind(path: str | os.PathLike[str]) -> str:
    """The backend kind for a model file, from its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_RUNS:
        raise EnetError(
            f"cannot tell the model type of {path}: expected .pth (checkpoint), .onnx or .engine"
        )
    return _RUNS_KIND[_SUFFIX_RUNS[suffix]]


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
        raise EnetError(f"model file {p}{env_note(p)} {what_is_wrong(p)}")
    file_kind = backend_kind(p)
    kind = kind or file_kind
    if kind not in KINDS:
        raise EnetError(f"unknown backend {kind!r}; choose one of {', '.join(KINDS)}")
    if BACKEND_KINDS[kind].runs != BACKEND_KINDS[file_kind].runs:
        raise EnetError(f"backend {kind!r} cannot run {p.name} (a {file_kind} file)")
    if kind == "torch":
        from enet._lazy import require

        require("torch")
        from enet.engine.runtime.torch_backend import TorchBackend

        return TorchBackend(p, **options)
    if kind in ("ort", "ort-fast"):
        from enet.engine.runtime.ort_backend import OrtBackend

        if kind == "ort-fast":
            options.setdefault("graph", "cpu")
        return OrtBackend(p, **options)
    if kind == "openvino":
        from enet.engine.runtime.ov_backend import OvBackend

        return OvBackend(p, **options)
    from enet.engine.runtime.trt_backend import TrtBackend

    return TrtBackend(p, **options)
