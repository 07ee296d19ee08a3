"""normalize: the table lookup gives exactly the per-pixel formula's float32 values."""

from __future__ import annotations

import numpy as np
import pytest

from enet.camvid import default_metadata
from enet.transforms import normalize


def _formula(image: np.ndarray, mean, std) -> np.ndarray:
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@pytest.mark.parametrize("mean,std", [(default_metadata()["mean"], default_metadata()["std"]),
                                      ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), ([0, 0, 0], [1, 1, 1])])
def test_lookup_is_bit_identical_to_the_formula(mean, std) -> None:
    every_level = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    noise = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for img in (every_level, noise, noise[::2, 1::3]):  # a strided view as well
        got = normalize(img, mean, std)
        assert got.dtype == np.float32 and got.shape == (3, *img.shape[:2]) and got.flags.c_contiguous
        np.testing.assert_array_equal(got, _formula(img, mean, std))


def test_float_images_use_the_formula_and_bad_shapes_fail() -> None:
    img = np.random.default_rng(1).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(normalize(img, [0.5] * 3, [0.25] * 3), _formula(img, [0.5] * 3, [0.25] * 3))
    with pytest.raises(ValueError, match="RGB"):
        normalize(np.zeros((8, 8), np.uint8), [0.5] * 3, [0.25] * 3)
