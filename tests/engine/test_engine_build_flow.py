"""enet-build-engine -o X.engine up to the TensorRT call: plan, conversion, sidecar.

TensorRT is replaced by feature stand-ins (as in test_engine_trt_compat) and
the Polygraphy build by a recorder, so everything around the build runs for
real; the build itself is covered by the gpu/trt tests only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest

import enet.engine.build as build
from enet.engine import cuda
from enet.engine.cli import main
from enet.engine.onnx_info import precision_of
from enet.engine.sidecar import read_sidecar, sidecar_onnx

from tests.engine.test_engine_trt_compat import TRT11, TRT85, TRT103  # noqa: E402 - sibling test module

pytest.importorskip("onnxruntime")


@pytest.fixture()
def recorder(monkeypatch):
    calls = []

    def fake_build(onnx_path, plan, **kw):
        calls.append({"onnx": Path(onnx_path), "plan": plan, **kw})
        if kw.get("calib_batches") is not None:
            calls[-1]["batches"] = list(kw["calib_batches"]())
        return b"serialized-plan"

    monkeypatch.setattr(build, "build_engine_bytes", fake_build)
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("Stand-in GPU", "8.9"))
    return calls


def _use(monkeypatch, trt) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", trt)


def test_trt11_int8_compiles_the_qdq_onnx(tiny_onnx, calib_root, tmp_path, monkeypatch, recorder, capsys) -> None:
    _use(monkeypatch, TRT11)
    eng = tmp_path / "enet.engine"
    rc = main([str(tiny_onnx), "--int8", "--calib-data", str(calib_root), "--calib-images", "2",
               "--val-images", "0", "--verify-images", "0", "-o", str(eng)])
    assert rc == 0
    (call,) = recorder
    assert call["plan"].strongly_typed and call["plan"].flags == () and not call["plan"].calibrator
    assert call["onnx"] == tmp_path / "enet.int8.onnx"
    assert precision_of(onnx.load(str(call["onnx"]))) == "int8"
    assert eng.read_bytes() == b"serialized-plan"
    side = read_sidecar(eng)
    assert side["tensorrt_version"] == "11.0.0" and side["gpu_name"] == "Stand-in GPU"
    assert side["precision"] == "int8" and side["input_shape"] == [1, 3, 64, 96]
    assert side["onnx"] == "enet.int8.onnx" and sidecar_onnx(eng, side).is_file()
    assert "--calib-images 2" in side["rebuild_command"] and side["meta"]["input_size"] == [64, 96]
    from enet.fileio import sha256_file

    assert side["onnx_sha256"] == sha256_file(tmp_path / "enet.int8.onnx")
    assert "wrote " + str(eng) in capsys.readouterr().out


def test_trt10_int8_auto_uses_the_legacy_calibrator(tiny_onnx, calib_root, tmp_path, monkeypatch, recorder) -> None:
    _use(monkeypatch, TRT103)
    eng = tmp_path / "enet.engine"
    cache = tmp_path / "calib.cache"
    assert main([str(tiny_onnx), "--int8", "--calib-data", str(calib_root), "--calib-images", "3",
                 "--calib-cache", str(cache), "--verify-images", "0", "-o", str(eng)]) == 0
    (call,) = recorder
    assert call["plan"].calibrator and "INT8" in call["plan"].flags
    assert call["onnx"] == tiny_onnx  # the plain FP32 ONNX goes to TensorRT
    assert len(call["batches"]) == 3 and call["batches"][0].shape == (1, 3, 64, 96)
    assert str(call["calib_cache"]) == str(cache)
    assert json.loads((tmp_path / "enet.engine.json").read_text())["plan"]["calibrator"] is True


def test_trt85_fp16_uses_the_builder_flag(tiny_onnx, tmp_path, monkeypatch, recorder) -> None:
    _use(monkeypatch, TRT85)
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--fp16", "--verify-images", "0", "--workspace", "256",
                 "--timing-cache", str(tmp_path / "t.cache"), "-o", str(eng)]) == 0
    (call,) = recorder
    assert call["plan"].flags == ("FP16",) and not call["plan"].strongly_typed and call["onnx"] == tiny_onnx
    assert call["workspace_mb"] == 256 and str(call["timing_cache"]).endswith("t.cache")
    assert not (tmp_path / "enet.fp16.onnx").exists()


def test_dla_without_reduced_precision_is_refused(tiny_onnx, tmp_path, monkeypatch, recorder, capsys) -> None:
    _use(monkeypatch, TRT103)
    rc = main([str(tiny_onnx), "--dla-core", "0", "-o", str(tmp_path / "e.engine")])
    assert rc != 0 and "DLA runs FP16 or INT8" in capsys.readouterr().err and recorder == []
