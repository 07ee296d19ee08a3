"""Class colours and masks: the drawing pieces the API (:class:`enet.Segmenter`) and the camera pipeline share.

Colours come from the model's metadata (``meta["palette"]``, RGB), never from
a table here. :mod:`enet.deploy.overlay` builds the pipeline's panels, HUD and
legend on these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from enet._lazy import require


def palette_array(palette: Sequence[Sequence[int]], num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours; classes beyond the palette get fixed pseudo-random ones."""
    pal = np.zeros((num_classes, 3), dtype=np.uint8)
    given = np.asarray(palette, dtype=np.int64).reshape(-1, 3)[:num_classes]
    pal[: len(given)] = np.clip(given, 0, 255)
    if len(given) < num_classes:
        rng = np.random.default_rng(12345)
        pal[len(given):] = rng.integers(0, 256, size=(num_classes - len(given), 3))
    return pal


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Label map uint8 ``(H, W)`` -> colours ``(H, W, 3)`` through ``palette (C, 3)``.

    ``np.take`` rather than ``palette[labels]``: the same array for less CPU,
    which the camera pipeline spends beside inference.
    """
    return np.take(palette, labels, axis=0)


def class_fractions(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of pixels per class, float64 ``(num_classes,)`` summing to 1."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return counts / max(labels.size, 1)


def blend(image: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * image + alpha * color``; alpha in [0, 1]; uint8 ``(H, W, 3)`` both."""
    cv2 = require("cv2")
    return cv2.addWeighted(image, 1.0 - alpha, color, alpha, 0.0)
