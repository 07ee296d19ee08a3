"""CamVid (SegNet 11-class version): class names, palette, normalisation.

Defined here once; a checkpoint carries them as metadata and every later tool
(export, engine, bench, deploy) reads them from the checkpoint or the ONNX,
never from this module.
"""

from __future__ import annotations

from enet.transforms import DEFAULT_RESIZE

CLASSES: tuple[str, ...] = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)
#: Label value of unlabelled pixels, ignored by the loss and by every metric.
VOID_INDEX = 11

#: SegNet tutorial colours, RGB.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
    (0, 128, 192),
)

#: Per-channel RGB mean/std of CamVid train in [0, 1], measured on the 367
#: frames at ../shared/data/camvid/train.
MEAN: tuple[float, float, float] = (0.4119, 0.4251, 0.4327)
STD: tuple[float, float, float] = (0.3071, 0.3116, 0.3072)

#: Native frame size of the SegNet CamVid release (height, width).
INPUT_SIZE: tuple[int, int] = (360, 480)


def default_metadata() -> dict:
    """Metadata of a fresh CamVid model, in checkpoint form (JSON-able)."""
    return {
        "classes": list(CLASSES),
        "palette": [list(c) for c in PALETTE],
        "void_index": VOID_INDEX,
        "mean": list(MEAN),
        "std": list(STD),
        "input_size": list(INPUT_SIZE),
        "resize": DEFAULT_RESIZE,
    }
