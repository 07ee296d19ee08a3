"""Fixtures for engine tests: tiny exported ONNX models (64x96, untrained)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Float32 ONNX of the tiny checkpoint (batch 1, 64x96, logits only)."""
    from enet.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_checkpoint, out)
    return out


@pytest.fixture(scope="session")
def tiny_onnx_labels(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``tiny_onnx`` with the in-graph ``labels`` output."""
    from enet.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny_labels.onnx"
    export_onnx(tiny_checkpoint, out, labels=True)
    return out


def write_frames(folder: Path, n: int, size: tuple[int, int] = (48, 64), seed: int = 0) -> Path:
    """``n`` generated RGB PNG frames (blocky colours plus noise) in ``folder``."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(n):
        small = rng.integers(0, 256, size=(h // 8, w // 8, 3)).astype(np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        img = np.clip(img + rng.normal(0, 10, size=img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"F{i:04d}.png"), img)
    return folder


@pytest.fixture(scope="session")
def calib_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CamVid-like root whose ``train/`` holds 6 generated frames (48x64)."""
    root = tmp_path_factory.mktemp("calib") / "camvid"
    write_frames(root / "train", 6)
    return root
