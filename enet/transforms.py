"""Pre-processing shared by training, evaluation, export checks, engines and deploy.

Contract: an RGB ``uint8`` image ``(H, W, 3)`` becomes float32 ``(3, H, W)``
``(x / 255 - mean) / std`` with the mean/std from the model's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` -> normalised float32 ``(3, H, W)``."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def normalize_batch(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A list of RGB uint8 images of one size -> float32 ``(N, 3, H, W)``."""
    return np.stack([normalize(im, mean, std) for im in images])
