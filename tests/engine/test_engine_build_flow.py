"""enet-build-engine -o X.engine up to the TensorRT call: plan, dry run, conversion, calibration cache, sidecar.

TensorRT is replaced by feature stand-ins (as in test_engine_trt_compat) and
the Polygraphy build by a recorder, so everything around the build runs for
real; the build itself is covered by the gpu/trt tests only. The Polygraphy
calls inside the build are checked against the installed Polygraphy in
test_engine_api_drift.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import enet.engine.trt.build as trt_build
from enet.engine.runtime import cuda
from enet.engine.cli import main
from enet.engine.runtime.onnx_info import precision_of
from enet.engine.runtime.sidecar import read_sidecar, sidecar_onnx
from enet.engine.trt.calib_cache import read_calibration_cache
from enet.fileio import sha256_file

from tests.engine.test_engine_trt_compat import TRT11, TRT85, TRT103  # noqa: E402 - sibling test module

pytest.importorskip("onnxruntime")


@pytest.fixture()
def recorder(monkeypatch):
    calls = []

    def fake_build(onnx_path, plan, **kw):
        calls.append({"onnx": Path(onnx_path), "plan": plan, **kw})
        return b"serialized-plan"

    monkeypatch.setattr(trt_build, "build_engine_bytes", fake_build)
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("Stand-in GPU", "8.9"))
    return calls


def _use(monkeypatch, trt) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", trt)


def _no_tensorrt(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails, as on a machine without TensorRT


def _calib(calib_root: Path, n: int = 2, cache: Path | None = None) -> list[str]:
    return ["--calib-data", str(calib_root), "--calib-frames", str(n),
            *(["--calib-cache", str(cache)] if cache else [])]


def _act_scales(model: onnx.ModelProto) -> dict[str, float]:
    """Activation tensor -> scale of its QuantizeLinear in a Q/DQ ONNX."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def test_trt11_int8_compiles_the_qdq_onnx(tiny_onnx, calib_root, tmp_path, monkeypatch, recorder, capsys) -> None:
    _use(monkeypatch, TRT11)
    eng = tmp_path / "enet.engine"
    rc = main([str(tiny_onnx), "--int8", *_calib(calib_root), "--val-frames", "0", "--verify-frames", "0",
               "-o", str(eng)])
    assert rc == 0
    (call,) = recorder
    assert call["plan"].strongly_typed and call["plan"].flags == () and not call["plan"].calibrator
    assert call["onnx"] == tmp_path / "enet.int8.onnx" and call["profile_shape"] is None
    assert precision_of(onnx.load(str(call["onnx"]))) == "int8"
    assert eng.read_bytes() == b"serialized-plan"
    side = read_sidecar(eng)
    assert side["tensorrt_version"] == "11.0.0" and side["gpu_name"] == "Stand-in GPU"
    assert side["precision"] == "int8" and side["input_shape"] == [1, 3, 64, 96]
    assert side["onnx"] == "enet.int8.onnx" and sidecar_onnx(eng, side).is_file()
    assert side["input_name"] == "input" and side["outputs"] == {"logits": "logits", "labels": None}
    assert "--calib-frames 2" in side["rebuild_command"] and side["meta"]["input_size"] == [64, 96]
    assert side["onnx_sha256"] == sha256_file(tmp_path / "enet.int8.onnx")
    assert side["engine_sha256"] == __import__("hashlib").sha256(b"serialized-plan").hexdigest()
    out = capsys.readouterr().out
    assert "wrote " + str(eng) in out and "parses      enet.int8.onnx (calibrated INT8 Q/DQ ONNX)" in out


def test_trt10_int8_auto_compiles_the_measured_qdq_onnx(tiny_onnx, calib_root, tmp_path, monkeypatch,
                                                         recorder, capsys) -> None:
    _use(monkeypatch, TRT103)
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--int8", *_calib(calib_root), "--val-frames", "0", "--verify-frames", "0",
                 "-o", str(eng)]) == 0
    (call,) = recorder
    assert call["onnx"] == tmp_path / "enet.int8.onnx" and call["plan"].strongly_typed
    assert call["plan"].flags == () and not call["plan"].calibrator and call["calib_cache"] is None
    out = capsys.readouterr().out
    assert "INT8: " in out and "Conv/ConvTranspose layers quantized" in out  # the CLI's conversion report ran


def test_calibrator_path_feeds_tensorrt_the_measured_ranges(tiny_onnx, calib_root, tmp_path, monkeypatch,
                                                            recorder, capsys) -> None:
    _use(monkeypatch, TRT103)
    ranges = tmp_path / "ranges.json"
    qdq = tmp_path / "measured.int8.onnx"
    assert main([str(tiny_onnx), "--int8", *_calib(calib_root, 3, ranges), "--val-frames", "0", "-o", str(qdq)]) == 0
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--int8", "--int8-mode", "calibrator", *_calib(calib_root, 3, ranges),
                 "--verify-frames", "0", "-o", str(eng)]) == 0
    (call,) = recorder
    assert call["plan"].calibrator and call["plan"].flags == ("INT8", "FP16") and call["onnx"] == tiny_onnx
    cache = tmp_path / "enet.calib.cache"
    assert call["calib_cache"] == cache
    header, scales = read_calibration_cache(cache.read_text())
    assert header == "TRT-100300-EntropyCalibration2"
    qdq_scales = _act_scales(onnx.load(str(qdq)))
    assert qdq_scales and scales == qdq_scales  # the same float32 scales, bit for bit
    side = read_sidecar(eng)
    assert side["plan"]["calibrator"] is True and side["calibration_cache"] == "enet.calib.cache"
    out = capsys.readouterr().out
    assert "accuracy was not measured on this machine" in out and "NOT measured" in out
    assert not (tmp_path / "enet.int8.onnx").exists()  # no Q/DQ file: TensorRT compiles the FP32 ONNX


def test_trt85_fp16_uses_the_builder_flag(tiny_onnx, tmp_path, monkeypatch, recorder) -> None:
    _use(monkeypatch, TRT85)
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--fp16", "--verify-frames", "0", "--workspace", "256",
                 "--timing-cache", str(tmp_path / "t.cache"), "-o", str(eng)]) == 0
    (call,) = recorder
    assert call["plan"].flags == ("FP16",) and not call["plan"].strongly_typed and call["onnx"] == tiny_onnx
    assert call["workspace_mb"] == 256 and str(call["timing_cache"]).endswith("t.cache")
    assert not (tmp_path / "enet.fp16.onnx").exists()


def test_dynamic_batch_gets_an_optimization_profile(tiny_checkpoint, tmp_path, monkeypatch, recorder) -> None:
    from enet.export.onnx import export_onnx

    model = tmp_path / "dyn.onnx"
    export_onnx(tiny_checkpoint, model, dynamic_batch=True)
    _use(monkeypatch, TRT103)
    eng = tmp_path / "dyn.engine"
    assert main([str(model), "--batch", "2", "--verify-frames", "0", "-o", str(eng)]) == 0
    (call,) = recorder
    assert call["profile_shape"] == (2, 3, 64, 96) and call["input_name"] == "input"
    side = read_sidecar(eng)
    assert side["input_shape"] == [2, 3, 64, 96] and side["profile"] == [2, 3, 64, 96]


def test_dla_without_reduced_precision_is_refused(tiny_onnx, tmp_path, monkeypatch, recorder, capsys) -> None:
    _use(monkeypatch, TRT103)
    rc = main([str(tiny_onnx), "--dla-core", "0", "-o", str(tmp_path / "e.engine")])
    assert rc != 0 and "DLA runs FP16 or INT8" in capsys.readouterr().err and recorder == []


# ------------------------------------------------------------------ dry run


def _dry(capsys, model: Path, out: Path, version: str, *extra: str) -> tuple[int, str, str]:
    rc = main([str(model), *extra, "-o", str(out), "--dry-run", "--trt-version", version])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize("version, network, flags", [
    ("8.5", "weakly typed", "BuilderFlag.INT8"),
    ("8.6", "weakly typed", "BuilderFlag.INT8"),
    ("10.3", "strongly typed (NetworkDefinitionCreationFlag.STRONGLY_TYPED)", "none"),
    ("11", "strongly typed (always, from TensorRT 11)", "none"),
])
def test_dry_run_int8_plans_the_qdq_onnx_without_tensorrt(tiny_onnx, calib_root, tmp_path, monkeypatch, capsys,
                                                         version, network, flags) -> None:
    _no_tensorrt(monkeypatch)
    eng = tmp_path / "enet.engine"
    rc, out, err = _dry(capsys, tiny_onnx, eng, version, "--int8", *_calib(calib_root))
    assert rc == 0 and err == ""
    lines = dict(ln.strip().split(None, 1) for ln in out.splitlines()[1:] if ln.strip())
    assert f"TensorRT {version} (--trt-version; dry run, nothing is built)" in out.splitlines()[0]
    assert lines["parses"] == "enet.int8.onnx (calibrated INT8 Q/DQ ONNX)"
    assert lines["converts"].startswith("calibrate INT8 ranges on 2 frames") and "val mIoU" in lines["converts"]
    assert lines["network"] == network and lines["flags"] == flags and lines["calibrator"] == "none"
    assert "whose val mIoU is measured" in lines["accuracy"] and "blocked" not in lines
    assert not list(tmp_path.iterdir())  # nothing written


def test_dry_run_below_85_plans_the_calibrator_and_says_the_build_stops(tiny_onnx, calib_root, tmp_path,
                                                                       monkeypatch, capsys) -> None:
    _no_tensorrt(monkeypatch)
    rc, out, _ = _dry(capsys, tiny_onnx, tmp_path / "enet.engine", "8.4.1", "--int8", *_calib(calib_root))
    assert rc == 0
    assert "calibrator  IInt8EntropyCalibrator2 reading enet.calib.cache" in out
    assert "parses      tiny.onnx (float32 ONNX)" in out and "BuilderFlag.INT8, BuilderFlag.FP16" in out
    assert "NOT measured on this machine" in out and "a real build stops here" in out


def test_dry_run_calibrator_only_when_asked_and_never_on_11(tiny_onnx, calib_root, tmp_path, monkeypatch,
                                                          capsys) -> None:
    _no_tensorrt(monkeypatch)
    eng = tmp_path / "enet.engine"
    rc, out, _ = _dry(capsys, tiny_onnx, eng, "10.3", "--int8", "--int8-mode", "calibrator", *_calib(calib_root))
    assert rc == 0 and "IInt8EntropyCalibrator2" in out and "asked for with --int8-mode calibrator" in out
    rc, _, err = _dry(capsys, tiny_onnx, eng, "11", "--int8", "--int8-mode", "calibrator", *_calib(calib_root))
    assert rc == 1 and "no INT8 calibrator (removed in TensorRT 11)" in err and err.count("\n") == 1
    rc, out, _ = _dry(capsys, tiny_onnx, eng, "8.6", "--fp16")
    assert rc == 0 and "flags       BuilderFlag.FP16" in out and "parses      tiny.onnx" in out


def test_dry_run_needs_a_version_without_tensorrt(tiny_onnx, tmp_path, monkeypatch, capsys) -> None:
    _no_tensorrt(monkeypatch)
    assert main([str(tiny_onnx), "-o", str(tmp_path / "e.engine"), "--dry-run"]) == 1
    assert "pass --trt-version" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # --trt-version without --dry-run: a bad command line
        main([str(tiny_onnx), "-o", str(tmp_path / "e.engine"), "--trt-version", "10.3"])
    assert e.value.code == 2


def test_real_build_prints_the_dry_run_plan(tiny_onnx, calib_root, tmp_path, monkeypatch, recorder, capsys) -> None:
    eng = tmp_path / "enet.engine"
    args = [str(tiny_onnx), "--int8", *_calib(calib_root), "--val-frames", "0", "--verify-frames", "0", "-o", str(eng)]
    _no_tensorrt(monkeypatch)
    assert main([*args, "--dry-run", "--trt-version", "10.3.0"]) == 0
    planned = capsys.readouterr().out.splitlines()
    _use(monkeypatch, TRT103)
    assert main(args) == 0
    built = capsys.readouterr().out.splitlines()
    assert built[1:len(planned)] == planned[1:]  # same plan; only the header line differs
    assert built[0] == "build plan, TensorRT 10.3.0 (installed here):"


# ------------------------------------------------------------------ verification


def test_build_ends_with_the_comparison(tiny_onnx, tiny_camvid, tmp_path, monkeypatch, recorder, capsys) -> None:
    _use(monkeypatch, TRT103)
    seen = {}

    def fake_verify(engine, onnx_path, frames, labels_dir=None):
        seen.update(engine=engine, onnx=onnx_path, frames=frames, labels=labels_dir)
        return {"frames": len(frames), "agreement": 0.995, "miou_engine": 0.41, "miou_onnx": 0.42, "labelled": 3}

    monkeypatch.setattr(trt_build, "verify_engine", fake_verify)
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--verify-frames", "3", "--data-root", str(tiny_camvid), "-o", str(eng)]) == 0
    assert seen["onnx"] == tiny_onnx and len(seen["frames"]) == 3 and seen["labels"] == tiny_camvid / "valannot"
    out = capsys.readouterr().out
    assert "99.50% argmax agreement; val mIoU on these frames: engine 41.00, ONNX Runtime 42.00 (3 labelled)" in out
    monkeypatch.setattr(trt_build, "verify_engine", lambda *a, **k: pytest.fail("no frames, no comparison"))
    assert main([str(tiny_onnx), "--data-root", str(tmp_path / "nowhere"), "-o", str(eng)]) == 0
    assert "the engine was not compared with ONNX Runtime" in capsys.readouterr().out


def test_verify_engine_agreement_and_miou(tiny_onnx, tiny_camvid, monkeypatch) -> None:
    """The comparison itself, with ONNX Runtime standing in for the engine (so agreement must be total)."""
    import enet.engine.runtime.trt_backend as trt_backend
    from enet.engine.trt import verify
    from enet.engine.runtime.ort_backend import OrtBackend

    monkeypatch.setattr(trt_backend, "TrtBackend", lambda path: OrtBackend(path, providers="cpu"))
    frames = verify.engine_frames(3, tiny_camvid)
    v = verify.verify_engine(tiny_onnx, tiny_onnx, frames, labels_dir=tiny_camvid / "valannot")
    assert v["frames"] == 3 and v["agreement"] == 1.0 and v["labelled"] == 3
    assert v["miou_engine"] == v["miou_onnx"] and 0.0 <= v["miou_onnx"] <= 1.0
    v = verify.verify_engine(tiny_onnx, tiny_onnx, frames, labels_dir=tiny_camvid / "nolabels")
    assert v["miou_engine"] is None and v["labelled"] == 0
    assert np.isclose(v["agreement"], 1.0)
