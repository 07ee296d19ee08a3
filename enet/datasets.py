"""Which dataset a folder holds, its classes, and how to read its frames.

Three kinds, told apart by the folder itself (``kind="auto"``):

* ``custom``: the SegNet layout plus ``classes.json`` (:mod:`enet.custom`);
* ``cityscapes``: ``leftImg8bit/`` and ``gtFine/`` (:mod:`enet.cityscapes`);
* ``camvid``: the SegNet layout without ``classes.json`` (:mod:`enet.camvid`).

Training copies a dataset's classes, palette and void index into the
checkpoint's metadata; evaluation checks a model's classes against the
dataset's before counting anything.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enet import camvid, cityscapes, custom
from enet.data import IMAGE_SUFFIXES, SPLITS, Sample, decode_label, list_split, load_pair, read_label
from enet.defaults import env_note, what_is_wrong
from enet.errors import DataError

KINDS = ("auto", "camvid", "custom", "cityscapes")


@functools.lru_cache(maxsize=1)
def _cityscapes_lut() -> np.ndarray:
    return cityscapes.label_lut()


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset on disk: where, which layout, which classes.

    Attributes:
        kind: ``camvid``, ``custom`` or ``cityscapes``.
        root: the dataset folder.
        classes, palette: class names and RGB colours, in class-index order.
        void_index: label value of ignored pixels (11 for CamVid, 255 for
            Cityscapes, ``classes.json``'s for a custom set).
        mean, std: RGB normalisation in [0, 1] when fixed by the dataset
            (CamVid's measured constants, ``classes.json``); None means
            "measure on the train images".
    """

    kind: str
    root: Path
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    void_index: int
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def samples(self, split: str) -> list[Sample]:
        """Image/label pairs of ``split`` in name order (refuses an image without label)."""
        if self.kind == "cityscapes":
            return cityscapes.list_split(self.root, split)
        return list_split(self.root, split)

    def has_split(self, split: str) -> bool:
        """True when ``split``'s image folder exists (cheap: nothing is read)."""
        if self.kind == "cityscapes":
            return (self.root / "leftImg8bit" / split).is_dir()
        return (self.root / split).is_dir()

    def image_paths(self, split: str) -> list[Path]:
        """Images of ``split`` in name order, labelled or not (calibration, parity, demos).

        Raises:
            DataError: the folder is missing or holds no images.
        """
        if self.kind == "cityscapes":
            return cityscapes.list_images(self.root, split)
        folder = self.root / split
        if not folder.is_dir():
            raise DataError(f"{folder}{env_note(folder)} {what_is_wrong(folder, want='folder')}; "
                            f"expected the SegNet layout {split}/ and {split}annot/")
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return images

    def read_label(self, path: str | os.PathLike[str]) -> np.ndarray:
        """A label PNG as training ids ``uint8 (H, W)``: 0..C-1, or :attr:`void_index`.

        Raises:
            DataError: unreadable, not 8-bit single-channel, or (SegNet
                layout) a value that is neither a class nor void.
        """
        if self.kind == "cityscapes":
            return _cityscapes_lut()[decode_label(path)]
        return read_label(path, self.num_classes, self.void_index)

    def load_pair(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """RGB ``uint8 (H, W, 3)`` and training-id label ``uint8 (H, W)`` of one sample."""
        return load_pair(sample, self.read_label)

    def metadata(self, *, mean: Sequence[float], std: Sequence[float],
                 input_size: Sequence[int]) -> dict[str, Any]:
        """The dataset part of a checkpoint's metadata (JSON-able)."""
        return {
            "classes": list(self.classes),
            "palette": [list(c) for c in self.palette],
            "void_index": self.void_index,
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "input_size": [int(v) for v in input_size],
        }

    def check_model(self, meta: dict[str, Any], model: str, *,
                    fix: str = "evaluate on the dataset it was trained on") -> None:
        """Refuse a model whose classes are not this dataset's (``fix``: the advice that ends the message).

        Raises:
            DataError: the class count differs, or the names do.
        """
        names = list(meta.get("classes", []))
        if names == list(self.classes):
            return
        where = f"{self.root / custom.CLASSES_FILE}" if self.kind == "custom" else f"{self.root} ({self.kind})"
        if len(names) != self.num_classes:
            raise DataError(f"{model} predicts {len(names)} classes ({_short(names)}) but {where} has "
                            f"{self.num_classes} ({_short(self.classes)}); {fix}")
        raise DataError(f"{model} names its classes {_short(names)} but {where} says {_short(self.classes)}; {fix}")


def _short(names: Sequence[str], n: int = 4) -> str:
    return ", ".join(list(names)[:n]) + (", ..." if len(names) > n else "")


def detect_kind(root: str | os.PathLike[str]) -> str:
    """``custom`` (classes.json), ``cityscapes`` (leftImg8bit/ + gtFine/) or ``camvid``."""
    if custom.has_class_file(root):
        return "custom"
    if cityscapes.is_cityscapes(root):
        return "cityscapes"
    return "camvid"


def open_dataset(root: str | os.PathLike[str], kind: str = "auto") -> DatasetInfo:
    """Describe the dataset at ``root`` (reads ``classes.json``; no frame is read).

    Args:
        root: dataset folder.
        kind: ``auto`` (see the module docstring) or one of ``camvid``,
            ``custom``, ``cityscapes``.

    Raises:
        DataError: ``root`` is missing, ``classes.json`` is invalid, or the
            folder lacks the layout ``kind`` asks for.
    """
    root = Path(root)
    if kind not in KINDS:
        raise DataError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not root.is_dir():
        raise DataError(f"data root {root}{env_note(root)} {what_is_wrong(root, want='folder')}; "
                        "expected a dataset folder "
                        "(SegNet layout with train/ trainannot/ val/ valannot/, or Cityscapes)")
    if kind == "auto":
        kind = detect_kind(root)
    if kind == "custom":
        cf = custom.read_class_file(root)
        return DatasetInfo("custom", root, cf.classes, cf.palette, cf.void_index, cf.mean, cf.std)
    if kind == "cityscapes":
        if not cityscapes.is_cityscapes(root):
            raise DataError(f"{root} has no leftImg8bit/ and gtFine/ folders; expected the Cityscapes layout "
                            "leftImg8bit/{train,val}/<city>/ and gtFine/{train,val}/<city>/")
        return DatasetInfo("cityscapes", root, cityscapes.CLASSES, cityscapes.PALETTE, cityscapes.VOID_INDEX)
    return DatasetInfo("camvid", root, camvid.CLASSES, camvid.PALETTE, camvid.VOID_INDEX, camvid.MEAN, camvid.STD)


__all__ = ["KINDS", "SPLITS", "DatasetInfo", "detect_kind", "open_dataset"]
