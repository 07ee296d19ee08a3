"""INT8 and FP16 accuracy of the trained model on real CamVid val, with ONNX Runtime on the CPU.

Kept small for CI (calibration on 32 train frames, 20 val frames); the full
numbers (300 calibration frames, all 101 val frames) are in docs/engines.md,
made with ``enet-build-engine MODEL.onnx --int8 -o enet.int8.onnx``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from enet.engine.quant.convert import CalibrationSpec, compare_val, convert_onnx

pytestmark = [pytest.mark.slow, pytest.mark.camvid]
VAL_FRAMES = 20


@pytest.fixture(scope="module")
def trained_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from enet.defaults import default_model_path
    from enet.export.onnx import export_onnx

    ckpt = default_model_path()  # the shipped models/enet_camvid.pth: its absence is a failure, not a skip
    out = tmp_path_factory.mktemp("trained") / "enet.onnx"
    export_onnx(ckpt, out)
    return out


def test_int8_default_drop_within_one_point(trained_onnx: Path, camvid_root: Path, tmp_path: Path) -> None:
    q = tmp_path / "enet.int8.onnx"
    res = convert_onnx(trained_onnx, q, precision="int8",
                       calib=CalibrationSpec(data=camvid_root, images=32))
    assert res.report is not None and res.report.kept == {}
    cmp = compare_val(trained_onnx, q, camvid_root, limit=VAL_FRAMES)
    assert cmp["frames"] == VAL_FRAMES
    assert cmp["drop"] <= 1.0, cmp["drop"]


def test_fp16_matches_fp32(trained_onnx: Path, camvid_root: Path, tmp_path: Path) -> None:
    h = tmp_path / "enet.fp16.onnx"
    convert_onnx(trained_onnx, h, precision="fp16")
    cmp = compare_val(trained_onnx, h, camvid_root, limit=VAL_FRAMES)
    assert abs(cmp["drop"]) <= 0.2, cmp["drop"]
