"""Drawing: colourised masks, alpha blends, the HUD and the class legend.

Colours and class names come from the model's metadata (``meta["palette"]``,
``meta["classes"]``), never from a table here. Images are RGB uint8
``(H, W, 3)``. Only OpenCV 4.x drawing calls are used (JetPack ships 4.x).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from enet._lazy import require

MODES = ("overlay", "mask", "input")


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
    """Label map uint8 ``(H, W)`` -> RGB ``(H, W, 3)`` through ``palette (C, 3)``.

    ``np.take`` rather than ``palette[labels]``: the same array for less CPU,
    which the camera pipeline spends beside inference.
    """
    return np.take(palette, labels, axis=0)


def class_fractions(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of pixels per class, float64 ``(num_classes,)`` summing to 1."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
    return counts / max(labels.size, 1)


def blend(rgb: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha) * rgb + alpha * color``; alpha in [0, 1]."""
    cv2 = require("cv2")
    return cv2.addWeighted(rgb, 1.0 - alpha, color, alpha, 0.0)


def _text_scale(height: int) -> float:
    return float(np.clip(height / 720.0, 0.3, 1.2))


def draw_hud(img: np.ndarray, lines: Sequence[str]) -> None:
    """Write ``lines`` top-left on a darkened box, in place."""
    if not lines:
        return
    cv2 = require("cv2")
    h = img.shape[0]
    scale = _text_scale(h)
    thick = 1 if scale < 0.8 else 2
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(s, font, scale, thick)[0] for s in lines]
    line_h = max(s[1] for s in sizes) + max(3, int(8 * scale))
    box_w = min(img.shape[1], max(s[0] for s in sizes) + 8)
    box_h = min(h, line_h * len(lines) + 6)
    roi = img[:box_h, :box_w]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)
    for i, s in enumerate(lines):
        y = (i + 1) * line_h
        cv2.putText(img, s, (4, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def _swatch(height: int, row: float) -> int:
    """Side of a legend colour square: most of a row, at most a fifteenth of the height."""
    return max(2, min(int(row * 0.6), height // 15))


def legend_layout(height: int, classes: Sequence[str]) -> tuple[int, float, list[str]]:
    """``(width, font scale, names)`` of the legend for ``classes`` at ``height``.

    Computed once per height and class list (the legend is drawn every frame).
    """
    width, scale, names = _fit_legend(height, tuple(classes))
    return width, scale, list(names)


@functools.lru_cache(maxsize=8)
def _fit_legend(height: int, classes: tuple[str, ...]) -> tuple[int, float, tuple[str, ...]]:
    """The layout :func:`legend_layout` returns.

    The row height sets the font scale; when the widest label
    (``"<name> 100%"``) does not fit, the panel widens (up to ``height``: a
    square), then the font shrinks (down to 0.3), and only then are names cut
    with "...". Depends on the names alone, so every frame of a run has the
    same size.
    """
    cv2 = require("cv2")
    font = cv2.FONT_HERSHEY_SIMPLEX
    width = legend_width(height)
    row = height / (len(classes) + 0.5)
    sw = _swatch(height, row)
    scale = float(np.clip(row / 30.0, 0.25, 0.6))

    def text_w(name: str, sc: float) -> int:
        return cv2.getTextSize(f"{name} 100%", font, sc, 1)[0][0]

    widest = max((text_w(c, scale) for c in classes), default=0)
    if 8 + sw + widest + 4 > width:
        width = min(max(width, height), 8 + sw + widest + 4)
    room = width - (8 + sw) - 4
    if widest > room:
        scale = max(0.3, scale * room / widest)
    names = []
    for c in classes:
        name = c
        while len(name) > 1 and text_w(name if name == c else name + "...", scale) > room:
            name = name[:-1]
        names.append(name if name == c else name + "...")
    return int(width), scale, tuple(names)


def legend_panel(height: int, classes: Sequence[str], palette: np.ndarray,
                 fractions: np.ndarray | None = None, width: int | None = None) -> np.ndarray:
    """A ``(height, width, 3)`` panel: colour swatch, class name and area share per class."""
    cv2 = require("cv2")
    fit_width, scale, names = legend_layout(height, classes)
    width = width or fit_width
    panel = np.full((height, width, 3), 24, dtype=np.uint8)
    n = len(classes)
    row = height / (n + 0.5)
    font = cv2.FONT_HERSHEY_SIMPLEX
    sw = _swatch(height, row)
    for i, name in enumerate(names):
        y0 = int(row * (i + 0.25))
        color = tuple(int(c) for c in palette[i])
        cv2.rectangle(panel, (4, y0), (4 + sw, y0 + sw), color, -1)
        label = name if fractions is None else f"{name} {100 * fractions[i]:.0f}%"
        cv2.putText(panel, label, (8 + sw, y0 + sw), font, scale, (235, 235, 235), 1, cv2.LINE_AA)
    return panel


def legend_width(height: int) -> int:
    """The legend's width before it widens for long names (:func:`legend_layout`)."""
    return int(max(64, round(height * 0.5)))


class Renderer:
    """Composes the output frame: panels side by side, HUD, legend.

    Args:
        classes: class names (``meta["classes"]``).
        palette: RGB colours per class (``meta["palette"]``).
        modes: panels left to right from :data:`MODES`.
        alpha: mask opacity of the overlay panel.
        hud: draw fps/latency lines on the first panel.
        legend: append the legend panel on the right.
    """

    def __init__(self, classes: Sequence[str], palette: Sequence[Sequence[int]], *,
                 modes: Sequence[str] = ("overlay",), alpha: float = 0.5, hud: bool = True,
                 legend: bool = True) -> None:
        bad = [m for m in modes if m not in MODES]
        if bad or not modes:
            from enet.errors import EnetError

            raise EnetError(f"unknown visualisation {','.join(bad) or '(none)'}; choose from {','.join(MODES)}")
        if not 0.0 <= alpha <= 1.0:
            from enet.errors import EnetError

            raise EnetError(f"alpha {alpha} is outside [0, 1]")
        self.classes = list(classes)
        self.palette = palette_array(palette, len(self.classes))
        self.modes = tuple(modes)
        self.alpha = alpha
        self.hud = hud
        self.legend = legend
        self.size: tuple[int, int] | None = None  # (H, W) of one panel, fixed by the first frame

    def render(self, rgb: np.ndarray, labels: np.ndarray, *, fractions: np.ndarray | None = None,
               hud_lines: Sequence[str] = ()) -> np.ndarray:
        """Frame RGB ``(H, W, 3)`` + labels ``(h, w)`` -> output RGB with even height and width.

        The first frame fixes the panel size; later frames of another size
        (a camera reopened at another resolution) are resized to it, so a
        video file keeps one frame size.
        """
        cv2 = require("cv2")
        if self.size is None:
            self.size = (rgb.shape[0], rgb.shape[1])
        h, w = self.size
        if rgb.shape[:2] != (h, w):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        if labels.shape != (h, w):
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        color = colorize(labels, self.palette)
        panels = []
        for mode in self.modes:
            if mode == "overlay":
                panels.append(blend(rgb, color, self.alpha))
            elif mode == "mask":
                panels.append(color)
            else:
                panels.append(rgb.copy())
        if self.hud:
            draw_hud(panels[0], hud_lines)
        if self.legend:
            panels.append(legend_panel(h, self.classes, self.palette, fractions))
        out = np.concatenate(panels, axis=1) if len(panels) > 1 else panels[0]
        pad_h, pad_w = out.shape[0] % 2, out.shape[1] % 2
        if pad_h or pad_w:  # H.264 in 4:2:0 needs even sizes
            out = cv2.copyMakeBorder(out, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return np.ascontiguousarray(out)
