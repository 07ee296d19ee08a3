"""Engines on first run (``--backend auto``): built once, cached by ONNX hash, TensorRT, GPU and precision.

TensorRT is a feature stand-in and the Polygraphy build a recorder (as in
test_engine_build_flow), so the cache logic, the messages and the wiring into
enet-eval and the camera pipeline's backend choice run for real; the engine
build and its use are covered by the gpu/trt tests only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import enet.engine.trt.build as trt_build
from enet.engine.runtime import cuda, resolve
from enet.engine.trt import engine_cache
from enet.engine.runtime.sidecar import read_sidecar

from tests.engine.test_engine_trt_compat import TRT85, TRT103  # noqa: E402 - sibling test module

pytest.importorskip("onnxruntime")


@pytest.fixture()
def gpu_here(monkeypatch, tmp_path):
    """A stand-in TensorRT 10.3 and GPU; builds recorded; the cache under tmp_path (ENET_CACHE_DIR)."""
    builds: list[Path] = []

    def fake_build(onnx_path, plan, **kw):
        builds.append(Path(onnx_path))
        return b"engine-%d" % len(builds)

    monkeypatch.setitem(sys.modules, "tensorrt", TRT103)
    monkeypatch.setattr(trt_build, "build_engine_bytes", fake_build)
    monkeypatch.setattr(trt_build, "verify_engine", lambda engine, onnx, frames, data_root=None: {
        "frames": len(frames), "agreement": 0.99, "miou_engine": None, "miou_onnx": None, "labelled": 0})
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("NVIDIA Stand-in 4090", "8.9"))
    monkeypatch.setattr(cuda, "gpu_available", lambda: True)
    monkeypatch.setenv("ENET_CACHE_DIR", str(tmp_path / "cache"))
    return builds


def test_engines_live_in_the_user_cache_folder(monkeypatch, tmp_path) -> None:
    """One cache folder (enet.cache): engines in its engines/ sub-folder."""
    monkeypatch.setenv("ENET_CACHE_DIR", str(tmp_path / "mine"))
    assert engine_cache.engine_cache_root() == tmp_path / "mine" / "engines"
    assert engine_cache.engine_cache_root(tmp_path / "elsewhere") == tmp_path / "elsewhere"


def test_key_names_everything_that_makes_an_engine_valid() -> None:
    key = engine_cache.engine_key("ab" * 32, "10.3.0", "NVIDIA GeForce RTX 4090", "fp16")
    assert key == "abababababababab-trt10.3.0-nvidia-geforce-rtx-4090-fp16"
    assert engine_cache.engine_key("ab" * 32, "10.3.0", "Orin", "int8") != key


def test_built_once_then_reused(tiny_onnx, gpu_here, tiny_camvid, tmp_path, caplog, monkeypatch) -> None:
    monkeypatch.setenv("ENET_CAMVID", str(tiny_camvid))  # val frames for the gate, with or without real CamVid
    said: list[str] = []
    first = engine_cache.first_run_engine(tiny_onnx, say=said.append)
    assert gpu_here == [first.with_name("enet.fp16.onnx")]  # TensorRT 10.3: strongly typed FP16 ONNX
    assert first.is_file() and first.parent.parent == tmp_path / "cache" / "engines"
    assert first.parent.name.endswith("-trt10.3.0-nvidia-stand-in-4090-fp16")
    assert "first run with TensorRT: building a fp16 engine" in said[0]
    assert said[1].startswith("built the TensorRT fp16 engine in ") and "99.00% argmax agreement" in said[1]
    side = read_sidecar(first)
    assert side["precision"] == "fp16" and side["built_by"] == "first run"
    said.clear()
    assert engine_cache.first_run_engine(tiny_onnx, say=said.append) == first
    assert len(gpu_here) == 1 and said == [f"using the cached TensorRT fp16 engine {first}"]
    # another precision or another TensorRT: another engine
    fp32 = engine_cache.first_run_engine(tiny_onnx, precision="fp32", say=said.append)
    monkeypatch.setitem(sys.modules, "tensorrt", TRT85)
    other = engine_cache.first_run_engine(tiny_onnx, say=said.append)
    assert len({first, fp32, other}) == 3 and len(gpu_here) == 3 and "-trt8.5.2.2-" in other.parent.name


def test_a_broken_cached_pair_is_rebuilt(tiny_onnx, gpu_here) -> None:
    engine = engine_cache.first_run_engine(tiny_onnx, say=lambda m: None)
    engine.write_bytes(b"half-written")
    assert engine_cache.first_run_engine(tiny_onnx, say=lambda m: None) == engine
    assert len(gpu_here) == 2 and read_sidecar(engine)["engine_sha256"]


def test_two_first_runs_at_once_build_one_engine(tiny_onnx, gpu_here, monkeypatch) -> None:
    """Two fills of one cache entry take turns on its lock: the second reuses the first's engine."""
    import threading
    import time

    real = trt_build.build_engine_bytes
    started = threading.Event()

    def slow(*a, **k):
        started.set()
        time.sleep(0.5)  # the other caller arrives while this one builds
        return real(*a, **k)

    monkeypatch.setattr(trt_build, "build_engine_bytes", slow)
    said: list[str] = []
    results: list[Path] = []
    first = threading.Thread(target=lambda: results.append(engine_cache.first_run_engine(tiny_onnx, say=said.append)))
    first.start()
    assert started.wait(60)
    results.append(engine_cache.first_run_engine(tiny_onnx, say=said.append))
    first.join(60)
    assert len(gpu_here) == 1 and len(set(results)) == 1
    assert any("built by another process meanwhile" in m for m in said)


def test_int8_first_run_compiles_the_calibrated_qdq_onnx(tiny_onnx, calib_root, gpu_here) -> None:
    engine = engine_cache.first_run_engine(tiny_onnx, precision="int8", data_root=calib_root, say=lambda m: None)
    assert gpu_here[-1] == engine.with_name("enet.int8.onnx")  # plan: Q/DQ ONNX, strongly typed on 10.3
    assert (engine.parent / "int8-ranges.json").is_file()


def test_auto_engine_without_tensorrt_is_none(tiny_onnx, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert engine_cache.auto_engine(tiny_onnx) is None


def test_auto_engine_falls_back_when_the_build_fails(tiny_onnx, gpu_here, monkeypatch, caplog) -> None:
    from enet.errors import EnetError

    def broken(*a, **k):
        raise EnetError("TensorRT could not build tiny.onnx (out of memory)")

    monkeypatch.setattr(trt_build, "build_engine_bytes", broken)
    assert engine_cache.auto_engine(tiny_onnx, say=lambda m: None) is None
    assert "running it without TensorRT" in caplog.text


def test_a_first_run_engine_that_fails_the_gate_is_not_cached(tiny_onnx, tiny_camvid, gpu_here, monkeypatch,
                                                               caplog, tmp_path) -> None:
    monkeypatch.setattr(trt_build, "verify_engine", lambda engine, onnx, frames, data_root=None: {
        "frames": len(frames), "agreement": 0.40, "miou_engine": None, "miou_onnx": None, "labelled": 0})
    for precision in ("fp16", "int8"):
        assert engine_cache.auto_engine(tiny_onnx, precision=precision, data_root=tiny_camvid,
                                        say=lambda m: None) is None
        assert "40.00% of the pixels" in caplog.text and "running it without TensorRT" in caplog.text
    assert "using the FP16 engine instead (nothing INT8 was cached)" in caplog.text  # issue 28.6
    assert len(gpu_here) == 3  # fp16; int8, then the fp16 it falls back to: cached never
    root = tmp_path / "cache" / "engines"
    # no engine, no Q/DQ ONNX, no ranges, no folder (the entries' empty lock files stay beside, by design)
    assert not root.exists() or [p for p in root.iterdir() if not p.name.endswith(".lock")] == []
    with pytest.raises(Exception, match="below --min-agreement 95"):
        engine_cache.first_run_engine(tiny_onnx, data_root=tiny_camvid, say=lambda m: None)
    engine = engine_cache.first_run_engine(tiny_onnx, data_root=tiny_camvid, min_agreement=30, say=lambda m: None)
    assert engine.is_file() and read_sidecar(engine)["check"]["checked"]  # settable


def test_enet_eval_auto_runs_the_first_run_engine(tiny_onnx, tiny_camvid, monkeypatch, tmp_path) -> None:
    from enet.engine.eval_cli import main as eval_main

    seen = {}

    def fake_auto(model, precision="fp16", data_root=None, **kw):
        seen.update(model=model, precision=precision, data_root=data_root)
        return None  # no TensorRT here: enet-eval goes on with the ONNX

    monkeypatch.setattr(engine_cache, "auto_engine", fake_auto)
    monkeypatch.setattr(resolve, "trt_ready", lambda: True)
    # enet-eval checks its dataset before it loads the model (issue 29.14): a real (tiny) one here
    camvid = tiny_camvid
    eval_main([str(tiny_onnx), "--precision", "int8", "--data-root", str(camvid), "-q"])
    assert seen == {"model": tiny_onnx, "precision": "int8", "data_root": str(camvid)}


def test_auto_resolution_picks_the_first_run_engine(tiny_onnx, monkeypatch, tmp_path) -> None:
    engine = tmp_path / "cached.engine"
    calls = {}

    def fake_auto(model, precision="fp16", **kw):
        calls.update(model=Path(model), precision=precision)
        return engine

    monkeypatch.setattr(resolve, "trt_ready", lambda: True)
    monkeypatch.setattr(engine_cache, "auto_engine", fake_auto)
    choice = resolve.resolve(tiny_onnx, precision="int8", cache_dir=tmp_path)
    assert (choice.path, choice.kind) == (engine, "trt") and "first run" in choice.why
    assert calls == {"model": tiny_onnx, "precision": "int8"}
    assert resolve.resolve(tiny_onnx, cache_dir=tmp_path).path == engine and calls["precision"] == "fp16"  # auto
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)  # without TensorRT: an ONNX runtime, as before
    choice = resolve.resolve(tiny_onnx, cache_dir=tmp_path)
    runner = resolve.onnx_runner()
    assert runner is not None and choice.kind == runner[0] and choice.why.endswith(runner[1])


def test_nothing_to_compare_caches_nothing_and_val_frames_then_build_it(tiny_onnx, tiny_camvid, gpu_here,
                                                                        tmp_path) -> None:
    """Issue 28.7: with no val frames and no calibration frames the first-run engine is not cached unchecked."""
    from enet.errors import EnetError

    said: list[str] = []
    nowhere = tmp_path / "no-dataset"
    with pytest.raises(EnetError, match="cannot check the engine against the float32 model"):
        engine_cache.first_run_engine(tiny_onnx, data_root=nowhere, say=said.append)
    root = tmp_path / "cache" / "engines"
    assert [p for p in root.iterdir() if not p.name.endswith(".lock")] == []
    engine = engine_cache.first_run_engine(tiny_onnx, data_root=tiny_camvid, say=said.append)
    assert len(gpu_here) == 2 and read_sidecar(engine)["check"]["checked"]  # built through the gate
