"""enet-build-engine -o X.engine up to the TensorRT call: plan, dry run, conversion, the gate, sidecar.

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
    assert call["plan"].strongly_typed and call["plan"].flags == () and not call["plan"].fp32_mask
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
    assert call["plan"].flags == () and call["mask_tensors"] == ()
    out = capsys.readouterr().out
    assert "INT8: " in out and "Conv/ConvTranspose layers quantized" in out  # the CLI's conversion report ran


def test_trt85_fp16_uses_the_builder_flag(tiny_onnx, tmp_path, monkeypatch, recorder) -> None:
    _use(monkeypatch, TRT85)
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--fp16", "--verify-frames", "0", "--workspace", "256",
                 "--timing-cache", str(tmp_path / "t.cache"), "-o", str(eng)]) == 0
    (call,) = recorder
    assert call["plan"].flags == ("FP16",) and not call["plan"].strongly_typed and call["onnx"] == tiny_onnx
    assert call["plan"].fp32_mask and any(t.endswith("/ReduceMax_output_0") for t in call["mask_tensors"])
    assert any(t.endswith("/Equal_output_0") for t in call["mask_tensors"])
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
    assert lines["network"] == network and lines["flags"] == flags and "calibrator" not in lines
    assert "whose val mIoU is measured" in lines["accuracy"] and "blocked" not in lines
    assert not list(tmp_path.iterdir())  # nothing written


def test_dry_run_below_85_says_int8_needs_85(tiny_onnx, calib_root, tmp_path, monkeypatch, capsys) -> None:
    _no_tensorrt(monkeypatch)
    rc, out, err = _dry(capsys, tiny_onnx, tmp_path / "enet.engine", "8.4.1", "--int8", *_calib(calib_root))
    assert rc == 1 and out == "" and "INT8 needs TensorRT 8.5 or newer" in err and err.count("\n") == 1
    rc, out, _ = _dry(capsys, tiny_onnx, tmp_path / "enet.engine", "8.4.1", "--fp16")
    assert rc == 0 and "a real build stops here" in out


def test_dry_run_dla_int8_on_trt85_says_what_really_runs_where(tiny_onnx, calib_root, tmp_path, monkeypatch,
                                                               capsys) -> None:
    """Issue 28.9: ``--dry-run --trt-version 8.5 --dla-core 0 --int8`` says the Q/DQ network would run on the GPU."""
    _no_tensorrt(monkeypatch)
    rc, out, err = _dry(capsys, tiny_onnx, tmp_path / "enet.engine", "8.5", "--int8", "--dla-core", "0",
                        *_calib(calib_root))
    assert rc == 0 and err == ""
    assert "runs        DLA: nothing of the INT8 Q/DQ network; every layer would run on the GPU" in out
    assert "blocked     a real build stops here" in out and "--fp16" in out
    rc, out, err = _dry(capsys, tiny_onnx, tmp_path / "enet.engine", "10.3", "--int8", "--dla-core", "0",
                        *_calib(calib_root))
    assert rc == 0 and "runs        DLA: the INT8 Q/DQ" in out and "blocked" not in out


def test_dry_run_has_no_calibrator_option_or_line(tiny_onnx, calib_root, tmp_path, monkeypatch, capsys) -> None:
    _no_tensorrt(monkeypatch)
    eng = tmp_path / "enet.engine"
    with pytest.raises(SystemExit) as e:
        main([str(tiny_onnx), "--int8", "--int8-mode", "calibrator", "-o", str(eng), "--dry-run",
              "--trt-version", "10.3"])
    assert e.value.code == 2
    for version in ("8.5", "8.6", "10.3", "11"):
        rc, out, _ = _dry(capsys, tiny_onnx, eng, version, "--int8", *_calib(calib_root))
        assert rc == 0 and "Calibrator" not in out and "calib.cache" not in out
        assert "parses      enet.int8.onnx (calibrated INT8 Q/DQ ONNX)" in out


def test_dry_run_fp16_on_weak_typing_pins_the_mask(tiny_onnx, tmp_path, monkeypatch, capsys) -> None:
    _no_tensorrt(monkeypatch)
    eng = tmp_path / "enet.engine"
    for version in ("8.5", "8.6"):
        rc, out, _ = _dry(capsys, tiny_onnx, eng, version, "--fp16")
        assert rc == 0 and "flags       BuilderFlag.FP16, BuilderFlag.OBEY_PRECISION_CONSTRAINTS" in out
        # down1 and down2: Reshape, Transpose, Reshape, ReduceMax, Unsqueeze, Equal each
        assert "mask        12 layers of the unpooling masks" in out
    for version in ("10.3", "11"):
        rc, out, _ = _dry(capsys, tiny_onnx, eng, version, "--fp16")
        assert rc == 0 and "mask " not in out and "OBEY_PRECISION_CONSTRAINTS" not in out


def test_dla_core_is_refused_on_a_tensorrt_without_dla(tiny_onnx, tmp_path, monkeypatch, capsys) -> None:
    _no_tensorrt(monkeypatch)
    rc, _, err = _dry(capsys, tiny_onnx, tmp_path / "e.engine", "11.0", "--fp16", "--dla-core", "0")
    assert rc == 1 and "no DLA support" in err and err.count("\n") == 1
    rc, out, _ = _dry(capsys, tiny_onnx, tmp_path / "e.engine", "8.5", "--fp16", "--dla-core", "1")
    assert rc == 0 and "DLA         core 1, GPU fallback on" in out


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

    def fake_verify(engine, onnx_path, frames, data_root=None):
        seen.update(engine=Path(engine), onnx=onnx_path, frames=frames, root=data_root)
        assert Path(engine).is_file() and not (tmp_path / "enet.engine").exists()  # checked before it is written
        return {"frames": len(frames), "agreement": 0.995, "miou_engine": 0.41, "miou_onnx": 0.42, "labelled": 3}

    monkeypatch.setattr(trt_build, "verify_engine", fake_verify)
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--verify-frames", "3", "--data-root", str(tiny_camvid), "-o", str(eng)]) == 0
    assert seen["onnx"] == tiny_onnx and len(seen["frames"]) == 3 and seen["root"] == tiny_camvid
    assert seen["engine"].parent.parent == tmp_path and not seen["engine"].parent.exists()  # trial folder gone
    out = capsys.readouterr().out
    assert "99.50% argmax agreement; val mIoU on these frames: engine 41.00, ONNX Runtime 42.00 (3 labelled)" in out
    check = read_sidecar(eng)["check"]
    assert check["checked"] and check["agreement"] == 0.995 and check["min_agreement"] == 0.95
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camvid", "enet.engine", "enet.engine.json"]
    # issue 28.7: the gate never passes on nothing to compare: no val split and no calibration frames fail
    # the build, and the engine already there stays as it was
    before = eng.read_bytes()
    monkeypatch.setattr(trt_build, "verify_engine", lambda *a, **k: pytest.fail("no frames, no comparison"))
    assert main([str(tiny_onnx), "--data-root", str(tmp_path / "nowhere"), "-o", str(eng)]) == 1
    err = capsys.readouterr().err
    assert "cannot check the engine against the float32 model" in err and err.count("\n") == 1
    assert eng.read_bytes() == before and read_sidecar(eng)["check"]["checked"]


def test_without_val_labels_the_gate_compares_on_the_calibration_frames(tiny_onnx, calib_root, tmp_path,
                                                                         monkeypatch, recorder, capsys) -> None:
    """Issue 28.7: argmax agreement needs no labels: a dataset without a val split is compared on its
    calibration frames, against the float32 model."""
    _use(monkeypatch, TRT103)
    seen = {}

    def fake_verify(engine, onnx_path, frames, data_root=None):
        seen.update(onnx=Path(onnx_path), frames=list(frames))
        return {"frames": len(frames), "agreement": 0.99, "miou_engine": None, "miou_onnx": None, "labelled": 0}

    monkeypatch.setattr(trt_build, "verify_engine", fake_verify)
    eng = tmp_path / "enet.engine"
    assert main([str(tiny_onnx), "--int8", *_calib(calib_root), "--val-frames", "0", "--verify-frames", "2",
                 "--data-root", str(calib_root), "-o", str(eng)]) == 0
    assert seen["onnx"] == tiny_onnx  # the float32 model, not the Q/DQ ONNX the engine compiled
    assert len(seen["frames"]) == 2 and all(f.parent.name == "train" for f in seen["frames"])
    assert read_sidecar(eng)["check"]["checked"]


def _disagreeing(agreement: float):
    def fake_verify(engine, onnx_path, frames, data_root=None):
        return {"frames": len(frames), "agreement": agreement, "miou_engine": None, "miou_onnx": None,
                "labelled": 0}
    return fake_verify


def test_the_gate_fails_a_disagreeing_engine_and_leaves_nothing(tiny_onnx, tiny_camvid, calib_root, tmp_path,
                                                                monkeypatch, recorder, capsys) -> None:
    _use(monkeypatch, TRT103)
    monkeypatch.setattr(trt_build, "verify_engine", _disagreeing(0.62))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    eng = out_dir / "enet.engine"
    rc = main([str(tiny_onnx), "--int8", *_calib(calib_root), "--val-frames", "0", "--verify-frames", "2",
               "--data-root", str(tiny_camvid), "-o", str(eng)])
    err = capsys.readouterr().err
    assert rc == 1 and len(recorder) == 1  # built, then refused
    assert "62.00% of the pixels of 2 val frames from" in err and "below --min-agreement 95; nothing written" in err
    errors = [ln for ln in err.splitlines() if "error:" in ln]  # (the calibration's progress line is logged too)
    assert len(errors) == 1 and errors[0].startswith("enet-build-engine: error: ") and "Traceback" not in err
    assert list(out_dir.iterdir()) == []  # no engine, no sidecar, no converted Q/DQ ONNX, no trial folder
    # settable: the same engine passes a looser gate
    rc = main([str(tiny_onnx), "--fp16", "--verify-frames", "2", "--data-root", str(tiny_camvid),
               "--min-agreement", "60", "-o", str(eng)])
    assert rc == 0 and eng.is_file() and read_sidecar(eng)["check"]["min_agreement"] == 0.6
    assert "below 60% argmax agreement, or with no frames to compare on, the build fails" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([str(tiny_onnx), "--min-agreement", "101", "-o", str(eng)])
    assert e.value.code == 2


def test_verify_engine_agreement_and_miou(tiny_onnx, tiny_camvid, tmp_path, monkeypatch) -> None:
    """The comparison itself, with ONNX Runtime standing in for the engine (so agreement must be total)."""
    import enet.engine.runtime.trt_backend as trt_backend
    from enet.engine.trt import verify
    from enet.engine.runtime.ort_backend import OrtBackend

    monkeypatch.setattr(trt_backend, "TrtBackend", lambda path: OrtBackend(path, providers="cpu"))
    frames = verify.engine_frames(3, tiny_camvid)
    v = verify.verify_engine(tiny_onnx, tiny_onnx, frames, data_root=tiny_camvid)
    assert v["frames"] == 3 and v["agreement"] == 1.0 and v["labelled"] == 3
    assert v["miou_engine"] == v["miou_onnx"] and 0.0 <= v["miou_onnx"] <= 1.0
    v = verify.verify_engine(tiny_onnx, tiny_onnx, frames, data_root=tmp_path / "nolabels")
    assert v["miou_engine"] is None and v["labelled"] == 0
    assert np.isclose(v["agreement"], 1.0)


def test_the_check_reads_labels_in_the_datasets_own_layout(tmp_path, monkeypatch) -> None:
    """Cityscapes keeps its labels in gtFine/, not valannot/: the check finds and decodes them there."""
    import enet.engine.runtime.ort_backend as ort_backend
    import enet.engine.runtime.trt_backend as trt_backend
    from enet.datasets import open_dataset
    from enet.engine.trt import verify

    from tests.datagen import write_cityscapes

    root = write_cityscapes(tmp_path / "cs", splits={"train": 1, "val": 3})
    meta = open_dataset(root).metadata(mean=[0.5] * 3, std=[0.25] * 3, input_size=[32, 64])

    class StandIn:
        def __init__(self, path, **_):
            self.input_shape, self.meta = (1, 3, 32, 64), meta

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def infer_labels(self, x):
            return np.zeros((x.shape[0], 32, 64), np.int64)

    monkeypatch.setattr(trt_backend, "TrtBackend", StandIn)
    monkeypatch.setattr(ort_backend, "OrtBackend", StandIn)
    frames = verify.engine_frames(3, root)
    v = verify.verify_engine("e.engine", "e.onnx", frames, data_root=root)
    assert v["labelled"] == 3 and v["agreement"] == 1.0 and v["miou_engine"] == v["miou_onnx"] is not None
