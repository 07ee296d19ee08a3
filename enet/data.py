"""Segmentation frames on disk: discovery, validation, augmentation, class weights.

SegNet layout under a root folder (CamVid, and custom datasets with a
``classes.json``): ``<split>/`` RGB PNG or JPEG images and ``<split>annot/``
8-bit PNG labels of the same name (stem) and size, for splits ``train``,
``val`` and ``test``. Labels hold class indices ``0..C-1`` and a void value
(CamVid: 11) that the loss and the metrics ignore. Which classes a folder
holds is :mod:`enet.datasets`' business; this module reads what it is told.

Augmentation is a pure function of ``(seed, epoch, sample index)``, so a run
is reproducible whatever the number of loader workers and resumes exactly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from enet._lazy import require
from enet.defaults import env_note, what_is_wrong
from enet.errors import DataError
from enet.transforms import DEFAULT_RESIZE, normalize, resize_rgb

if TYPE_CHECKING:
    import torch

    from enet.datasets import DatasetInfo

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Decoded frames of one split are kept in memory up to this size; a larger
#: split (Cityscapes train: ~18 GB) is read from disk for every item.
CACHE_BYTES = 2 << 30


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    label: Path


def list_split(root: str | os.PathLike[str], split: str) -> list[Sample]:
    """Pair every image of ``<root>/<split>`` with its ``<root>/<split>annot`` label.

    Raises:
        DataError: missing folders, an empty split, or an image without label.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    root = Path(root)
    img_dir, ann_dir = root / split, root / f"{split}annot"
    if not root.is_dir():
        raise DataError(f"data root {root}{env_note(root)} {what_is_wrong(root, want='folder')}; "
                        f"expected a dataset folder with {split}/ and {split}annot/")
    if not img_dir.is_dir() or not ann_dir.is_dir():
        raise DataError(f"{root}{env_note(root)} has no {split}/ and {split}annot/ folders (SegNet layout expected)")
    images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{img_dir} holds no images")
    labels = {p.stem: p for p in ann_dir.iterdir() if p.suffix.lower() == ".png"}
    samples = []
    for img in images:
        lab = labels.get(img.stem)
        if lab is None:
            raise DataError(f"image {img} has no label {ann_dir / (img.stem + '.png')}")
        samples.append(Sample(img.stem, img, lab))
    return samples


def _check_png_complete(path: Path, data: bytes) -> None:
    # A PNG cut short still decodes partially in some libpng builds; its IEND
    # chunk (the last 12 bytes) is the cheap, certain check.
    if path.suffix.lower() == ".png" and (len(data) < 12 or data[-8:-4] != b"IEND"):
        raise DataError(f"{path} is truncated or not a PNG (no IEND chunk); re-copy the file")


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG or JPEG header, without decoding; None for other or garbled data."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + seg
    return None


def read_image(path: str | os.PathLike[str], *, reduce_large: bool = False) -> np.ndarray:
    """Read an RGB image -> ``uint8 (H, W, 3)``.

    Grey, colour + alpha (dropped) and 16-bit images are converted as
    :func:`enet.transforms.to_rgb8` does; the size is read from the header
    first, so a huge image is refused (or, with ``reduce_large``, decoded at
    1/2, 1/4 or 1/8 size) before any memory is spent on it.

    Raises:
        DataError: unreadable, truncated or not an image.
        ShapeError: larger than :data:`enet.transforms.MAX_FRAME_PIXELS` (after reducing, if asked).
    """
    from enet.transforms import MAX_FRAME_PIXELS, check_frame_pixels

    cv2 = require("cv2")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    _check_png_complete(path, data)
    flag = cv2.IMREAD_COLOR
    size = image_size(data)
    if size is not None:
        w, h = size
        if reduce_large and w * h > MAX_FRAME_PIXELS:
            for f, reduced in ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4),
                               (8, cv2.IMREAD_REDUCED_COLOR_8)):
                if (w // f) * (h // f) <= MAX_FRAME_PIXELS:
                    log.warning("%s is %dx%d; decoding it at 1/%d size to bound memory", path, w, h, f)
                    flag, w, h = reduced, w // f, h // f
                    break
        check_frame_pixels(w, h, str(path))
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        raise DataError(f"{path} is not a readable image; expected a PNG or JPEG")
    return np.ascontiguousarray(img[:, :, ::-1])


def decode_label(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label PNG as stored -> ``uint8 (H, W)`` (values not checked).

    Raises:
        DataError: unreadable, truncated, or not single-channel 8-bit.
    """
    cv2 = require("cv2")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    _check_png_complete(path, data)
    lab = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DataError(f"{path} is not a readable label image")
    if lab.ndim != 2 or lab.dtype != np.uint8:
        raise DataError(f"{path} is not an 8-bit single-channel label (shape {lab.shape}, {lab.dtype}); "
                        "save one class index per pixel as a grey PNG")
    return lab


def read_label(path: str | os.PathLike[str], num_classes: int = 11, void_index: int | None = None) -> np.ndarray:
    """Read a label PNG -> ``uint8 (H, W)`` of class indices ``0..num_classes-1`` and void.

    Args:
        void_index: label value of ignored pixels (default ``num_classes``,
            CamVid's 11).

    Raises:
        DataError: see :func:`decode_label`; also a value that is neither a
            class index nor ``void_index``.
    """
    void = num_classes if void_index is None else void_index
    lab = decode_label(path)
    bad = lab >= num_classes
    if void < 256:
        bad &= lab != void
    if bad.any():
        v = int(lab[bad].max())
        raise DataError(f"{path} has label value {v}; expected 0..{num_classes - 1} (classes) and {void} (void)")
    return lab


def load_pair(sample: Sample, label_reader: Callable[[Path], np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Image and label of ``sample`` (labels read by ``label_reader``, default CamVid's
    :func:`read_label`); their sizes must match."""
    img, lab = read_image(sample.image), (label_reader or read_label)(sample.label)
    if img.shape[:2] != lab.shape:
        raise DataError(
            f"{sample.image} is {img.shape[1]}x{img.shape[0]} but its label {sample.label} is "
            f"{lab.shape[1]}x{lab.shape[0]}; image and label must be the same size"
        )
    return img, lab


@dataclass(frozen=True)
class Augment:
    """Training augmentation (applied in this order).

    Attributes:
        scale: random scale range, relative to the output size.
        flip: horizontal flip probability.
        brightness, contrast, saturation: photometric jitter amplitudes
            (factor drawn from ``1 +- amplitude``).
    """

    scale: tuple[float, float] = (0.75, 1.5)
    flip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


def augment_pair(img: np.ndarray, lab: np.ndarray, size: tuple[int, int], aug: Augment,
                 rng: np.random.Generator, void: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Random scale + crop to ``size`` (H, W), flip, photometric jitter.

    Images are resized bilinearly, labels with nearest neighbour only; areas
    outside the scaled frame are padded with void.
    """
    cv2 = require("cv2")
    h, w = size
    s = rng.uniform(*aug.scale)
    # scale relative to the output size: s=1 maps the whole frame onto size
    sh, sw = max(1, round(h * s)), max(1, round(w * s))
    img = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_LINEAR)
    lab = cv2.resize(lab, (sw, sh), interpolation=cv2.INTER_NEAREST)
    ph, pw = max(h - sh, 0), max(w - sw, 0)
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)))
        lab = np.pad(lab, ((0, ph), (0, pw)), constant_values=void)
    y = int(rng.integers(0, img.shape[0] - h + 1))
    x = int(rng.integers(0, img.shape[1] - w + 1))
    img, lab = img[y:y + h, x:x + w], lab[y:y + h, x:x + w]
    if rng.random() < aug.flip:
        img, lab = img[:, ::-1], lab[:, ::-1]
    f = img.astype(np.float32)
    b = 1 + rng.uniform(-aug.brightness, aug.brightness)
    c = 1 + rng.uniform(-aug.contrast, aug.contrast)
    sat = 1 + rng.uniform(-aug.saturation, aug.saturation)
    f *= b
    f = (f - f.mean()) * c + f.mean()
    grey = f.mean(axis=2, keepdims=True)
    f = (f - grey) * sat + grey
    img = np.clip(f, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def resize_pair(img: np.ndarray, lab: np.ndarray, size: tuple[int, int],
                resize: str = DEFAULT_RESIZE) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size`` (H, W): the image as :class:`enet.transforms.Preprocess` does, the label nearest."""
    if img.shape[:2] == tuple(size):
        return img, lab
    cv2 = require("cv2")
    h, w = size
    return resize_rgb(img, size, resize), cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)


class SegmentationDataset:
    """One split of a dataset; frames decoded once into memory when they fit.

    A map-style dataset for ``torch.utils.data.DataLoader`` (``__len__`` and
    ``__getitem__`` are all it needs); not a ``Dataset`` subclass, so this
    module imports no torch and evaluation runs without PyTorch.

    Items are ``(float32 (3, H, W) normalised image, int64 (H, W) label)``
    with labels in training ids (``0..C-1`` and the dataset's void index).
    Every label is read and checked when the dataset is built, so a bad file
    is refused before training starts; images too when they are cached
    (below :data:`CACHE_BYTES`, e.g. CamVid train ~190 MB), else at use.

    Args:
        info: the dataset (:func:`enet.datasets.open_dataset`).
        split: ``train|val|test``. size: output (H, W); frames of any size
            are resized (and, for training, randomly scaled and cropped) to it.
        mean, std: normalisation (from the model's metadata).
        augment: an :class:`Augment` for training, None for evaluation
            (plain resize to ``size``).
        seed: augmentation seed; call :meth:`set_epoch` every epoch.
        limit: ``limit`` frames only: the first ones, or with ``spaced`` spread evenly over the split
            (``--val-frames``: one meaning in every command, docs/cli.md).
        cache: keep decoded frames in memory; None decides by size.
    """

    def __init__(self, info: DatasetInfo, split: str, *, size: tuple[int, int],
                 mean: Sequence[float], std: Sequence[float], augment: Augment | None = None,
                 seed: int = 0, limit: int | None = None, cache: bool | None = None, spaced: bool = False) -> None:
        self.info = info
        samples = info.samples(split)
        if spaced and limit is not None and limit < len(samples):
            samples = [samples[i] for i in np.round(np.linspace(0, len(samples) - 1, limit)).astype(int)]
        self.samples = samples[:limit]
        self.size, self.mean, self.std = tuple(size), mean, std
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.num_classes, self.void = info.num_classes, info.void_index
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._freq: tuple[np.ndarray, np.ndarray] | None = None
        if not self.samples:
            raise DataError(f"{split}: no frames to load (limit {limit})")
        first = info.load_pair(self.samples[0])
        if cache is None:
            cache = len(self.samples) * (first[0].nbytes + first[1].nbytes) <= CACHE_BYTES
        if cache:
            self._cache = [first] + [info.load_pair(s) for s in self.samples[1:]]
        else:
            log.info("%s: %d frames, read from disk at every use (too large to keep in memory)",
                     split, len(self.samples))
            self._freq = class_frequencies((info.read_label(s.label) for s in self.samples), self.num_classes)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def frequencies(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`class_frequencies` of the split's labels at native size (for class weights)."""
        if self._freq is None:
            self._freq = class_frequencies((lab for _, lab in self._cache or []), self.num_classes)
        return self._freq

    def _pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self._cache[i] if self._cache is not None else self.info.load_pair(self.samples[i])

    def mean_std(self, max_frames: int = 200) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel RGB mean and std in [0, 1] over up to ``max_frames`` evenly spaced frames."""
        idx = np.unique(np.round(np.linspace(0, len(self) - 1, min(max_frames, len(self)))).astype(int))
        s = np.zeros(3)
        s2 = np.zeros(3)
        n = 0
        for i in idx:
            img = self._pair(int(i))[0].reshape(-1, 3).astype(np.float64)  # 0..255
            s += img.sum(0)
            s2 += (img * img).sum(0)
            n += img.shape[0]
        mean = s / n
        std = np.sqrt(np.maximum(s2 / n - mean * mean, 1e-12))
        full = np.iinfo(np.uint8).max  # statistics in [0, 1], the unit of Preprocess's mean/std
        return tuple(round(float(v / full), 4) for v in mean), tuple(round(float(v / full), 4) for v in std)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        img, lab = self._pair(i)
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            img, lab = augment_pair(img, lab, self.size, self.augment, rng, void=self.void)
        else:
            img, lab = resize_pair(img, lab, self.size)
        return torch.from_numpy(normalize(img, self.mean, self.std)), torch.from_numpy(lab.astype(np.int64))


def class_frequencies(labels: Iterable[np.ndarray], num_classes: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Per-class pixel counts, and pixel totals of the images each class occurs in (void excluded)."""
    counts = np.zeros(num_classes, np.int64)
    present_total = np.zeros(num_classes, np.int64)
    for lab in labels:
        c = np.bincount(lab.ravel(), minlength=num_classes + 1)[:num_classes]
        counts += c
        present_total += (c > 0) * int(lab.size)
    return counts, present_total


def class_weights(labels: Iterable[np.ndarray], num_classes: int = 11, method: str = "enet",
                  c: float = 1.02) -> np.ndarray:
    """Loss weights from training labels (void excluded); see :func:`weights_from_frequencies`."""
    if method == "none":
        return np.ones(num_classes, np.float32)
    return weights_from_frequencies(*class_frequencies(labels, num_classes), method=method, c=c)


def weights_from_frequencies(counts: np.ndarray, present_total: np.ndarray, method: str = "enet",
                             c: float = 1.02) -> np.ndarray:
    """Loss weights from :func:`class_frequencies`.

    * ``enet``: ``1 / ln(c + p_class)`` with ``p`` the class share of all
      labelled pixels, ``c = 1.02`` (paper, Section 5.2).
    * ``median``: median-frequency balancing (Eigen & Fergus):
      ``median(f) / f_class``, ``f`` = class pixels / pixels of images where
      the class is present.
    * ``none``: all ones.
    """
    if method == "none":
        return np.ones(len(counts), np.float32)
    if method == "enet":
        p = counts / max(counts.sum(), 1)
        return (1.0 / np.log(c + p)).astype(np.float32)
    if method == "median":
        f = np.where(present_total > 0, counts / np.maximum(present_total, 1), 0.0)
        med = np.median(f[f > 0]) if np.any(f > 0) else 1.0
        return np.where(f > 0, med / np.maximum(f, 1e-12), 0.0).astype(np.float32)
    raise ValueError(f"unknown class weighting {method!r}; use enet, median or none")
