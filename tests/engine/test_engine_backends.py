"""open_backend for .onnx (ONNX Runtime) and .engine (sidecar checks up to the GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from enet.engine.runtime.backend import Backend, open_backend
from enet.engine.runtime.sidecar import (check_sidecar, make_sidecar, read_sidecar, sidecar_path, write_engine_pair,
                                 write_sidecar)
from enet.errors import EnetError, ShapeError

pytest.importorskip("onnxruntime")


def test_ort_backend_runs_and_reads_metadata(tiny_onnx: Path) -> None:
    b = open_backend(tiny_onnx)
    assert isinstance(b, Backend)
    assert b.input_shape == (1, 3, 64, 96)
    assert b.meta["input_size"] == [64, 96] and len(b.meta["classes"]) == 11
    x = np.random.default_rng(0).standard_normal(b.input_shape).astype(np.float32)
    with b:
        y = b.infer(x)
        lab = b.infer_labels(x)
        assert b.name.startswith("ort-cpu")
    assert y.shape == (1, 11, 64, 96) and y.dtype == np.float32
    np.testing.assert_array_equal(lab, y.argmax(1))
    b.__exit__(None, None, None)  # idempotent


def test_ort_backend_uses_in_graph_labels(tiny_onnx_labels: Path) -> None:
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 96)).astype(np.float32)
    with open_backend(tiny_onnx_labels) as b:
        lab = b.infer_labels(x)
        assert lab.shape == (1, 64, 96)
        np.testing.assert_array_equal(lab, b.infer(x).argmax(1))


@pytest.mark.parametrize("kind", ["ort", "ort-fast"])
def test_ort_streams_run_frames_at_once_with_the_same_numbers(tiny_onnx: Path, kind: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    xs = [np.random.default_rng(i).standard_normal((1, 3, 64, 96)).astype(np.float32) for i in range(8)]
    with open_backend(tiny_onnx, kind, threads=2) as one:
        want = [one.infer(x) for x in xs]
        assert one.concurrency == 1
    with open_backend(tiny_onnx, kind, threads=2, streams=2) as b:
        assert b.concurrency == 2
        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(b.infer, xs))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_ort_fast_keeps_the_nchwc_rewrites_to_x86() -> None:
    from enet.engine.runtime.ort_backend import _ort_fast_skip

    assert _ort_fast_skip("x86_64") == () and _ort_fast_skip("AMD64") == ()
    assert set(_ort_fast_skip("aarch64")) == {"pad_conv", "nchwc_prelu"}  # no NCHWc in ONNX Runtime there


@pytest.mark.parametrize("version, spin, want", [
    ("1.32.0", True, {"session.intra_op.allow_spinning": "1", "session.intra_op.spin_duration_us": "10"}),
    ("1.26.0", True, {"session.intra_op.allow_spinning": "1", "session.intra_op.spin_duration_us": "10"}),
    ("1.27.0.dev20260101", True, {"session.intra_op.allow_spinning": "1", "session.intra_op.spin_duration_us": "10"}),
    ("1.25.1", True, {"session.intra_op.allow_spinning": "0"}),  # would ignore the duration and spin unbounded
    ("1.19.2", True, {"session.intra_op.allow_spinning": "0"}),  # JetPack 5's Python gets this one
    ("1.32.0", False, {"session.intra_op.allow_spinning": "0"}),
])
def test_ort_fast_spins_only_where_the_spin_is_bounded(version: str, spin: bool, want: dict) -> None:
    from enet.engine.runtime.ort_backend import spin_config

    assert spin_config(version, spin) == want


def test_ort_fast_session_gets_the_spin_it_was_asked_for(tiny_onnx: Path) -> None:
    import onnxruntime as ort

    from enet.engine.runtime.ort_backend import spin_config

    for spin in (True, False):
        with open_backend(tiny_onnx, "ort-fast", threads=2, spin=spin) as b:
            so = b._session.get_session_options()
            for key, value in spin_config(ort.__version__, spin).items():
                assert so.get_session_config_entry(key) == value


def test_ort_backend_wrong_shapes(tiny_onnx: Path) -> None:
    with pytest.raises(ShapeError, match="does not fit"):
        open_backend(tiny_onnx, input_shape=(1, 3, 64, 64))
    with open_backend(tiny_onnx) as b, pytest.raises(ShapeError, match="does not match"):
        b.infer(np.zeros((1, 3, 32, 96), np.float32))


def test_corrupt_or_foreign_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \x00\xff")
    with pytest.raises(EnetError, match="not a valid ONNX|no enet-rt metadata|not a readable"):
        open_backend(bad)
    with pytest.raises(EnetError, match="does not exist"):
        open_backend(tmp_path / "missing.onnx")


def test_providers_resolution() -> None:
    from enet.engine.runtime.ort_backend import resolve_providers

    assert resolve_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert resolve_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    with pytest.raises(EnetError, match="not available"):
        resolve_providers("tensorrt", ["CPUExecutionProvider"])


def _sidecar(**over) -> dict:
    data = make_sidecar(tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7", precision="int8",
                        input_shape=(1, 3, 64, 96), input_name="input",
                        outputs={"logits": "logits", "labels": None}, onnx_path="tiny.int8.onnx",
                        onnx_sha256="0" * 64, meta={"classes": ["a"], "mean": [0, 0, 0], "std": [1, 1, 1],
                                                    "input_size": [64, 96], "palette": [[0, 0, 0]]},
                        rebuild_command="enet-build-engine tiny.onnx --int8 -o tiny.engine")
    data.update(over)
    return data


def test_sidecar_roundtrip_and_checks(tmp_path: Path) -> None:
    engine = tmp_path / "tiny.engine"
    write_engine_pair(engine, b"plan", _sidecar())
    assert sidecar_path(engine).name == "tiny.engine.json"
    data = read_sidecar(engine)
    check_sidecar(data, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7")
    check_sidecar(data, tensorrt_version="10.3", gpu_name="Orin", compute_capability="8.7")  # Version equality
    with pytest.raises(EnetError) as e:
        check_sidecar(data, tensorrt_version="10.13.0", gpu_name="Orin", compute_capability="8.7")
    msg = str(e.value)
    assert "TensorRT 10.3.0" in msg and "10.13.0" in msg and "enet-build-engine tiny.onnx --int8" in msg
    assert "\n" not in msg
    with pytest.raises(EnetError, match="built for Orin .*RTX 4090.*rebuild"):
        check_sidecar(data, tensorrt_version="10.3.0", gpu_name="NVIDIA GeForce RTX 4090", compute_capability="8.9")


def test_engine_backend_reads_sidecar_without_tensorrt(tmp_path: Path) -> None:
    engine = tmp_path / "tiny.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(EnetError, match="no sidecar"):
        open_backend(engine)
    sidecar_path(engine).write_text("{broken", encoding="utf-8")
    with pytest.raises(EnetError, match="cannot read engine sidecar"):
        open_backend(engine)
    sidecar_path(engine).write_text(json.dumps({"format": "something-else"}), encoding="utf-8")
    with pytest.raises(EnetError, match="not an enet-rt engine sidecar"):
        open_backend(engine)
    write_sidecar(engine, _sidecar(format_version=1, engine_sha256="x"))
    with pytest.raises(EnetError, match="older enet-rt .*rebuild the engine: enet-build-engine tiny.onnx"):
        open_backend(engine)
    write_engine_pair(engine, b"plan", _sidecar())
    b = open_backend(engine)  # construction is cheap: no TensorRT, no GPU needed
    assert b.input_shape == (1, 3, 64, 96) and b.meta["input_size"] == [64, 96] and b.name == "trt-int8"
    with pytest.raises(ShapeError, match="built for input"):
        open_backend(engine, input_shape=(1, 3, 32, 32))


def test_engine_from_another_tensorrt_or_gpu_is_refused_before_deserialising(tmp_path: Path, monkeypatch) -> None:
    import sys
    from types import SimpleNamespace

    from enet.engine.runtime import cuda

    engine = tmp_path / "tiny.engine"
    write_engine_pair(engine, b"plan", _sidecar())
    fake = SimpleNamespace(__version__="10.13.0")  # anything deeper than the version would fail the test
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(cuda, "cudart", lambda: SimpleNamespace())
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("Orin", "8.7"))
    with pytest.raises(EnetError, match="built with TensorRT 10.3.0, this machine has TensorRT 10.13.0"):
        with open_backend(engine):
            pass
    fake.__version__ = "10.3.0"
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("NVIDIA RTX A2000", "8.6"))
    with pytest.raises(EnetError, match="built for Orin .*enet-build-engine tiny.onnx --int8"):
        with open_backend(engine):
            pass


def test_engine_and_sidecar_are_written_as_a_pair(tmp_path: Path, monkeypatch) -> None:
    import os

    from enet.engine.runtime import sidecar as sc

    engine = tmp_path / "tiny.engine"
    side = write_engine_pair(engine, b"plan-1", _sidecar())
    assert engine.read_bytes() == b"plan-1" and side == sidecar_path(engine)
    data = read_sidecar(engine)
    sc.check_engine_bytes(engine, b"plan-1", data)
    with pytest.raises(EnetError, match="does not match its sidecar .*rebuild it: enet-build-engine"):
        sc.check_engine_bytes(engine, b"plan-2", data)  # an engine copied over, or a crash between the renames

    real_replace = os.replace

    def failing_replace(src, dst):  # the sidecar's rename fails: the new engine must not stay alone
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(sc.os, "replace", failing_replace)
    with pytest.raises(EnetError, match="No space left"):
        write_engine_pair(engine, b"plan-2", _sidecar())
    assert not engine.exists() and not sidecar_path(engine).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporary files left behind
