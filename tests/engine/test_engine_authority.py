"""Issue 28: one authority for every engine, and no silent wrong result on the GPU path.

One test (or more) per numbered point of the issue, each failing on the code before the change. TensorRT
and the GPU are the stand-ins the rest of tests/engine uses (feature stand-ins, a recorded Polygraphy
build, a fake cudart); nothing here runs on a GPU.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest

import enet.engine.trt.build as trt_build
from enet.engine.runtime import cuda, resolve, sidecar
from enet.engine.runtime.sidecar import make_sidecar, read_sidecar, write_engine_pair
from enet.engine.trt import engine_cache
from enet.errors import EnetError

from tests.engine.test_engine_first_run import gpu_here  # noqa: F401 - fixture

pytest.importorskip("onnxruntime")

HOST = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA Stand-in 4090", "compute_capability": "8.9"}


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def engine_for(model: Path, engine: Path, *, precision: str = "fp16", input_shape=(1, 3, 64, 96),
               **changes) -> Path:
    """A stand-in engine pair as enet-build-engine writes it for ``model`` (an .onnx), with ``changes``
    to the sidecar (another TensorRT, another hash, ...)."""
    data = make_sidecar(tensorrt_version=HOST["tensorrt_version"], gpu_name=HOST["gpu_name"],
                        compute_capability=HOST["compute_capability"], precision=precision,
                        input_shape=input_shape, input_name="input", outputs={"logits": "logits", "labels": None},
                        onnx_path=model.name, onnx_sha256=_sha(model), meta={"classes": ["a"]},
                        rebuild_command=f"enet-build-engine {model} --{precision} -o {engine}",
                        extra={"source_onnx_sha256": _sha(model), "dla_core": None})
    data.update(changes)
    write_engine_pair(engine, b"engine-bytes", data)
    return engine


@pytest.fixture()
def model(tiny_onnx: Path, tmp_path: Path) -> Path:
    m = tmp_path / "m.onnx"
    m.write_bytes(tiny_onnx.read_bytes())
    return m


# --------------------------------------------------------------- 1. the engine beside the model


@pytest.mark.parametrize("changes, says", [
    ({"source_onnx_sha256": "0" * 64, "onnx_sha256": "1" * 64}, "built from another ONNX"),
    ({"tensorrt_version": "8.6.1"}, "built with TensorRT 8.6.1, this machine has TensorRT 10.3.0"),
    ({"gpu_name": "Orin"}, "built for Orin"),
])
def test_a_stale_engine_beside_the_model_is_never_returned(model, tmp_path, monkeypatch, changes, says) -> None:
    engine_for(model, tmp_path / "m.engine", **changes)
    monkeypatch.setattr(resolve, "trt_ready", lambda: True)
    monkeypatch.setattr(sidecar, "this_host", lambda device=0: dict(HOST), raising=False)
    built = tmp_path / "first-run.engine"
    calls = []

    def fake_auto(m, precision="fp16", **kw):
        calls.append(precision)
        engine_for(model, built, precision=precision)
        return built

    monkeypatch.setattr(engine_cache, "auto_engine", fake_auto)
    for backend in ("auto", "trt"):  # first-run builds on: rebuilt (into the cache), not the stale one
        r = resolve.resolve(model, backend=backend)
        assert r.path == built and r.kind == "trt"
    assert calls == ["fp16", "fp16"]
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)  # nothing builds here: refused in one line
    if "TensorRT" in says or "Orin" in says:
        return  # this machine's TensorRT and GPU are unknown without TensorRT: the backend checks on load
    with pytest.raises(EnetError, match=says) as e:
        resolve.resolve(model, backend="trt")
    assert "rebuild it: enet-build-engine" in str(e.value) and "\n" not in str(e.value)


def test_precision_is_not_ignored_for_engines(model, tmp_path, monkeypatch) -> None:
    engine = engine_for(model, tmp_path / "m.engine", precision="fp16")
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    assert resolve.resolve(model, backend="trt").path == engine  # auto: the engine as it is
    with pytest.raises(EnetError, match="built as fp16, int8 was asked"):
        resolve.resolve(model, backend="trt", precision="int8")
    with pytest.raises(EnetError, match="built as fp16, int8 was asked"):
        resolve.resolve(engine, precision="int8")  # an .engine named directly too


def test_the_authority_names_each_mismatch(model, tmp_path) -> None:
    from enet.engine.runtime.sidecar import engine_mismatch

    engine = engine_for(model, tmp_path / "m.engine", dla_core=0)
    assert engine_mismatch(engine, onnx_sha256=_sha(model), precision="fp16", size=(64, 96), host=HOST,
                           dla_core=0) is None
    assert "input 96x64, 128x64 was asked" in engine_mismatch(engine, size=(64, 128))
    assert "built for DLA core 0, the GPU was asked" in engine_mismatch(engine, dla_core=None)
    assert "this GPU is Orin" in engine_mismatch(engine, host=dict(HOST, gpu_name="Orin"))
    (tmp_path / "junk.engine").write_bytes(b"x")
    assert "no sidecar" in engine_mismatch(tmp_path / "junk.engine")
    engine.write_bytes(b"copied over")
    assert "does not match its sidecar" in engine_mismatch(engine)


# --------------------------------------------------------------- 2. the bench's engines


def test_the_bench_uses_the_one_engine_cache_and_calibration_default(model, gpu_here, tmp_path) -> None:  # noqa: F811
    from enet.bench.backends import BACKENDS, Artifacts
    from enet.bench.cli import build_parser
    from enet.engine.quant.calibration import DEFAULT_CALIB_IMAGES

    arts = Artifacts(model, tmp_path / "models")
    for precision in ("fp16", "int8"):
        assert arts.path(BACKENDS[f"trt-{precision}"], 64, 96, 1) == engine_cache.cached_engine_path(model, precision)
    assert arts.calib_images == DEFAULT_CALIB_IMAGES
    assert build_parser().parse_args([]).calib_frames == DEFAULT_CALIB_IMAGES


def test_a_stale_bench_engine_is_rebuilt(model, gpu_here, tmp_path) -> None:  # noqa: F811
    from enet.bench.backends import BACKENDS, Artifacts

    built = []

    def build(onnx_path, target, precision):
        built.append(precision)
        engine_for(model, Path(target), precision=precision, **HOST)

    arts = Artifacts(model, tmp_path / "models", builders={"engine": build})
    target = arts.path(BACKENDS["trt-fp16"], 64, 96, 1)
    target.parent.mkdir(parents=True)
    engine_for(model, target, tensorrt_version="8.6.1")  # left by another TensorRT
    assert arts.get(BACKENDS["trt-fp16"], 64, 96, 1) == target and built == ["fp16"]
    assert read_sidecar(target)["tensorrt_version"] == "10.3.0"
    assert arts.get(BACKENDS["trt-fp16"], 64, 96, 1) == target and built == ["fp16"]  # valid now: reused


# --------------------------------------------------------------- 3. CUDA graphs


def test_a_failed_enqueue_is_not_captured_into_a_graph(monkeypatch) -> None:
    from tests.engine.test_engine_trt_glue import FakeCudart

    rt = FakeCudart()
    monkeypatch.setattr(cuda, "cudart", lambda: rt)
    stream = cuda.Stream()
    with pytest.raises(EnetError, match="execute_async_v3 returned False"):
        cuda.CudaGraph(stream, lambda: False)  # the warm-up fails
    assert "begin" not in rt.graph_calls
    results = iter([True, False])  # warm-up fine, the captured enqueue fails
    with pytest.raises(EnetError, match="the enqueue being captured failed"):
        cuda.CudaGraph(stream, lambda: next(results))
    assert rt.graph_calls[-2:] == ["end", "graph-destroy"] and "instantiate" not in rt.graph_calls


def test_end_capture_does_not_hide_the_original_error(monkeypatch) -> None:
    from tests.engine.test_engine_trt_glue import FakeCudart

    rt = FakeCudart()
    rt.cudaStreamEndCapture = lambda stream: (900,)  # capture invalidated, as CUDA reports it
    monkeypatch.setattr(cuda, "cudart", lambda: rt)
    results = iter([True])

    def enqueue():
        if next(results, None) is None:
            raise RuntimeError("the original error")
        return True

    with pytest.raises(RuntimeError, match="the original error"):
        cuda.CudaGraph(cuda.Stream(), enqueue)


# --------------------------------------------------------------- 4. the first-run lock


def test_the_lock_lives_outside_what_a_failed_build_removes(model, gpu_here, tmp_path, monkeypatch) -> None:  # noqa: F811
    import enet.cache

    locks = []
    real = enet.cache._flock

    @contextlib.contextmanager
    def spy(lock):
        locks.append(Path(lock))
        with real(lock):
            yield

    monkeypatch.setattr(enet.cache, "_flock", spy)
    monkeypatch.setattr(trt_build, "build_engine_bytes", _failing_build)
    with pytest.raises(EnetError, match="out of memory"):
        engine_cache.first_run_engine(model, data_root=tmp_path, say=lambda m: None)
    entry = engine_cache.cached_engine_path(model, "fp16").parent
    assert locks and all(entry not in lock.parents for lock in locks)
    assert locks[0].exists() and not entry.exists()  # the folder went, the lock stayed


def _failing_build(*a, **k):
    raise EnetError("TensorRT could not build m.onnx (out of memory)")


def test_made_is_decided_under_the_lock(model, gpu_here, tmp_path, monkeypatch) -> None:  # noqa: F811
    """Another process made the entry's folder (and put a file there) while this one waited for the lock:
    this process's failed build must not remove it."""
    import enet.cache

    entry = engine_cache.cached_engine_path(model, "fp16").parent
    real = enet.cache._flock

    @contextlib.contextmanager
    def other_process_first(lock):
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "theirs.json").write_text("{}")
        with real(lock):
            yield

    monkeypatch.setattr(enet.cache, "_flock", other_process_first)
    monkeypatch.setattr(trt_build, "build_engine_bytes", _failing_build)
    with pytest.raises(EnetError, match="out of memory"):
        engine_cache.first_run_engine(model, data_root=tmp_path, say=lambda m: None)
    assert (entry / "theirs.json").is_file()


# --------------------------------------------------------------- 5. a failed rebuild


def test_a_failed_rebuild_keeps_the_converted_onnx_it_did_not_create(model, gpu_here, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    job = trt_build.plan_engine(model, out / "enet.engine", precision="fp16", verify_images=0)
    assert job.compiled != job.model
    job.compiled.write_bytes(b"the previous engine's FP16 ONNX")
    trt_build.build_engine_bytes = _failing_build  # restored by gpu_here's monkeypatch
    with pytest.raises(EnetError, match="out of memory"):
        trt_build.build_engine(job)
    assert job.compiled.read_bytes() == b"the previous engine's FP16 ONNX"
    assert sorted(p.name for p in out.iterdir()) == [job.compiled.name]  # and no temp left


# --------------------------------------------------------------- 6. first-run INT8


def test_first_run_int8_without_the_models_data_uses_fp16_with_a_note(model, gpu_here, tmp_path, monkeypatch,
                                                                      caplog) -> None:  # noqa: F811
    monkeypatch.setenv("ENET_CAMVID", str(tmp_path / "no-camvid"))
    monkeypatch.setattr(engine_cache, "model_data_root", lambda onnx, data_root=None: None, raising=False)
    monkeypatch.setattr(trt_build, "gate_frames", lambda job: ([Path("f.png")], "val frames", None), raising=False)
    engine = engine_cache.first_run_engine(model, precision="int8", say=lambda m: None)
    assert read_sidecar(engine)["precision"] == "fp16"
    assert "needs the model's own data" in caplog.text and "using the FP16 engine instead" in caplog.text
    assert not engine_cache.cached_engine_path(model, "int8").parent.exists()


def test_the_models_data_is_the_default_only_for_its_own_classes(model, tmp_path, monkeypatch,
                                                                 tiny_camvid) -> None:
    monkeypatch.setenv("ENET_CAMVID", str(tiny_camvid))
    assert engine_cache.model_data_root(model) == tiny_camvid  # tiny.onnx has CamVid's classes
    assert engine_cache.model_data_root(model, tmp_path) == tmp_path  # --data-root wins
    from enet.engine.runtime import onnx_info

    real = onnx_info.read_meta
    monkeypatch.setattr(onnx_info, "read_meta", lambda src, name: dict(real(src, name), classes=["road", "lane"]))
    assert engine_cache.model_data_root(model) is None  # a model of other classes is never calibrated on CamVid


def test_first_run_int8_is_gated_against_fp32_and_falls_back(model, gpu_here, calib_root, tmp_path, monkeypatch,
                                                             caplog) -> None:  # noqa: F811
    seen = []

    def verify(engine, onnx_path, frames, data_root=None):
        seen.append(Path(onnx_path).name)
        int8 = read_sidecar(engine)["precision"] == "int8"
        return {"frames": len(frames), "agreement": 0.50 if int8 else 0.99, "miou_engine": None,
                "miou_onnx": None, "labelled": 0}

    monkeypatch.setattr(trt_build, "verify_engine", verify)
    engine = engine_cache.first_run_engine(model, precision="int8", data_root=calib_root, say=lambda m: None)
    assert seen == ["m.onnx", "m.onnx"]  # compared with the float32 model, not the Q/DQ ONNX
    assert read_sidecar(engine)["precision"] == "fp16" and "using the FP16 engine instead" in caplog.text
    assert not engine_cache.cached_engine_path(model, "int8").parent.exists()  # nothing INT8 written


def test_a_checkpoint_calibrates_on_the_dataset_it_was_trained_on(tmp_path, monkeypatch) -> None:
    import enet.checkpoint

    monkeypatch.setattr(enet.checkpoint, "load_checkpoint",
                        lambda p: {"meta": {"train_config": {"data_root": str(tmp_path)}}})
    assert engine_cache.checkpoint_data_root(tmp_path / "x.pth") == tmp_path


# --------------------------------------------------------------- 8. --size for an .onnx


def test_size_is_checked_before_a_first_run_build(model, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(resolve, "trt_ready", lambda: True)
    monkeypatch.setattr(engine_cache, "auto_engine", lambda *a, **k: pytest.fail("built at the wrong size"))
    with pytest.raises(EnetError, match=r"m.onnx takes 96x64 input, not --size 128x96; re-export"):
        resolve.resolve(model, size=(96, 128))


# --------------------------------------------------------------- 10. precision means the same everywhere


def test_fp16_on_a_cpu_is_refused_in_one_line(model, monkeypatch) -> None:
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    with pytest.raises(EnetError, match="precision fp16 cannot run here") as e:
        resolve.resolve(model, precision="fp16")
    assert "\n" not in str(e.value) and "--precision auto or fp32" in str(e.value)
    with pytest.raises(EnetError, match="precision int8 cannot run here"):
        resolve.resolve(model, precision="int8")  # a float32 ONNX is not INT8 on a CPU either
    assert resolve.resolve(model, precision="fp32").path == model


def test_segmenter_fp16_on_a_cpu_is_refused(monkeypatch) -> None:
    import enet

    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    with pytest.raises(EnetError, match="precision fp16 cannot run here"):
        enet.Segmenter("camvid", precision="fp16")


def test_auto_names_its_choice_in_the_log(model, monkeypatch, caplog) -> None:
    import logging

    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    with caplog.at_level(logging.DEBUG, logger="enet.engine.runtime.resolve"):
        resolve.resolve(model)
    assert "precision auto:" in caplog.text and "m.onnx as fp32" in caplog.text


def test_batch_makes_the_same_choice_as_enet_run() -> None:
    """Issue 28.10 / 29.11: enet-batch's default precision is auto, and a shipped name reaches the one
    resolution as the name (so the shipped INT8 choice on a CPU is the same as enet-run's)."""
    import inspect

    from enet.deploy.batch import segment

    assert inspect.signature(segment.resolve).parameters["precision"].default == "auto"


def test_batch_resolves_a_shipped_name_as_enet_run_does(monkeypatch) -> None:
    from enet.deploy import backends
    from enet.deploy.batch import segment

    seen = {}

    class Stop(Exception):
        pass

    def fake_open(model, **kw):
        seen["model"] = model
        raise Stop

    monkeypatch.setattr(backends, "open_predictor", fake_open)
    with pytest.raises(Stop):
        segment.resolve("camvid")
    assert seen["model"] == "camvid"  # not the checkpoint path, which enet-run would run differently


def test_first_run_options_reach_the_one_resolution_from_every_command(monkeypatch) -> None:
    """Issue 28.6: the model's data and the gate are settable wherever a first-run engine can be built."""
    from enet.deploy.batch.cli import build_parser as batch_parser
    from enet.deploy.cli import build_parser as run_parser
    from enet.deploy.demo import build_parser as demo_parser
    from enet.engine.eval_cli import eval_parser

    for parser in (run_parser(), demo_parser(), eval_parser(), batch_parser()):
        dests = {a.dest for a in parser._actions}
        assert {"calib_data", "min_agreement"} <= dests, parser.prog
    seen = {}

    def fake_resolve(model, **kw):
        seen.update(kw)
        raise EnetError("stop")

    import enet

    monkeypatch.setattr(resolve, "resolve", fake_resolve)
    with pytest.raises(EnetError, match="stop"):
        enet.Segmenter("camvid", calib_data="D", min_agreement=90)
    assert seen["data_root"] == "D" and seen["min_agreement"] == 90


def test_backend_trt_stops_in_one_line_naming_the_mismatch_when_no_engine_can_be_built(model, tmp_path,
                                                                                      monkeypatch) -> None:
    engine_for(model, tmp_path / "m.engine", precision="int8")
    monkeypatch.setattr(resolve, "trt_ready", lambda: True)
    monkeypatch.setattr(sidecar, "this_host", lambda device=0: dict(HOST), raising=False)
    monkeypatch.setattr(engine_cache, "auto_engine", lambda *a, **k: None)  # the build failed (warned)
    with pytest.raises(EnetError, match="not its engine \\(built as int8, fp16 was asked\\), rebuild it: "
                                        "enet-build-engine") as e:
        resolve.resolve(model, backend="trt", precision="fp16")
    assert "\n" not in str(e.value)


def test_an_int8_onnx_named_anyhow_runs_as_int8(model, tmp_path, calib_root, monkeypatch) -> None:
    """The precision check reads the graph, not only the file name."""
    from enet.engine.quant.convert import CalibrationSpec, convert_onnx

    q = tmp_path / "mine.onnx"
    convert_onnx(model, q, precision="int8", calib=CalibrationSpec(data=calib_root, images=2))
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    assert resolve.resolve(q, precision="int8").path == q
    with pytest.raises(EnetError, match="precision fp32 cannot run here"):
        resolve.resolve(q, precision="fp32")
