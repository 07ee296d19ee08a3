"""The paper's speed and size figures, written down once.

Paszke, Chaurasia, Kim, Culurciello, "ENet: A Deep Neural Network Architecture
for Real-Time Semantic Segmentation", arXiv:1606.02147 (2016).

- Table 2: ENet inference time (ms) and frame rate (fps) at batch 1 on an
  NVIDIA Jetson TX1 and an NVIDIA Titan X (Torch7 + cuDNN; the paper's own
  implementation, not TensorRT).
- Table 3: ENet hardware requirements at 640x360: 3.83 GFLOPs, 0.37M params.

Resolutions in the paper are written width x height (480x320 etc.); every
record here keeps that order and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Paper devices, keyed the way reports name them.
DEVICES: dict[str, str] = {
    "tx1": "NVIDIA Jetson TX1",
    "titanx": "NVIDIA Titan X (Maxwell)",
}


@dataclass(frozen=True)
class PaperTiming:
    """One Table 2 cell: ENet at ``width x height`` on ``device``."""

    device: str  # key of DEVICES
    width: int
    height: int
    ms: float
    fps: float


#: Table 2, ENet rows only (SegNet's are not reproduced here).
TABLE2: tuple[PaperTiming, ...] = (
    PaperTiming("tx1", 480, 320, 47.0, 21.1),
    PaperTiming("tx1", 640, 360, 69.0, 14.6),
    PaperTiming("tx1", 1280, 720, 262.0, 3.8),
    PaperTiming("titanx", 640, 360, 7.0, 135.4),
    PaperTiming("titanx", 1280, 720, 21.0, 46.8),
    PaperTiming("titanx", 1920, 1080, 46.0, 21.6),
)

#: The resolutions Table 2 reports (width, height), in paper order.
RESOLUTIONS: tuple[tuple[int, int], ...] = ((480, 320), (640, 360), (1280, 720), (1920, 1080))

#: Table 3, ENet: GFLOPs and parameters at 640x360 (width x height).
TABLE3_GFLOPS = 3.83
TABLE3_PARAMS = 370_000
TABLE3_RESOLUTION = (640, 360)


def paper_timing(device: str, width: int, height: int) -> PaperTiming | None:
    """The Table 2 cell for ``device`` at ``width x height``, or None if the paper has none."""
    for t in TABLE2:
        if t.device == device and t.width == width and t.height == height:
            return t
    return None


def paper_timings(width: int, height: int) -> dict[str, PaperTiming]:
    """All Table 2 cells at ``width x height``, keyed by device."""
    return {t.device: t for t in TABLE2 if t.width == width and t.height == height}


def comparison_device(device_kind: str) -> str | None:
    """The paper device a measurement on ``device_kind`` is naturally compared with.

    ``jetson`` -> TX1, ``desktop`` -> Titan X, ``cpu`` -> None (reports show both).
    """
    return {"jetson": "tx1", "desktop": "titanx"}.get(device_kind)
