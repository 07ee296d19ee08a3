"""Cityscapes (the paper's other benchmark): layout, 19 training classes, palette.

Standard layout under a root folder (as downloaded from cityscapes-dataset.com;
nothing is downloaded here)::

    leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Labels hold the official label ids 0..33; :data:`ID_TO_TRAIN_ID` maps them
to the 19 training classes (cityscapesScripts ``helpers/labels.py``), every
other id to void (255), which the loss and the metrics ignore.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from enet.data import IMAGE_SUFFIXES, SPLITS, Sample
from enet.errors import DataError

CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
VOID_INDEX = 255

#: Official colours of the 19 training classes, RGB.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

#: label id -> train id for the ids that are evaluated; all others are void.
ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}

#: Paper Section 5.1: Cityscapes at 1024x512 (height, width).
INPUT_SIZE: tuple[int, int] = (512, 1024)

_IMAGE_TAG = "_leftImg8bit"
_LABEL_TAG = "_gtFine_labelIds.png"


def label_lut() -> np.ndarray:
    """``uint8 (256,)`` lookup table: label id -> train id (255 = void)."""
    lut = np.full(256, VOID_INDEX, np.uint8)
    for label_id, train_id in ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


def is_cityscapes(root: str | os.PathLike[str]) -> bool:
    """True when ``root`` holds ``leftImg8bit/`` and ``gtFine/``."""
    p = Path(root)
    return (p / "leftImg8bit").is_dir() and (p / "gtFine").is_dir()


def list_images(root: str | os.PathLike[str], split: str) -> list[Path]:
    """Every ``*_leftImg8bit`` image of ``split``, sorted by city then name.

    Raises:
        DataError: unknown split, missing folder, or no images.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    img_dir = Path(root) / "leftImg8bit" / split
    if not img_dir.is_dir():
        raise DataError(f"{img_dir} does not exist; expected the Cityscapes layout "
                        f"leftImg8bit/{split}/<city>/*_leftImg8bit.png")
    images = sorted(p for p in img_dir.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES
                    and p.stem.endswith(_IMAGE_TAG))
    if not images:
        raise DataError(f"{img_dir} holds no <city>/*_leftImg8bit.png images")
    return images


def list_split(root: str | os.PathLike[str], split: str) -> list[Sample]:
    """Pair every image of ``split`` with its ``gtFine`` label-id PNG.

    Raises:
        DataError: missing folders, an empty split, or an image without label.
    """
    root = Path(root)
    samples = []
    for img in list_images(root, split):
        name = img.stem[: -len(_IMAGE_TAG)]
        lab = root / "gtFine" / split / img.parent.name / f"{name}{_LABEL_TAG}"
        if not lab.is_file():
            raise DataError(f"image {img} has no label {lab}")
        samples.append(Sample(name, img, lab))
    return samples
