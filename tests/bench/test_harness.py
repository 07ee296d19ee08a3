"""Harness loop and statistics on a fake clock: no real time is measured or asserted."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from enet.bench import harness
from enet.bench.harness import MeasureConfig, Pipeline, compute_stats, measure, summarize


class FakeTimer:
    """A clock that only moves when the fake pipeline says so."""

    name = "fake"

    def __init__(self) -> None:
        self.now_ms = 0.0
        self.marks = 0

    def mark(self) -> float:
        self.marks += 1
        return self.now_ms

    def elapsed_ms(self, start: float, end: float) -> float:
        return end - start

    def wall_s(self) -> float:
        return self.now_ms / 1000.0

    def advance(self, ms: float) -> None:
        self.now_ms += ms


def fake_pipeline(timer: FakeTimer, infer_ms, pre_ms: float = 1.0, post_ms: float = 0.5) -> Pipeline:
    durations = itertools.cycle(infer_ms)

    def pre(x):
        timer.advance(pre_ms)
        return x

    def infer(x):
        timer.advance(next(durations))
        return x

    def post(x):
        timer.advance(post_ms)
        return x

    return Pipeline(pre, infer, post)


FRAMES = [np.zeros((1, 8, 8, 3), np.uint8)]


def test_stats_known_values():
    s = compute_stats([4.0, 1.0, 3.0, 2.0, 5.0], batch=2)
    assert (s.n, s.min, s.max, s.mean, s.median) == (5, 1.0, 5.0, 3.0, 3.0)
    assert s.p90 == pytest.approx(4.6)  # linear interpolation: 1 + 4 * 0.9 -> between 4 and 5
    assert s.p99 == pytest.approx(4.96)
    assert s.std == pytest.approx(np.sqrt(2.0))
    assert s.cv == pytest.approx(np.sqrt(2.0) / 3.0)
    assert s.fps == pytest.approx(2 * 1000 / 3.0)


def test_stats_single_sample_and_empty():
    s = compute_stats([7.5])
    assert s.p99 == s.median == s.min == 7.5 and s.std == 0.0 and s.cv == 0.0
    with pytest.raises(ValueError):
        compute_stats([])


def test_percentiles_match_numpy_linear():
    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 3.0, size=257)
    s = compute_stats(data)
    for q, v in ((50, s.median), (90, s.p90), (95, s.p95), (99, s.p99)):
        assert v == pytest.approx(np.percentile(data, q))


def test_warmup_by_time_then_duration_and_min_iterations():
    t = FakeTimer()
    pipe = fake_pipeline(t, [10.0])  # 11.5 ms per iteration end to end
    m = measure(pipe, FRAMES, MeasureConfig(warmup_s=0.1, duration_s=0.2, min_iterations=3), t)
    # warm-up stops at the first iteration ending at or after 100 ms: ceil(100 / 11.5) = 9
    assert m.warmup_iterations == 9
    # measurement: at least 200 ms -> ceil(200 / 11.5) = 18 iterations
    assert m.iterations == 18
    assert m.compute_ms == [10.0] * 18
    assert m.e2e_ms == [11.5] * 18
    assert m.stage_ms["preprocess"] == [1.0] * 18


def test_min_iterations_dominates_short_duration():
    t = FakeTimer()
    m = measure(fake_pipeline(t, [50.0]), FRAMES, MeasureConfig(warmup_s=0, duration_s=0.01, min_iterations=7), t)
    assert m.warmup_iterations == 1  # warm-up always runs at least once
    assert m.iterations == 7


def test_exact_iterations():
    t = FakeTimer()
    cfg = MeasureConfig(warmup_s=0, duration_s=0, min_iterations=4, max_iterations=4)
    m = measure(fake_pipeline(t, [1.0, 2.0, 3.0]), FRAMES, cfg, t)
    assert m.iterations == 4
    # the warm-up iteration consumed the first duration
    assert m.compute_ms == [2.0, 3.0, 1.0, 2.0]


def test_max_iterations_caps_duration():
    t = FakeTimer()
    cfg = MeasureConfig(warmup_s=0, duration_s=100.0, min_iterations=2, max_iterations=5)
    assert measure(fake_pipeline(t, [1.0]), FRAMES, cfg, t).iterations == 5


def test_inputs_cycle_and_batch():
    t = FakeTimer()
    seen = []
    batches = [np.full((2, 4, 4, 3), i, np.uint8) for i in range(3)]

    def pre(x):
        seen.append(int(x[0, 0, 0, 0]))
        t.advance(1)
        return x

    pipe = Pipeline(pre, lambda x: x, lambda x: x)
    m = measure(pipe, batches, MeasureConfig(warmup_s=0, duration_s=0, min_iterations=5, max_iterations=5), t)
    assert seen == [0, 1, 2, 0, 1, 2]
    assert m.batch == 2 and m.frames == 10


def test_measure_window_hooks_and_progress():
    t = FakeTimer()
    events = []
    progress = []
    cfg = MeasureConfig(warmup_s=1.5, duration_s=2.5, min_iterations=1)
    measure(fake_pipeline(t, [100.0], pre_ms=0, post_ms=0), FRAMES, cfg, t,
            on_measure_start=lambda: events.append(("start", t.now_ms)),
            on_measure_end=lambda: events.append(("end", t.now_ms)),
            on_progress=lambda phase, n, s: progress.append(phase))
    assert events == [("start", 1500.0), ("end", 4000.0)]
    assert "warmup" in progress and "measure" in progress


def test_summary_and_stability_warning():
    t = FakeTimer()
    cfg = MeasureConfig(warmup_s=0, duration_s=0, min_iterations=10, max_iterations=10)
    steady = summarize(measure(fake_pipeline(t, [10.0, 10.5]), FRAMES, cfg, t))
    assert steady["stable"] and steady["warnings"] == []
    assert steady["compute"]["mean"] == pytest.approx(10.25)
    assert steady["e2e"]["mean"] == pytest.approx(11.75)
    assert steady["iterations"] == 10 and steady["frames"] == 10
    assert steady["throughput_fps"] == pytest.approx(10 / (10 * 11.75 / 1000))

    t = FakeTimer()
    noisy = summarize(measure(fake_pipeline(t, [5.0, 20.0]), FRAMES, cfg, t), cv_threshold=0.1)
    assert not noisy["stable"]
    assert any("compute latency" in w and "coefficient of variation" in w for w in noisy["warnings"])
    assert summarize(measure(fake_pipeline(t, [5.0, 20.0]), FRAMES, cfg, t), cv_threshold=1.0)["stable"]


def test_stability_warning_threshold():
    s = compute_stats([10.0, 12.0])  # cv = 1/11
    assert harness.stability_warning(s, 0.05) is not None
    assert harness.stability_warning(s, 0.10) is None


def test_config_validation():
    with pytest.raises(ValueError):
        MeasureConfig(min_iterations=0)
    with pytest.raises(ValueError):
        MeasureConfig(warmup_s=-1)
    with pytest.raises(ValueError):
        MeasureConfig(min_iterations=5, max_iterations=2)
    with pytest.raises(ValueError):
        measure(Pipeline(lambda x: x, lambda x: x, lambda x: x), [], MeasureConfig(), FakeTimer())


def test_argmax_postprocess():
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 2, 0, 1] = 1.0
    labels = harness.argmax_postprocess(logits)
    assert labels.dtype == np.uint8 and labels.tolist() == [[[0, 2], [0, 0]]]


def test_perf_counter_timer_syncs_before_each_mark():
    calls = []
    timer = harness.PerfCounterTimer(sync=lambda: calls.append(1))
    a = timer.mark()
    b = timer.mark()
    assert len(calls) == 2 and timer.elapsed_ms(a, b) >= 0.0
    assert timer.name == "perf_counter_ns+sync"


def test_gpu_timer_falls_back_to_host_clock_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    timer = harness.gpu_timer()
    assert isinstance(timer, (harness.PerfCounterTimer, harness.CudartEventTimer))


def test_summary_keeps_per_iteration_samples():
    t = FakeTimer()
    cfg = MeasureConfig(warmup_s=0, duration_s=0, min_iterations=3, max_iterations=3)
    s = summarize(measure(fake_pipeline(t, [1.0, 2.0]), FRAMES, cfg, t))
    assert s["samples_ms"]["compute"] == [2.0, 1.0, 2.0]
    assert s["samples_ms"]["e2e"] == [3.5, 2.5, 3.5]


def test_round_config_splits_the_measurement():
    cfg = MeasureConfig(warmup_s=1.0, duration_s=6.0, min_iterations=10, max_iterations=None)
    first, later = harness.round_config(cfg, 4, True), harness.round_config(cfg, 4, False)
    assert (first.warmup_s, first.duration_s, first.min_iterations) == (1.0, 1.5, 3)
    assert later.warmup_s == 0.0 and later.duration_s == 1.5
    assert harness.round_config(MeasureConfig(0.0, 0.0, 5, 5), 2, True).max_iterations == 3
    assert harness.round_config(cfg, 1, True) == cfg
    with pytest.raises(ValueError):
        harness.round_config(cfg, 0, True)


def test_merge_measurements_keeps_samples_in_order():
    a = harness.Measurement([1.0, 2.0], [3.0, 4.0], 1, 2, 0.5, 1.0, "t", {"preprocess": [0.1, 0.2]})
    b = harness.Measurement([5.0], [6.0], 1, 1, 0.0, 0.5, "t", {"preprocess": [0.3]})
    m = harness.merge_measurements([a, b])
    assert m.compute_ms == [1.0, 2.0, 5.0] and m.e2e_ms == [3.0, 4.0, 6.0] and m.iterations == 3
    assert m.stage_ms["preprocess"] == [0.1, 0.2, 0.3] and m.measure_s == 1.5 and m.warmup_iterations == 3
