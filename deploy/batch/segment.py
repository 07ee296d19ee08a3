"""The one place ``enet-batch`` touches the runtime: resolve a model, segment a frame.

Everything else in :mod:`enet.deploy.batch` goes through :func:`resolve` and
:class:`FrameModel`, so results are those of ``enet-run --stats`` on the same
frames: the same backend choice (:func:`enet.deploy.backends.open_predictor`,
``--backend auto`` as everywhere), the same preprocessing
(:class:`enet.transforms.Preprocess`), the same argmax
(:func:`enet.deploy.pipeline.to_labels`) and fractions
(:func:`enet.deploy.overlay.class_fractions`).

The driver resolves once (an ONNX exported from a ``.pth`` lands in its cache)
and ships the chosen file's bytes to every worker in the :class:`ModelSpec`:
the workers of a cluster need not share a file system with the driver.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from enet.errors import EnetError


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model, ready to travel to workers.

    Attributes:
        source: the model as the user named it (path).
        sha256: of the user's file (the output folder's resume check).
        name: file name of the file that runs (an exported ``.onnx`` for a ``.pth``).
        data: that file's bytes.
        sidecar: an engine's JSON sidecar bytes (``trt`` only), else None.
        kind: backend kind (``openvino``, ``ort``, ``ort-fast``, ``trt``, ``torch``).
        why: why that backend (log line).
        size: ``(H, W)`` the model runs at.
        meta: model metadata (``classes``, ``palette``, ``mean``, ``std``, ``resize``...).
    """

    source: str
    sha256: str
    name: str
    data: bytes = field(repr=False)
    sidecar: bytes | None = field(repr=False)
    kind: str
    why: str
    size: tuple[int, int]
    meta: dict[str, Any] = field(repr=False)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.meta["classes"]]


def resolve(model: str | None, *, backend: str = "auto", size: tuple[int, int] | None = None,
            cache_dir: str | None = None, precision: str = "auto", data_root: str | None = None,
            min_agreement: float | None = None) -> ModelSpec:
    """Choose the file and backend for ``model`` as ``enet-run`` does, check it with one inference.

    The model argument goes to the one resolution as the user gave it (a shipped
    name stays a name, so a CPU backend that runs INT8 faster runs the shipped
    INT8 ONNX exactly as ``enet-run`` does), with the same precision default.

    Raises:
        EnetError: missing model, a backend that cannot run it, a size it cannot take.
    """
    from enet.deploy import backends
    from enet.fileio import sha256_file
    from enet.weights import resolve_model

    path = resolve_model(model)  # the user's file (its sha256 is the output folder's resume check)
    ctx, choice = backends.open_predictor(model, backend=backend, size=size, cache_dir=cache_dir, threads=1,
                                          streams=1, precision=precision, data_root=data_root,
                                          min_agreement=min_agreement)
    with ctx as predictor:
        meta = dict(predictor.meta)
        hw = tuple(int(v) for v in predictor.size)
    sidecar = None
    if choice.kind == "trt":
        from enet.engine.runtime.sidecar import sidecar_path

        side = sidecar_path(choice.path)
        sidecar = side.read_bytes() if side.is_file() else None
    return ModelSpec(source=str(path), sha256=sha256_file(path), name=choice.path.name,
                     data=choice.path.read_bytes(), sidecar=sidecar, kind=choice.kind, why=choice.why,
                     size=hw, meta=meta)  # type: ignore[arg-type]


def mean_max_probability(logits: np.ndarray) -> float:
    """float32 ``(C, H, W)`` logits -> the mean over pixels of the largest softmax probability, in (0, 1].

    A per-frame uncertainty: near 1 where the model is sure everywhere, lower
    where classes compete.
    """
    z = logits.astype(np.float32, copy=False)
    top = z.max(0)
    total = np.exp(z - top).sum(0, dtype=np.float64)
    return float(np.mean(1.0 / total))


class FrameModel:
    """A :class:`ModelSpec` opened on a worker: network-size RGB frames -> labels and class fractions.

    Args:
        spec: the resolved model.
        threads, streams: as ``enet-run --threads/--streams`` (default: the same defaults).

    Use :meth:`close` (or ``with``) to free the backend. The model's bytes are written to a temp
    file only while the backend loads them.
    """

    def __init__(self, spec: ModelSpec, *, threads: int | None = None, streams: int | None = None) -> None:
        from enet.deploy.backends import open_predictor
        from enet.transforms import Preprocess

        self.spec = spec
        self._dir = tempfile.TemporaryDirectory(prefix="enet-batch-model.")
        path = Path(self._dir.name) / spec.name
        path.write_bytes(spec.data)
        if spec.sidecar is not None:
            from enet.engine.runtime.sidecar import sidecar_path

            sidecar_path(path).write_bytes(spec.sidecar)
        try:
            self._ctx, _ = open_predictor(path, backend=spec.kind, size=spec.size, threads=threads, streams=streams)
            self.predictor = self._ctx.__enter__()
        finally:
            # every backend has read the file by now: the copy goes at once, so a worker that Ray kills
            # (no close()) leaves nothing in the temp folder
            self._dir.cleanup()
        self.preprocess = Preprocess.from_meta(spec.meta, spec.size)
        self.num_classes = len(spec.meta["classes"])
        #: frames the backend may run at once (call :meth:`segment` from that many threads)
        self.concurrency = self.predictor.concurrency
        self.name = self.predictor.name

    def segment(self, image: np.ndarray, *, confidence: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
        """One frame -> ``(labels, fractions, confidence)``.

        Args:
            image: RGB uint8 ``(H, W, 3)``, already at the model's size
                (:meth:`enet.transforms.Preprocess.image`, done where the frame is decoded).
            confidence: also compute :func:`mean_max_probability` (needs logits:
                a backend that takes the argmax in its graph is asked for logits instead).

        Returns:
            uint8 labels ``(H, W)``, float64 fractions ``(C,)``, confidence (NaN when not asked).
        """
        from enet.deploy.overlay import class_fractions
        from enet.deploy.pipeline import to_labels

        x = self.preprocess.batch([image])
        y = self.predictor(x)
        conf = float("nan")
        if confidence:
            if y.ndim != 4:
                y = self.predictor.backend.infer(x)
            conf = mean_max_probability(y[0])
        labels = to_labels(y)
        return labels, class_fractions(labels, self.num_classes), conf

    def close(self) -> None:
        self._ctx.__exit__(None, None, None)

    def __enter__(self) -> FrameModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_comparable(a: ModelSpec, b: ModelSpec) -> None:
    """Two models can be compared pixel by pixel: same classes, same input size.

    Raises:
        EnetError: they differ.
    """
    if a.classes != b.classes:
        raise EnetError(f"--compare {b.source} has {len(b.classes)} classes ({', '.join(b.classes[:4])}...), "
                        f"{a.source} {len(a.classes)} ({', '.join(a.classes[:4])}...); compare models trained on "
                        "the same classes")
    if a.size != b.size:
        raise EnetError(f"--compare {b.source} runs at {b.size[1]}x{b.size[0]}, {a.source} at "
                        f"{a.size[1]}x{a.size[0]}; pass --size WxH for both")


def cpu_count() -> int:
    """CPUs this process may use (the local Ray's default)."""
    from enet.cpus import usable_cpus

    return max(1, usable_cpus() or os.cpu_count() or 1)
