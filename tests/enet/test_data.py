"""SegNet-layout loading (CamVid): pairing, augmentation determinism, class weights, bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enet.data import Augment, SegmentationDataset, augment_pair, class_weights, list_split, load_pair, read_label
from enet.datasets import open_dataset
from enet.errors import DataError

MEAN, STD = (0.4, 0.4, 0.4), (0.3, 0.3, 0.3)


def test_pairs_and_items(tiny_camvid: Path):
    samples = list_split(tiny_camvid, "train")
    assert len(samples) == 6 and all(s.label.name == s.image.name for s in samples)
    ds = SegmentationDataset(open_dataset(tiny_camvid), "val", size=(48, 64), mean=MEAN, std=STD)
    x, y = ds[0]
    assert x.shape == (3, 48, 64) and x.dtype.is_floating_point
    assert y.shape == (48, 64) and int(y.max()) <= 11


def test_augmentation_is_seeded_and_labels_stay_class_indices(tiny_camvid: Path):
    ds = SegmentationDataset(open_dataset(tiny_camvid), "train", size=(32, 48), mean=MEAN, std=STD, augment=Augment(), seed=3)
    a = ds[1]
    b = ds[1]
    assert all((u == v).all() for u, v in zip(a, b))
    ds.set_epoch(1)
    c = ds[1]
    assert not (a[0] == c[0]).all()
    # nearest-neighbour labels: no new values appear
    img, lab = ds._cache[1]
    rng = np.random.default_rng(0)
    _, aug_lab = augment_pair(img, lab, (32, 48), Augment(scale=(0.5, 2.0)), rng)
    assert set(np.unique(aug_lab)) <= set(np.unique(lab)) | {11}


def test_class_weights_enet_and_median():
    lab1 = np.array([[0, 0, 0, 1]], np.uint8)
    lab2 = np.array([[0, 1, 11, 11]], np.uint8)
    w = class_weights([lab1, lab2], 3, "enet")
    p = np.array([4, 2, 0]) / 6
    assert np.allclose(w, 1 / np.log(1.02 + p))
    m = class_weights([lab1, lab2], 3, "median")
    # freq: class0 4/8, class1 2/8 (both images) -> median 0.375
    assert np.allclose(m[:2], [0.375 / 0.5, 0.375 / 0.25]) and m[2] == 0
    assert (class_weights([lab1], 3, "none") == 1).all()


def _break(root: Path, what: str) -> str:
    import cv2

    img_dir, ann_dir = root / "train", root / "trainannot"
    first = sorted(img_dir.iterdir())[0]
    if what == "no label":
        (ann_dir / first.name).unlink()
    elif what == "truncated":
        data = (ann_dir / first.name).read_bytes()
        (ann_dir / first.name).write_bytes(data[: len(data) // 2])
    elif what == "unreadable":
        first.write_bytes(b"this is not a png at all, nothing to see" * 4)
    elif what == "bad value":
        lab = cv2.imread(str(ann_dir / first.name), cv2.IMREAD_UNCHANGED)
        lab[0, 0] = 40
        cv2.imwrite(str(ann_dir / first.name), lab)
    elif what == "size":
        lab = cv2.imread(str(ann_dir / first.name), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(ann_dir / first.name), lab[:-8])
    return first.name


@pytest.mark.parametrize("what,match", [
    ("no label", "has no label"),
    ("truncated", "truncated"),
    ("unreadable", "truncated or not a PNG"),
    ("bad value", "label value 40"),
    ("size", "same size"),
])
def test_bad_data_is_refused_naming_the_file(tiny_camvid: Path, what: str, match: str):
    name = _break(tiny_camvid, what)
    with pytest.raises(DataError, match=match) as err:
        SegmentationDataset(open_dataset(tiny_camvid), "train", size=(48, 64), mean=MEAN, std=STD)
    assert name in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_folders(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        list_split(tmp_path / "nope", "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="trainannot"):
        list_split(tmp_path, "train")


def test_read_label_rejects_colour_png(tmp_path: Path):
    import cv2

    p = tmp_path / "x.png"
    cv2.imwrite(str(p), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="single-channel"):
        read_label(p)


@pytest.mark.camvid
def test_real_camvid_pairs(camvid_root: Path):
    samples = list_split(camvid_root, "val")
    assert len(samples) == 101
    img, lab = load_pair(samples[0])
    assert img.shape == (360, 480, 3) and lab.shape == (360, 480) and lab.max() <= 11
