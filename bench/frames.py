"""Inputs for the benchmark: real val frames of the dataset, and val mIoU of a backend.

Timing runs on a small pool of real frames resized to the benchmark
resolution (random frames when the dataset is absent; the report says which).
Accuracy runs the backend at its own input size: the frame is resized to
it, the prediction is resized back (nearest) to the label map, and the
confusion-matrix mIoU of ``enet.metrics`` (void excluded) is reported.
Any dataset :func:`enet.datasets.open_dataset` knows works (CamVid by default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from enet._lazy import require
from enet.errors import DataError

log = logging.getLogger(__name__)

_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def has_val(root: Path) -> bool:
    """True when ``root`` is a dataset with a val split (nothing is read but classes.json)."""
    from enet.datasets import open_dataset

    return Path(root).is_dir() and open_dataset(root).has_split("val")


def val_pairs(camvid: Path, count: int | None = None) -> list[tuple[Path, Path]]:
    """``(image, label)`` paths of the dataset's val split, name-sorted, ``count`` evenly spaced ones.

    Raises:
        DataError: no val split, or an image without label.
    """
    from enet.datasets import open_dataset

    if not has_val(camvid):
        raise DataError(f"no val split found under {camvid} (expected val/ and valannot/, or Cityscapes); "
                        "set ENET_CAMVID or pass --data-root")
    pairs = [(s.image, s.label) for s in open_dataset(camvid).samples("val")]
    if count is not None and count < len(pairs):
        idx = np.round(np.linspace(0, len(pairs) - 1, count)).astype(int)
        pairs = [pairs[i] for i in idx]
    return pairs


def read_rgb(path: Path, width: int | None = None, height: int | None = None) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)``, resized to ``width x height`` when given."""
    cv2 = require("cv2")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"cannot read image {path}")
    if width and height and bgr.shape[:2] != (height, width):
        interp = cv2.INTER_AREA if width * height < bgr.shape[0] * bgr.shape[1] else cv2.INTER_LINEAR
        bgr = cv2.resize(bgr, (width, height), interpolation=interp)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def timing_batches(width: int, height: int, batch: int, *, camvid: Path | None, pool: int = 4,
                   seed: int = 0) -> tuple[list[np.ndarray], str]:
    """A pool of uint8 RGB batches ``(batch, height, width, 3)`` and a description of the source."""
    frames: list[np.ndarray] = []
    source = "random uint8 frames (CamVid val not found)"  # same text at every resolution: one report line
    if camvid is not None:
        try:
            pairs = val_pairs(camvid, pool * batch)
            frames = [read_rgb(p, width, height) for p, _ in pairs]
            from enet.datasets import detect_kind

            name = {"camvid": "CamVid", "cityscapes": "Cityscapes"}.get(detect_kind(camvid), Path(camvid).name)
            source = f"{name} val ({len(frames)} frames, resized to each resolution)"
        except DataError as exc:
            log.warning("%s; timing on random frames", exc)
        except Exception as exc:  # noqa: BLE001 - cv2 missing etc.: timing still works on random frames
            log.warning("cannot read val frames (%s); timing on random frames", exc)
    if not frames:
        rng = np.random.default_rng(seed)
        frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(pool * batch)]
    while len(frames) % batch:
        frames.append(frames[-1])
    return [np.stack(frames[i:i + batch]) for i in range(0, len(frames), batch)], source


def backend_miou(infer: Callable[[np.ndarray], np.ndarray], preprocess: Callable[[np.ndarray], np.ndarray],
                 input_shape: Sequence[int], meta: dict[str, Any], camvid: Path, frames: int) -> dict[str, Any]:
    """Val mIoU of ``infer`` on ``frames`` val frames at the backend's input size.

    Raises:
        DataError: the model's classes are not the dataset's.
    """
    cv2 = require("cv2")
    from enet.datasets import open_dataset
    from enet.metrics import ConfusionMatrix

    info = open_dataset(camvid)
    info.check_model(meta, "the model")

    n, _, h, w = (int(v) for v in input_shape)
    num_classes = len(meta["classes"])
    cm = ConfusionMatrix(num_classes)
    pairs = val_pairs(camvid, frames)
    for start in range(0, len(pairs), n):
        chunk = pairs[start:start + n]
        imgs = [read_rgb(p, w, h) for p, _ in chunk]
        imgs += [imgs[-1]] * (n - len(imgs))
        pred = np.argmax(infer(preprocess(np.stack(imgs))), axis=1).astype(np.uint8)
        for k, (_, label_path) in enumerate(chunk):
            label = info.read_label(label_path)
            p = pred[k]
            if p.shape != label.shape:
                p = cv2.resize(p, (label.shape[1], label.shape[0]), interpolation=cv2.INTER_NEAREST)
            cm.update(p, label)
    s = cm.summary(meta.get("classes"))
    return {"miou": s["miou"], "global_acc": s["global_acc"], "frames": len(pairs),
            "split": "val", "eval_size": [h, w]}
