"""Calibration frames: deterministic selection of a dataset's train images.

INT8 calibration (``enet.engine.quant.calib_stats``) reads frames through this
module (the Q/DQ ONNX, enet-bench's INT8 models, first-run INT8 engines), so
the same images in the same order feed every path. Selection is name-sorted and evenly spaced over
the folder (CamVid train holds several driving sequences back to back, so a
prefix would see one sequence only); no randomness is involved.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from enet.data import read_image
from enet.errors import DataError
from enet.transforms import Preprocess

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: Default number of calibration frames (CamVid train has 367).
DEFAULT_CALIB_IMAGES = 300


def calibration_folder(path: str | os.PathLike[str]) -> Path:
    """A folder of images: ``path`` itself, or ``path/train`` for a SegNet-layout root."""
    p = Path(path)
    if (p / "train").is_dir() and not _images_in(p):
        return p / "train"
    return p


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _candidates(path: Path) -> list[Path]:
    """All images calibration may pick from: a dataset root's train images, or a folder's."""
    from enet.cityscapes import is_cityscapes
    from enet.datasets import open_dataset

    if is_cityscapes(path) and not _images_in(path):
        return open_dataset(path, "cityscapes").image_paths("train")  # nested <city>/ folders
    return _images_in(calibration_folder(path))


def select_calibration_images(path: str | os.PathLike[str], count: int = DEFAULT_CALIB_IMAGES) -> list[Path]:
    """Pick ``count`` images from a folder, or a dataset root's train images (SegNet ``train/``,
    Cityscapes ``leftImg8bit/train/*/``).

    Files are name-sorted and ``count`` of them are taken at evenly spaced
    positions (first and last included); ``count`` larger than the folder takes
    every image. The result depends only on the file names.

    Raises:
        DataError: the folder is missing or holds no images, or ``count < 1``.
    """
    if count < 1:
        raise DataError(f"--calib-frames must be at least 1, got {count}")
    folder = calibration_folder(path)
    if not folder.is_dir():
        raise DataError(
            f"calibration data folder {folder} does not exist; pass --data-root with a dataset "
            "(its train/ is used) or --calib-data with a folder of RGB frames"
        )
    images = _candidates(Path(path))
    if not images:
        raise DataError(
            f"calibration data folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
            "pass --data-root with a dataset or --calib-data with a folder of RGB frames"
        )
    return evenly_spaced(images, count)


def evenly_spaced(items: Sequence[Path], count: int) -> list[Path]:
    """``count`` of ``items`` at evenly spaced positions, first and last included (all when fewer)."""
    if count >= len(items):
        return list(items)
    idx = np.round(np.linspace(0, len(items) - 1, count)).astype(int)
    return [items[i] for i in idx]


def iter_batches(paths: Sequence[Path], meta: dict[str, Any], input_shape: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield float32 ``(N, 3, H, W)`` batches of ``input_shape[0]`` frames.

    Frames go through the model's :class:`enet.transforms.Preprocess`, the
    one the camera pipeline and evaluation use, so the INT8 ranges are
    measured on the pixels the network will see.

    A last, partial batch is padded by repeating its final frame, because a
    static-shape model (and a TensorRT calibrator) takes one batch size only;
    with batch 1 (the default export) nothing is repeated.
    """
    n, _, h, w = (int(v) for v in input_shape)
    preprocess = Preprocess.from_meta(meta, (h, w))
    for start in range(0, len(paths), n):
        chunk = list(paths[start:start + n])
        chunk += [chunk[-1]] * (n - len(chunk))
        yield preprocess.batch([read_image(p) for p in chunk])
