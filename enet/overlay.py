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

    A uint8 map goes through OpenCV's lookup table (the same array as
    ``palette[labels]``, about 0.3 against 0.5 ms at 480x360, CPU the camera
    pipeline spends beside inference); labels past the palette come out
    black there. Other maps: ``np.take``.
    """
    if labels.dtype == np.uint8 and labels.ndim == 2 and palette.dtype == np.uint8 and palette.shape[0] <= 256:
        cv2 = require("cv2")
        lut = np.zeros((256, 1, 3), dtype=np.uint8)
        lut[: palette.shape[0], 0] = palette
        return cv2.LUT(cv2.cvtColor(labels, cv2.COLOR_GRAY2RGB), lut)
    return np.take(palette, labels, axis=0)


def class_fractions(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of pixels per class, float64 ``(num_classes,)`` summing to 1 (labels past the classes not counted)."""
    if labels.dtype == np.uint8 and 0 < labels.size < 1 << 24 and num_classes <= 256:
        # OpenCV's histogram: float32 counts, exact below 2**24 pixels; half the time of bincount's int64 copy
        cv2 = require("cv2")
        hist = cv2.calcHist([np.ascontiguousarray(labels).reshape(-1, 1)], [0], None, [num_classes], [0, num_classes])
        counts = hist.ravel().astype(np.int64)
    else:
        counts = np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return counts / max(labels.size, 1)


def blend(image: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * image + alpha * color``; alpha in [0, 1]; uint8 ``(H, W, 3)`` both."""
    cv2 = require("cv2")
    return cv2.addWeighted(image, 1.0 - alpha, color, alpha, 0.0)
