"""Calibration frame selection: deterministic, evenly spaced, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from enet.engine.quant.calibration import iter_batches, select_calibration_images
from enet.errors import DataError

META = {"mean": [0.4, 0.4, 0.4], "std": [0.3, 0.3, 0.3]}


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def test_selection_is_sorted_evenly_spaced_and_deterministic(tmp_path: Path) -> None:
    names = [f"S{i:03d}.png" for i in range(10)]
    _touch(tmp_path / "train", list(reversed(names)) + ["notes.txt"])
    a = select_calibration_images(tmp_path, 4)  # a CamVid root: train/ is used
    b = select_calibration_images(tmp_path / "train", 4)
    assert [p.name for p in a] == ["S000.png", "S003.png", "S006.png", "S009.png"]
    assert a == b
    assert len(select_calibration_images(tmp_path, 50)) == 10


def test_selection_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        select_calibration_images(tmp_path / "nope", 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        select_calibration_images(tmp_path / "empty", 3)
    with pytest.raises(DataError, match="at least 1"):
        select_calibration_images(tmp_path, 0)


def test_batches_resize_normalise_and_pad(calib_root: Path) -> None:
    paths = select_calibration_images(calib_root, 5)
    batches = list(iter_batches(paths, META, (2, 3, 32, 40)))
    assert len(batches) == 3
    assert all(b.shape == (2, 3, 32, 40) and b.dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(batches[-1][0], batches[-1][1])  # padded by repetition


def test_unreadable_image_is_a_data_error(tmp_path: Path) -> None:
    _touch(tmp_path, ["bad.png"])
    with pytest.raises(DataError, match="bad.png (is truncated|is not a readable image)"):
        list(iter_batches(select_calibration_images(tmp_path, 1), META, (1, 3, 8, 8)))
