"""trtexec-style GPU timing on a fake device clock, the GPU report table, and one builder for bench engines.

No GPU here: the device stages and their events are stand-ins that move a
fake GPU timeline, so what each span covers (GPU compute = the enqueue only,
input already on the device) is checked, never a real duration.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from enet.bench import report
from enet.bench.device_timing import measure_device
from enet.bench.harness import MeasureConfig, argmax_postprocess, summarize

ROOT = Path(__file__).resolve().parents[2]
H2D, COMPUTE, D2H = 2.0, 5.0, 3.0


class FakeStages:
    """Queues work on a fake GPU timeline; ``events = "fake"``."""

    events = "fake"
    cuda_graph = True
    zero_copy = False

    def __init__(self, compute_ms: float = COMPUTE) -> None:
        self.compute_ms = compute_ms
        self.gpu_ms = 0.0
        self.stream = "stream"
        self.order: list[str] = []
        self.out = np.zeros((1, 4, 8, 8), np.float32)

    def load(self, x):
        self.order.append("load")

    def h2d(self):
        self.order.append("h2d")
        self.gpu_ms += H2D

    def compute(self):
        self.order.append("compute")
        self.gpu_ms += self.compute_ms

    def d2h(self):
        self.order.append("d2h")
        self.gpu_ms += D2H

    def synchronize(self):
        self.order.append("sync")

    def output(self):
        return self.out


class FakeEvents:
    kind = "fake"

    def __init__(self, stages: FakeStages) -> None:
        self.stages, self.made, self.closed = stages, 0, False

    def make(self):
        self.made += 1
        return {"t": None}

    def record(self, ev):
        ev["t"] = self.stages.gpu_ms

    def elapsed_ms(self, a, b):
        return b["t"] - a["t"]

    def close(self):
        self.closed = True


FRAMES = [np.zeros((1, 8, 8, 3), np.uint8)]
CFG = MeasureConfig(warmup_s=0, duration_s=0, min_iterations=3, max_iterations=3)


def test_gpu_compute_is_the_enqueue_alone():
    st = FakeStages()
    ev = FakeEvents(st)
    m = measure_device(st, lambda f: f.transpose(0, 3, 1, 2).astype(np.float32), argmax_postprocess, FRAMES, CFG,
                       events=ev)
    assert m.compute_ms == [COMPUTE] * 3 and m.compute_kind == "gpu"
    assert m.stage_ms["h2d"] == [H2D] * 3 and m.stage_ms["d2h"] == [D2H] * 3
    assert m.stage_ms["latency"] == [H2D + COMPUTE + D2H] * 3
    assert all(v >= 0 for v in m.stage_ms["enqueue"] + m.e2e_ms)
    assert st.order[:6] == ["load", "h2d", "compute", "d2h", "sync", "load"]
    assert ev.made == 4 and ev.closed  # four events, made once, released at the end
    t = summarize(m)
    assert t["compute_kind"] == "gpu" and t["compute"]["mean"] == COMPUTE
    assert {k: t["gpu"][k]["mean"] for k in ("h2d", "d2h", "latency")} == {"h2d": H2D, "d2h": D2H,
                                                                         "latency": H2D + COMPUTE + D2H}
    assert t["gpu"]["cuda_graph"] is True and t["gpu"]["zero_copy"] is False
    assert len(t["samples_ms"]["h2d"]) == 3


def test_events_are_released_when_a_run_fails():
    st = FakeStages()
    ev = FakeEvents(st)

    def boom(_):
        raise RuntimeError("argmax failed")

    with pytest.raises(RuntimeError):
        measure_device(st, lambda f: f, boom, FRAMES, CFG, events=ev)
    assert ev.closed


def _gpu_record(backend: str, w: int, h: int, gpu_ms: float) -> dict:
    st = FakeStages(gpu_ms)
    m = measure_device(st, lambda f: f, argmax_postprocess, FRAMES, CFG, events=FakeEvents(st))
    return report.make_record(backend, "trt", "fp16", w, h, 1, status="ok", timing=summarize(m))


def _doc(records):
    return report.make_document(records, device={"kind": "desktop"}, device_label="Stand-in GPU",
                                versions={"enet-rt": "0.1.0", "torch": "2.13.0", "onnxruntime": None,
                                          "tensorrt": "10.3.0", "python": "3.11"},
                                model={"path": "m.pth", "sha256": "ab" * 32, "params": 1, "gflops": 1.0},
                                config={"warmup_s": 0, "duration_s": 0, "min_iterations": 3}, command="enet-bench")


def test_gpu_table_uses_trtexec_names_and_gpu_compute_for_the_paper():
    rec = _gpu_record("trt-fp16", 640, 360, 3.5)
    assert rec["paper"]["titanx"]["ratio"] == pytest.approx(3.5 / 7.0)  # GPU compute vs the paper's 7 ms
    md = report.render_markdown(_doc([rec]))
    assert "## GPU latency vs the paper's Table 2 (trtexec definitions)" in md
    assert "The paper ratios use GPU compute time" in md
    head = next(ln for ln in md.splitlines() if ln.startswith("| Backend | Resolution (WxH) | Batch | GPU compute"))
    for col in ("GPU compute mean ms", "H2D mean ms", "D2H mean ms", "Enqueue mean ms",
                "Latency mean ms (H2D+GPU+D2H)", "E2E mean ms", "Paper Titan X ms", "vs Titan X"):
        assert col in head
    row = next(ln for ln in md.splitlines() if ln.startswith("| trt-fp16 | 640x360"))
    assert "| 3.50 | 3.50 | 3.50 | 2.00 | 3.00 |" in row and "0.50x" in row and "CUDA graph" in row
    assert "## Latency vs the paper's Table 2\n" not in md  # only GPU rows: no empty CPU table


def test_cpu_report_has_no_gpu_section():
    cpu = report.make_record("ort", "ort", "fp32", 640, 360, 1, status="ok", timing={
        "timer": "perf_counter_ns", "iterations": 3, "frames": 3, "stable": True, "warnings": [],
        **{k: {"n": 3, "batch": 1, "min": 9, "mean": 10.0, "median": 10.0, "p90": 10, "p95": 10, "p99": 11,
               "max": 11, "std": 0.1, "cv": 0.01, "fps": 100.0} for k in ("compute", "e2e")}})
    md = report.render_markdown(_doc([cpu]))
    assert "GPU latency" not in md and "H2D" not in md
    assert ("| Backend | Resolution (WxH) | Batch | Compute mean ms | Compute median ms | Compute p99 ms | "
            "E2E mean ms | FPS (e2e) | Paper TX1 ms | vs TX1 | Paper Titan X ms | vs Titan X | Load + compile s | "
            "Notes |") in md
    both = report.render_markdown(_doc([cpu, _gpu_record("trt-fp16", 640, 360, 3.5)]))
    assert "## Latency vs the paper's Table 2" in both and "## GPU latency" in both
    main_rows = both.split("## GPU latency")[0]
    assert "| ort | 640x360" in main_rows and "| trt-fp16 |" not in main_rows


def test_no_tensorrt_build_code_in_bench():
    """Bench engines come from enet.engine.trt.build, like enet-build-engine's (one builder, one sidecar)."""
    forbidden = re.compile(r"build_engine_bytes|make_sidecar|write_sidecar|write_engine_pair|plan_build|"
                           r"trt_features|polygraphy|require\(\"tensorrt\"\)|import tensorrt|create_network|"
                           r"build_serialized_network|BuilderFlag")
    for path in sorted((ROOT / "bench").glob("*.py")):
        hits = [ln for ln in path.read_text().splitlines() if forbidden.search(ln) and not ln.lstrip().startswith("#")]
        assert not hits, f"{path.name} holds TensorRT build code: {hits}"
    assert "enet.engine.trt.build" in (ROOT / "bench" / "backends.py").read_text()


def test_torch_fp16_needs_cuda():
    from enet.bench import backends as bk

    spec = bk.BACKENDS["torch-fp16"]
    assert (spec.kind, spec.precision) == ("torch", "fp16") and "torch-fp16" not in bk.DEFAULT_BACKENDS
    has = {"torch"}.__contains__
    assert "CUDA only" in bk.unavailable_reason(spec, "cpu", available=has, torch_cuda=lambda: True)
    assert "a CPU build of torch" in bk.unavailable_reason(spec, "desktop", available=has, torch_cuda=lambda: False)
    assert bk.unavailable_reason(spec, "desktop", available=has, torch_cuda=lambda: True) is None


@pytest.mark.slow
def test_bench_engines_come_from_the_engine_builder(tmp_path, tiny_checkpoint, tiny_camvid, monkeypatch):
    """Issue 28.2: trt-int8 in the bench is the engine enet-run builds and uses on first run: one cache, one key,
    enet-build-engine's plan, calibration and sidecar; enet-run's resolution returns the same file."""
    import enet.engine.trt.build as trt_build
    from enet.bench import backends as bk
    from enet.engine.runtime import cuda, resolve
    from enet.engine.runtime.sidecar import read_sidecar, sidecar_onnx

    from tests.engine.test_engine_trt_compat import TRT103

    compiled = []
    monkeypatch.setenv("ENET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ENET_CAMVID", str(tiny_camvid))
    monkeypatch.setitem(sys.modules, "tensorrt", TRT103)
    monkeypatch.setattr(trt_build, "build_engine_bytes", lambda onnx, plan, **kw: compiled.append(onnx) or b"plan")
    monkeypatch.setattr(trt_build, "verify_engine", lambda *a, **k: {"frames": 2, "agreement": 1.0,
                                                                     "miou_engine": None, "miou_onnx": None})
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("Stand-in GPU", "8.9"))
    monkeypatch.setattr(cuda, "gpu_available", lambda: True)
    said = []
    art = bk.Artifacts(tiny_checkpoint, camvid=tiny_camvid, calib_images=2, say=said.append)
    eng = art.get(bk.BACKENDS["trt-int8"], 64, 96, 1)
    assert eng.parent.parent == tmp_path / "cache" / "engines"
    side = read_sidecar(eng)
    assert sidecar_onnx(eng, side).read_bytes() == Path(compiled[0]).read_bytes()  # the Q/DQ ONNX it compiled
    assert side["precision"] == "int8" and side["plan"] == {"strongly_typed": True, "flags": [], "fp32_mask": False}
    assert {"tensorrt_version", "gpu_name", "outputs", "engine_sha256", "rebuild_command", "meta",
            "source_onnx_sha256"} <= set(side)
    assert "--calib-frames 2" in side["rebuild_command"] and side["calibrated_on"] == str(tiny_camvid)
    assert any("100.00% argmax agreement" in s for s in said)
    # enet-run on the same machine, same model and precision: the same engine file, not built again
    monkeypatch.setattr(resolve, "trt_ready", lambda: True)
    assert resolve.resolve(tiny_checkpoint, precision="int8").path == eng and len(compiled) == 1
