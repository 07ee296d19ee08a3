"""Custom datasets (classes.json) and Cityscapes: detection, reading, class weights, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from enet import cityscapes
from enet.data import SegmentationDataset, class_weights, weights_from_frequencies
from enet.datasets import open_dataset
from enet.errors import DataError
from tests.datagen import CLASSES, PALETTE

MEAN, STD = (0.4, 0.4, 0.4), (0.2, 0.2, 0.2)


def test_custom_dataset_is_detected_and_read(tiny_custom: Path):
    info = open_dataset(tiny_custom)
    assert info.kind == "custom" and info.classes == CLASSES and info.palette == PALETTE
    assert info.void_index == 255 and info.mean is None
    samples = info.samples("train")
    assert len(samples) == 24 and {s.image.suffix for s in samples} == {".png", ".jpg"}
    ds = SegmentationDataset(info, "train", size=(32, 48), mean=MEAN, std=STD)
    sizes = {ds._cache[i][0].shape[:2] for i in range(3)}
    assert len(sizes) == 3  # frames of different sizes ...
    x, y = ds[1]
    assert x.shape == (3, 32, 48) and y.shape == (32, 48)  # ... all resized to --size
    assert set(np.unique(y.numpy())) <= {0, 1, 2, 255}
    mean, std = ds.mean_std()
    assert all(0 < m < 1 for m in mean) and all(0 < s < 1 for s in std)


def test_class_weights_come_from_the_datasets_labels(tiny_custom: Path):
    info = open_dataset(tiny_custom)
    ds = SegmentationDataset(info, "train", size=(32, 48), mean=MEAN, std=STD)
    labels = [info.read_label(s.label) for s in info.samples("train")]
    expected = class_weights(labels, 3, "enet")
    assert np.allclose(weights_from_frequencies(*ds.frequencies(), method="enet"), expected)
    counts = sum(np.bincount(lab.ravel(), minlength=256)[:3] for lab in labels)
    assert np.allclose(expected, 1 / np.log(1.02 + counts / counts.sum()))  # void (255) excluded
    lazy = SegmentationDataset(info, "train", size=(32, 48), mean=MEAN, std=STD, cache=False)
    assert all((a == b).all() for a, b in zip(lazy.frequencies(), ds.frequencies()))
    assert all((a == b).all() for a, b in zip(lazy[5], ds[5]))


def _break(root: Path, what: str) -> str:
    """Damage the generated set; returns the file name the refusal must name."""
    import cv2

    first = sorted((root / "train").iterdir())[0]
    label = root / "trainannot" / f"{first.stem}.png"
    doc = json.loads((root / "classes.json").read_text())
    if what == "no label":
        label.unlink()
        return first.name
    if what == "bad value":
        lab = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
        lab[0, 0] = 7
        cv2.imwrite(str(label), lab)
        return label.name
    if what == "palette":
        doc["palette"] = doc["palette"][:2]
    elif what == "void in classes":
        doc["void_index"] = 1
    elif what == "duplicate":
        doc["classes"][2] = "road"
    elif what == "json":
        (root / "classes.json").write_text('{"classes": ["road",')
        return "classes.json"
    (root / "classes.json").write_text(json.dumps(doc))
    return "classes.json"


@pytest.mark.parametrize("what,match", [
    ("no label", "has no label"),
    ("bad value", r"label value 7; expected 0\.\.2 \(classes\) and 255 \(void\)"),
    ("palette", "2 colours for 3 classes"),
    ("void in classes", "void_index"),
    ("duplicate", "road appear twice"),
    ("json", "not valid JSON"),
])
def test_bad_custom_data_is_refused_in_one_line_naming_the_file(tiny_custom: Path, what: str, match: str):
    name = _break(tiny_custom, what)
    with pytest.raises(DataError, match=match) as err:
        SegmentationDataset(open_dataset(tiny_custom), "train", size=(32, 48), mean=MEAN, std=STD)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_bad_custom_data_through_the_cli(tiny_custom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from enet.cli import train_main

    _break(tiny_custom, "palette")
    rc = train_main(["--data-root", str(tiny_custom), "-o", str(tmp_path / "r"), "--epochs", "1", "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "classes.json" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "last.pth").exists()


def test_dataset_kind_flags(tiny_custom: Path, tiny_camvid: Path, tiny_cityscapes: Path):
    assert open_dataset(tiny_camvid).kind == "camvid"  # no classes.json: CamVid as before
    assert open_dataset(tiny_custom, "camvid").kind == "camvid"
    with pytest.raises(DataError, match="classes.json does not exist"):
        open_dataset(tiny_camvid, "custom")
    with pytest.raises(DataError, match="Cityscapes layout"):
        open_dataset(tiny_custom, "cityscapes")
    assert open_dataset(tiny_cityscapes).kind == "cityscapes"


def test_cityscapes_layout_and_official_mapping(tiny_cityscapes: Path):
    import cv2

    info = open_dataset(tiny_cityscapes, "cityscapes")
    assert info.num_classes == 19 and info.void_index == 255
    assert info.classes[0] == "road" and info.classes[13] == "car" and info.palette[13] == (0, 0, 142)
    samples = info.samples("val")
    assert len(samples) == 8 and {s.image.parent.name for s in samples} == {"aachen", "bremen"}
    assert samples[0].name.startswith("aachen_") and samples[0].label.name.endswith("_gtFine_labelIds.png")
    raw = cv2.imread(str(samples[0].label), cv2.IMREAD_UNCHANGED)
    lab = info.read_label(samples[0].label)
    assert set(np.unique(raw)) <= {1, 7, 8, 26}
    for label_id, train_id in ((7, 0), (8, 1), (26, 13), (1, 255)):
        assert (lab[raw == label_id] == train_id).all()
    lut = cityscapes.label_lut()
    assert (lut != 255).sum() == 19 and sorted(lut[lut != 255]) == list(range(19))
    (samples[1].label).unlink()
    with pytest.raises(DataError, match="has no label") as err:
        info.samples("val")
    assert samples[1].image.name in str(err.value)


def test_model_with_other_classes_is_refused(tiny_custom: Path, tiny_checkpoint: Path,
                                             capsys: pytest.CaptureFixture[str]):
    from enet.engine.eval_cli import main as eval_main

    rc = eval_main([str(tiny_checkpoint), "--data-root", str(tiny_custom), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert "predicts 11 classes" in err and "has 3 (road, lane, obstacle)" in err
