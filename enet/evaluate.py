"""The one mIoU loop: any predictor on a dataset split (CamVid, Cityscapes, custom), counted at label resolution.

The loop takes a *predictor*, a callable from the network input to class
labels, so the core runs a checkpoint, an ONNX model or a TensorRT engine
without importing the layers that open them (``enet.engine.runtime.backend.
evaluate_backend`` passes a backend's). Frames go through the model's one
:class:`enet.transforms.Preprocess` (size, mean/std, resize method from its
metadata); predictions are resized back to each label's size with nearest
neighbour, so metrics are always counted at label resolution (void excluded).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
import typing
from typing import Any

import numpy as np

from enet._lazy import require
from enet.datasets import open_dataset
from enet.errors import EnetError
from enet.fileio import atomic_folder
from enet.metrics import ConfusionMatrix
from enet.transforms import Preprocess

log = logging.getLogger(__name__)

#: float32 ``(N, 3, H, W)`` -> class labels ``(N, H, W)`` (any integer dtype)
#: or logits ``(N, C, H, W)``.
Predictor = typing.Callable[[np.ndarray], np.ndarray]  # typing.: evaluated at run time on Python 3.8


def predict_labels(predict: Predictor, preprocess: Preprocess, batch: int,
                   images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Class labels ``uint8 (H, W)`` for RGB uint8 frames, each at its own size.

    Frames are batched up to ``batch`` (the model's static batch size); a
    short last batch is padded by repeating a frame (static engines need a
    full batch).
    """
    cv2 = require("cv2")
    out: list[np.ndarray] = []
    for i in range(0, len(images), batch):
        chunk = list(images[i:i + batch])
        x = preprocess.batch(chunk + [chunk[-1]] * (batch - len(chunk)))
        pred = predict(x)
        if pred.ndim == 4:
            pred = pred.argmax(1)
        for im, p in zip(chunk, pred[:len(chunk)]):
            p = p.astype(np.uint8)
            if p.shape != im.shape[:2]:
                p = cv2.resize(p, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_NEAREST)
            out.append(p)
    return out


def evaluate(predict: Predictor, data_root: str | os.PathLike[str], split: str = "val", *,
             meta: dict[str, Any], input_shape: Sequence[int],
             save_predictions: str | os.PathLike[str] | None = None, limit: int | None = None,
             spaced: bool = False, progress: bool = False, dataset: str = "auto",
             model_name: str = "the model") -> dict[str, Any]:
    """Confusion-matrix metrics of ``predict`` on ``split``.

    Args:
        predict: see :data:`Predictor`.
        meta: the model's metadata (``classes``, ``mean``, ``std``, optional
            ``resize``).
        input_shape: the static NCHW input ``predict`` takes.
        save_predictions: folder for one 8-bit class-index PNG per image, same
            name and size as its label.
        limit: evaluate ``limit`` frames only: the first ones in name order,
            or with ``spaced`` ones evenly spread over the split.
        dataset: dataset kind at ``data_root`` (:func:`enet.datasets.open_dataset`).
        model_name: how a class mismatch names the model (its path).

    Returns:
        :meth:`ConfusionMatrix.summary` plus ``frames``, ``split`` and
        ``eval_size`` ([H, W] the network ran at).
    """
    cv2 = require("cv2")
    classes = list(meta["classes"])
    num_classes = len(classes)
    batch, _, h, w = (int(v) for v in input_shape)
    preprocess = Preprocess.from_meta(meta, (h, w))
    info = open_dataset(data_root, dataset)
    info.check_model(meta, model_name)
    samples = info.samples(split)
    if limit is not None and spaced and limit < len(samples):
        samples = [samples[i] for i in np.round(np.linspace(0, len(samples) - 1, limit)).astype(int)]
    else:
        samples = samples[:limit]
    with contextlib.ExitStack() as stack:
        # predictions go to a temp folder that becomes save_predictions only when every frame is done
        out_dir = stack.enter_context(atomic_folder(save_predictions)) if save_predictions else None
        cm = ConfusionMatrix(num_classes)
        from enet.progress import progress as show_progress

        it: Any = show_progress(range(0, len(samples), batch), total=(len(samples) + batch - 1) // batch,
                                desc=f"eval {split}", unit="batch", enabled=progress)
        for i in it:
            chunk = samples[i:i + batch]
            pairs = [info.load_pair(s) for s in chunk]
            preds = predict_labels(predict, preprocess, batch, [img for img, _ in pairs])
            for s, (_, lab), pred in zip(chunk, pairs, preds):
                cm.update(pred, lab)
                if out_dir is not None:
                    ok, png = cv2.imencode(".png", pred)
                    if not ok:
                        raise EnetError(f"cannot encode prediction for {s.name}")
                    (out_dir / f"{s.name}.png").write_bytes(png.tobytes())
    summary = cm.summary(classes)
    summary.update(frames=len(samples), split=split, eval_size=[h, w])
    return summary
