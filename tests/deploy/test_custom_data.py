"""Your own classes end to end: checkpoint -> ONNX -> INT8 calibrated on the dataset's train/ -> enet-run.

No tool gets a class flag: classes and palette travel in the model's metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

from tests.datagen import CLASSES, PALETTE


class _Frames:
    name = "capture"

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, rgb: np.ndarray, t: float | None = None) -> None:
        self.frames.append(rgb.copy())

    def close(self) -> None:
        pass


def test_custom_model_from_checkpoint_to_enet_run(tiny_custom: Path, tiny_custom_checkpoint: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("onnxruntime")
    from enet.deploy.cli import RunConfig, run
    from enet.engine.cli import main as build_main
    from enet.engine.runtime.onnx_info import read_meta
    from enet.export.cli import main as export_main

    onnx_path, int8 = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    assert export_main([str(tiny_custom_checkpoint), "-o", str(onnx_path), "--verify-frames", "0", "-q"]) == 0
    assert build_main([str(onnx_path), "--int8", "-o", str(int8), "--data-root", str(tiny_custom),
                       "--calib-frames", "8", "-q"]) == 0
    out = capsys.readouterr().out
    assert "8 calibration frames" in out and "val mIoU (ONNX Runtime, 8 frames)" in out
    meta = read_meta(int8)
    assert meta["classes"] == list(CLASSES) and meta["palette"] == [list(c) for c in PALETTE]

    sink = _Frames()
    summary = run(RunConfig(input=str(tiny_custom / "val"), model=str(int8), visualize="mask", hud=False,
                            legend=False, extra_sinks=[sink]))
    assert summary.frames == 8 and len(sink.frames) == 8
    colours = {tuple(c) for f in sink.frames for c in np.unique(f.reshape(-1, 3), axis=0)}
    assert colours and colours <= set(PALETTE) | {(0, 0, 0)}  # (0, 0, 0): even-size padding
