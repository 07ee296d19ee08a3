"""Inputs for the benchmark: real val frames of the dataset at the benchmark resolution.

Timing runs on a small pool of real frames resized to the benchmark
resolution by the model's own :class:`enet.transforms.Preprocess` (random
frames when the dataset is absent; the report says which). Any dataset
:func:`enet.datasets.open_dataset` knows works (CamVid by default).
Accuracy is the core mIoU loop (``enet.engine.runtime.backend.evaluate_backend``),
not computed here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from enet.data import read_image
from enet.errors import DataError
from enet.transforms import Preprocess

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


def timing_batches(preprocess: Preprocess, batch: int, *, camvid: Path | None, pool: int = 4,
                   seed: int = 0) -> tuple[list[np.ndarray], str]:
    """A pool of uint8 RGB batches ``(batch, H, W, 3)`` at ``preprocess.size`` and a description of the source."""
    height, width = preprocess.size
    frames: list[np.ndarray] = []
    source = "random uint8 frames (CamVid val not found)"  # same text at every resolution: one report line
    if camvid is not None:
        try:
            pairs = val_pairs(camvid, pool * batch)
            frames = [preprocess.image(read_image(p)) for p, _ in pairs]
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
