"""Generated road-like datasets of simple shapes, 3 classes, for tests and the worked example.

Each frame is a grey road with white lane stripes and red obstacles
(rectangles and discs), some noise, and a void band at the bottom (the
"bonnet"). Frame sizes vary from frame to frame, every third image is a JPEG.

    python -m tests.datagen custom DIR        # SegNet layout + classes.json
    python -m tests.datagen cityscapes DIR    # leftImg8bit/ + gtFine/ labelIds
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CLASSES = ("road", "lane", "obstacle")
PALETTE = ((128, 64, 128), (255, 255, 255), (220, 20, 60))
VOID = 255
#: Class -> Cityscapes label id: road (7), sidewalk (8) for the stripes, car (26);
#: the bonnet is "ego vehicle" (1), which Cityscapes maps to void.
CITYSCAPES_IDS = (7, 8, 26)
CITYSCAPES_EGO = 1
_COLOURS = np.array([(95, 95, 100), (235, 235, 225), (200, 40, 40)], np.float32)
_SIZES = ((240, 320), (224, 300), (264, 352))  # (H, W), cycled


def draw_frame(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 ``(h, w, 3)`` frame and its label ``uint8 (h, w)`` (0..2, 255 void)."""
    import cv2

    lab = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):  # lane stripes, slanted
        x0 = int(rng.integers(w // 8, w - w // 8))
        x1 = x0 + int(rng.integers(-w // 4, w // 4))
        cv2.line(lab, (x0, 0), (x1, h - 1), 1, thickness=max(2, w // 40))
    for _ in range(int(rng.integers(1, 4))):  # obstacles
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(max(3, h // 16), max(4, h // 5)))
        if rng.random() < 0.5:
            cv2.circle(lab, (cx, cy), r, 2, thickness=-1)
        else:
            cv2.rectangle(lab, (cx - r, cy - r // 2), (cx + r, cy + r // 2), 2, thickness=-1)
    lab[h - max(1, h // 12):] = VOID
    img = np.where(lab[..., None] == VOID, np.float32(20), _COLOURS[np.minimum(lab, 2)])
    img = img + np.linspace(-20, 20, h, dtype=np.float32)[:, None, None] + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8), lab


def _write(path: Path, rgb: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgb[:, :, ::-1] if rgb.ndim == 3 else rgb):
        raise OSError(f"cannot write {path}")


def _frames(splits: dict[str, int], sizes: Sequence[tuple[int, int]], seed: int):
    rng = np.random.default_rng(seed)
    k = 0
    for split, n in splits.items():
        for i in range(n):
            h, w = sizes[k % len(sizes)]
            k += 1
            yield split, i, *draw_frame(rng, h, w)


def write_custom(root: str | Path, *, splits: dict[str, int] | None = None,
                 sizes: Sequence[tuple[int, int]] = _SIZES, seed: int = 0, jpeg_every: int = 3) -> Path:
    """A custom dataset: ``train/ trainannot/ val/ valannot/`` and ``classes.json``."""
    root = Path(root)
    splits = splits or {"train": 24, "val": 8}
    for split, i, img, lab in _frames(splits, sizes, seed):
        name = f"frame_{split}_{i:04d}"
        ext = ".jpg" if jpeg_every and i % jpeg_every == jpeg_every - 1 else ".png"
        _write(root / split / f"{name}{ext}", img)
        _write(root / f"{split}annot" / f"{name}.png", lab)
    doc = {"classes": list(CLASSES), "palette": [list(c) for c in PALETTE], "void_index": VOID}
    (root / "classes.json").write_text(json.dumps(doc, indent=1) + "\n")
    return root


def write_cityscapes(root: str | Path, *, splits: dict[str, int] | None = None,
                     sizes: Sequence[tuple[int, int]] = _SIZES, seed: int = 0) -> Path:
    """The same kind of frames in the Cityscapes layout, labels as official label ids."""
    root = Path(root)
    splits = splits or {"train": 24, "val": 8}
    ids = np.full(256, CITYSCAPES_EGO, np.uint8)
    ids[: len(CITYSCAPES_IDS)] = CITYSCAPES_IDS
    for split, i, img, lab in _frames(splits, sizes, seed):
        city = ("aachen", "bremen")[i % 2]
        name = f"{city}_{i:06d}_000019"
        _write(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", img)
        _write(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", ids[lab])
    return root


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.datagen", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("layout", choices=("custom", "cityscapes"))
    p.add_argument("output", help="folder to create")
    p.add_argument("--train", type=int, default=24)
    p.add_argument("--val", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    splits = {"train": args.train, "val": args.val}
    write = write_custom if args.layout == "custom" else write_cityscapes
    print(f"wrote {write(args.output, splits=splits, seed=args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
