"""Evaluate any backend (checkpoint, ONNX, engine) on a dataset split (CamVid, Cityscapes, custom).

Frames are normalised with the mean/std from the model's own metadata and
resized to the backend's static input size when they differ (labels never
are: predictions are resized back to each label's size with nearest
neighbour), so metrics are always counted at label resolution.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from enet._lazy import require
from enet.datasets import open_dataset
from enet.errors import EnetError
from enet.fileio import write_bytes
from enet.metrics import ConfusionMatrix
from enet.transforms import normalize

log = logging.getLogger(__name__)


def predict_labels(backend: Any, images: list[np.ndarray]) -> list[np.ndarray]:
    """Class labels ``uint8 (H, W)`` for RGB uint8 frames, each at its own size.

    Frames are batched up to the backend's static batch size; a short last
    batch is padded by repeating a frame (static engines need a full batch).
    """
    cv2 = require("cv2")
    n, _, h, w = backend.input_shape
    meta = backend.meta
    out: list[np.ndarray] = []
    for i in range(0, len(images), n):
        chunk = images[i:i + n]
        resized = [im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR)
                   for im in chunk]
        x = np.stack([normalize(im, meta["mean"], meta["std"]) for im in resized])
        if len(chunk) < n:
            x = np.concatenate([x, np.repeat(x[-1:], n - len(chunk), axis=0)])
        infer_labels = getattr(backend, "infer_labels", None)
        pred = infer_labels(x) if infer_labels is not None else backend.infer(x).argmax(1)
        for im, p in zip(chunk, pred[:len(chunk)]):
            p = p.astype(np.uint8)
            if p.shape != im.shape[:2]:
                p = cv2.resize(p, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_NEAREST)
            out.append(p)
    return out


def evaluate(backend: Any, data_root: str | os.PathLike[str], split: str = "val", *,
             save_predictions: str | os.PathLike[str] | None = None, limit: int | None = None,
             progress: bool = False, dataset: str = "auto") -> dict[str, Any]:
    """Confusion-matrix metrics of an entered backend on ``split``.

    Args:
        backend: an entered :class:`enet.engine.backend.Backend`.
        save_predictions: folder for one 8-bit class-index PNG per image, same
            name and size as its label.
        limit: evaluate the first ``limit`` frames only (name order).
        dataset: dataset kind at ``data_root`` (:func:`enet.datasets.open_dataset`).

    Returns:
        :meth:`ConfusionMatrix.summary` plus ``frames``, ``split``, ``backend``.
    """
    cv2 = require("cv2")
    meta = backend.meta
    classes = list(meta["classes"])
    num_classes = len(classes)
    info = open_dataset(data_root, dataset)
    info.check_model(meta, getattr(backend, "path", None) or backend.name)
    samples = info.samples(split)[:limit]
    out_dir = Path(save_predictions) if save_predictions else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnetError(f"cannot create prediction folder {out_dir}: {exc.strerror}") from None
    cm = ConfusionMatrix(num_classes)
    batch = backend.input_shape[0]
    it: Any = range(0, len(samples), batch)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=(len(samples) + batch - 1) // batch, desc=f"eval {split}", unit="batch",
                  dynamic_ncols=True, leave=False)
    for i in it:
        chunk = samples[i:i + batch]
        pairs = [info.load_pair(s) for s in chunk]
        preds = predict_labels(backend, [img for img, _ in pairs])
        for s, (_, lab), pred in zip(chunk, pairs, preds):
            cm.update(pred, lab)
            if out_dir is not None:
                ok, png = cv2.imencode(".png", pred)
                if not ok:
                    raise EnetError(f"cannot encode prediction for {s.name}")
                write_bytes(out_dir / f"{s.name}.png", png.tobytes())
    summary = cm.summary(classes)
    summary.update(frames=len(samples), split=split, backend=backend.name)
    return summary
