"""Timing loop and statistics, trtexec-style.

A run is: warm up for ``warmup_s`` seconds (at least one iteration), then
measure until at least ``min_iterations`` iterations *and* ``duration_s``
seconds have passed (``--iterations N`` is ``duration_s=0,
min_iterations=N``). On the CPU (and for GPU backends without device
stages, e.g. ONNX Runtime's CUDA provider) each iteration times two spans on
one clock:

- compute: ``backend.infer(x)`` alone (float32 NCHW in, logits out, on the
  host; on a GPU that includes the host<->device copies the backend does);
- end-to-end: preprocess (uint8 RGB frames -> normalised float32 NCHW) +
  inference + postprocess (argmax -> uint8 label map).

TensorRT engines and PyTorch on CUDA are timed as ``trtexec`` times them
(:mod:`enet.bench.device_timing`): there "compute" is GPU compute time,
the input already on the device. :func:`measure` runs either kind of step.

The clock is a :class:`Timer`; tests inject a fake one, so nothing here
depends on real time. :class:`PerfCounterTimer` uses
``time.perf_counter_ns`` after an optional synchronise call;
:class:`CudaEventTimer` records CUDA events on the current stream.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
import typing
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

#: Coefficient of variation (std / mean) above which a result is flagged unstable.
DEFAULT_CV_THRESHOLD = 0.10


class Timer(Protocol):
    """A clock for the measurement loop.

    ``mark()`` returns an opaque timestamp taken after the device is idle;
    ``elapsed_ms(a, b)`` turns two marks into milliseconds; ``wall_s()`` is a
    monotonic wall clock in seconds that drives warm-up and duration.
    """

    name: str

    def mark(self) -> Any: ...
    def elapsed_ms(self, start: Any, end: Any) -> float: ...
    def wall_s(self) -> float: ...


class PerfCounterTimer:
    """``time.perf_counter_ns`` marks, each after ``sync()`` (if given).

    Args:
        sync: called before every mark, e.g. ``torch.cuda.synchronize`` for a
            GPU backend timed from the host; CPU backends need none because
            their ``infer`` returns only when the work is done.
    """

    name = "perf_counter_ns"

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self._sync = sync
        if sync is not None:
            self.name = "perf_counter_ns+sync"

    def mark(self) -> int:
        if self._sync is not None:
            self._sync()
        return time.perf_counter_ns()

    def elapsed_ms(self, start: int, end: int) -> float:
        return (end - start) / 1e6

    def wall_s(self) -> float:
        return time.perf_counter()


class CudaEventTimer:
    """CUDA events on the current PyTorch stream (``torch.cuda.Event``).

    Marks are events recorded on the stream; ``elapsed_ms`` waits for the
    later one. Used for GPU backends (torch on CUDA, TensorRT); the backends
    return host arrays, so every iteration is complete when ``infer`` returns
    and the events bracket the whole iteration.
    """

    name = "cuda_events"

    def __init__(self) -> None:
        from enet._lazy import require

        self._torch = require("torch")
        if not self._torch.cuda.is_available():
            from enet.errors import EnetError

            raise EnetError("CUDA event timing was asked for but PyTorch sees no CUDA GPU; use --device cpu")

    def mark(self) -> Any:
        ev = self._torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(start.elapsed_time(end))

    def wall_s(self) -> float:
        return time.perf_counter()


class CudartEventTimer:
    """CUDA events through cuda-python (``cudaEventRecord`` on the default stream).

    For machines whose PyTorch has no CUDA (a Jetson venv with JetPack's
    TensorRT): the TensorRT backend synchronises its own stream before
    ``infer`` returns, so events on the default stream bracket the iteration.
    Events are created once and reused (two per mark pair, round robin).
    """

    name = "cuda_events(cudart)"

    def __init__(self, pool: int = 8) -> None:
        from enet.engine.runtime import cuda

        self._cuda = cuda
        self._events = [cuda.create_event() for _ in range(pool)]
        self._next = 0

    def mark(self) -> Any:
        ev = self._events[self._next % len(self._events)]
        self._next += 1
        self._cuda.record_event(ev, 0)
        return ev

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return self._cuda.event_elapsed_ms(start, end)

    def wall_s(self) -> float:
        return time.perf_counter()

    def close(self) -> None:
        for ev in self._events:
            self._cuda.destroy_event(ev)
        self._events = []


def gpu_timer() -> Timer:
    """The best CUDA event timer available: PyTorch's, else cuda-python's, else host timing.

    Raises nothing: without CUDA the host clock is returned (GPU backends
    synchronise before ``infer`` returns, so host timing stays correct).
    """
    from enet.errors import EnetError

    try:
        return CudaEventTimer()
    except EnetError:
        pass
    try:
        return CudartEventTimer()
    except (EnetError, ImportError):
        return PerfCounterTimer()


@dataclass(frozen=True)
class MeasureConfig:
    """How long to warm up and measure.

    Attributes:
        warmup_s: warm-up wall time in seconds (at least one iteration runs).
        duration_s: measure at least this many seconds...
        min_iterations: ...and at least this many iterations.
        max_iterations: stop here even if ``duration_s`` has not passed
            (None: no cap).
    """

    warmup_s: float = 1.0
    duration_s: float = 3.0
    min_iterations: int = 10
    max_iterations: int | None = None

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.duration_s < 0:
            raise ValueError("warm-up and duration must be >= 0 seconds")
        if self.min_iterations < 1:
            raise ValueError("min_iterations must be >= 1")
        if self.max_iterations is not None and self.max_iterations < self.min_iterations:
            raise ValueError("max_iterations must be >= min_iterations")


@dataclass(frozen=True)
class Stats:
    """Latency statistics in milliseconds over ``n`` iterations of ``batch`` frames.

    ``fps`` is frames per second at the mean latency (``batch * 1000 / mean``);
    ``cv`` is the coefficient of variation ``std / mean`` (population std).
    """

    n: int
    batch: int
    min: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: float
    std: float
    cv: float
    fps: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0..100) of an ascending sequence."""
    if not sorted_ms:
        raise ValueError("no samples")
    pos = (len(sorted_ms) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return float(sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo))


def compute_stats(samples_ms: Sequence[float], batch: int = 1) -> Stats:
    """Statistics of per-iteration latencies ``samples_ms`` (one per iteration)."""
    if len(samples_ms) == 0:
        raise ValueError("cannot compute statistics of zero samples")
    s = sorted(float(v) for v in samples_ms)
    arr = np.asarray(s, dtype=np.float64)
    mean = float(arr.mean())
    std = float(arr.std())
    return Stats(
        n=len(s), batch=batch, min=s[0], mean=mean, median=percentile(s, 50),
        p90=percentile(s, 90), p95=percentile(s, 95), p99=percentile(s, 99), max=s[-1],
        std=std, cv=std / mean if mean > 0 else 0.0,
        fps=batch * 1000.0 / mean if mean > 0 else float("inf"),
    )


def stability_warning(stats: Stats, threshold: float = DEFAULT_CV_THRESHOLD, *, what: str = "latency") -> str | None:
    """A one-line warning when ``stats.cv`` exceeds ``threshold``, else None."""
    if stats.cv > threshold:
        return (
            f"unstable {what}: coefficient of variation {stats.cv:.1%} > {threshold:.0%} "
            f"(mean {stats.mean:.2f} ms, std {stats.std:.2f} ms); close other programs, lock "
            "clocks (jetson_clocks / nvidia-smi -lgc) or measure longer"
        )
    return None


@dataclass
class Pipeline:
    """The three stages of one end-to-end iteration.

    Attributes:
        preprocess: uint8 RGB frames ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)``
            (the model's :meth:`enet.transforms.Preprocess.batch`).
        infer: float32 ``(N, 3, H, W)`` -> logits ``(N, C, H, W)`` (the backend).
        postprocess: logits -> uint8 labels ``(N, H, W)``.
    """

    preprocess: Callable[[np.ndarray], np.ndarray]
    infer: Callable[[np.ndarray], np.ndarray]
    postprocess: Callable[[np.ndarray], np.ndarray]


def argmax_postprocess(logits: np.ndarray) -> np.ndarray:
    """Logits ``(N, C, H, W)`` -> uint8 class map ``(N, H, W)``."""
    return np.argmax(logits, axis=1).astype(np.uint8)


@dataclass
class Measurement:
    """Raw result of :func:`measure`: per-iteration latencies and loop counts."""

    compute_ms: list[float]
    e2e_ms: list[float]
    batch: int
    warmup_iterations: int
    warmup_s: float
    measure_s: float
    timer: str
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    compute_kind: str = "infer"  # "infer": backend.infer on the host clock; "gpu": GPU compute time
    flags: dict[str, Any] = field(default_factory=dict)  # e.g. cuda_graph, zero_copy (device timing)

    @property
    def iterations(self) -> int:
        return len(self.compute_ms)

    @property
    def frames(self) -> int:
        return self.iterations * self.batch


#: One timed iteration: batch of uint8 frames -> samples in ms; ``compute`` and ``e2e`` always present.
Step = typing.Callable[[np.ndarray], typing.Dict[str, float]]  # typing.: evaluated at run time on Python 3.8


def _iteration(pipe: Pipeline, frames: np.ndarray, timer: Timer) -> dict[str, float]:
    t0 = timer.mark()
    x = pipe.preprocess(frames)
    t1 = timer.mark()
    y = pipe.infer(x)
    t2 = timer.mark()
    pipe.postprocess(y)
    t3 = timer.mark()
    return {"compute": timer.elapsed_ms(t1, t2), "e2e": timer.elapsed_ms(t0, t3),
            "preprocess": timer.elapsed_ms(t0, t1), "postprocess": timer.elapsed_ms(t2, t3)}


def measure(pipe: Pipeline | None, inputs: Sequence[np.ndarray], config: MeasureConfig, timer: Timer,
            *, on_progress: Callable[[str, int, float], None] | None = None,
            on_measure_start: Callable[[], None] | None = None,
            on_measure_end: Callable[[], None] | None = None,
            step: Step | None = None, compute_kind: str = "infer") -> Measurement:
    """Warm up, then time iterations of ``pipe`` (or ``step``) over ``inputs`` (cycled).

    Args:
        pipe: the stages (see :class:`Pipeline`), timed with ``timer``.
        inputs: uint8 RGB batches ``(N, H, W, 3)``, all the same shape; cycled
            so a small pool of real frames stands in for a video.
        config: warm-up and measurement lengths.
        timer: the clock (see :class:`Timer`); its ``wall_s`` drives warm-up and duration.
        on_progress: called as ``(phase, iterations, seconds)`` about once a
            second with phase ``"warmup"`` or ``"measure"``.
        step: times one iteration itself instead of ``pipe`` (the device
            timing of :mod:`enet.bench.device_timing`).
        compute_kind: what ``compute`` means: ``"infer"`` (the backend's
            ``infer`` on the host clock) or ``"gpu"`` (GPU compute time).

    Returns:
        per-iteration compute and end-to-end latencies in milliseconds, and
        every other sample of the step under ``stage_ms``.
    """
    if not inputs:
        raise ValueError("measure() needs at least one input batch")
    if step is None:
        if pipe is None:
            raise ValueError("measure() needs a pipeline or a step")
        step = lambda frames: _iteration(pipe, frames, timer)  # noqa: E731
    batch = int(inputs[0].shape[0])
    k = 0

    def next_input() -> np.ndarray:
        nonlocal k
        x = inputs[k % len(inputs)]
        k += 1
        return x

    start = timer.wall_s()
    warm = 0
    last_report = start
    while True:
        step(next_input())
        warm += 1
        now = timer.wall_s()
        if on_progress and now - last_report >= 1.0:
            on_progress("warmup", warm, now - start)
            last_report = now
        if now - start >= config.warmup_s:
            break
    warmup_s = timer.wall_s() - start

    samples: dict[str, list[float]] = {}
    if on_measure_start:
        on_measure_start()
    start = timer.wall_s()
    last_report = start
    while True:
        for key, v in step(next_input()).items():
            samples.setdefault(key, []).append(v)
        now = timer.wall_s()
        n = len(samples["compute"])
        if on_progress and now - last_report >= 1.0:
            on_progress("measure", n, now - start)
            last_report = now
        if config.max_iterations is not None and n >= config.max_iterations:
            break
        if n >= config.min_iterations and now - start >= config.duration_s:
            break
    measure_s = timer.wall_s() - start
    if on_measure_end:
        on_measure_end()
    compute, e2e = samples.pop("compute"), samples.pop("e2e")
    log.debug("measured %d iterations in %.2f s after %d warm-up iterations", len(compute), measure_s, warm)
    return Measurement(compute_ms=compute, e2e_ms=e2e, batch=batch, warmup_iterations=warm,
                       warmup_s=warmup_s, measure_s=measure_s, timer=timer.name, stage_ms=samples,
                       compute_kind=compute_kind)


#: Device-timing samples reported like trtexec, beside GPU compute.
GPU_STAGES = ("h2d", "d2h", "enqueue", "latency")


def merge_measurements(parts: Sequence[Measurement]) -> Measurement:
    """One :class:`Measurement` of several turns of the same pipeline, samples in order."""
    if not parts:
        raise ValueError("nothing to merge")
    stage: dict[str, list[float]] = {}
    for m in parts:
        for k, v in m.stage_ms.items():
            stage.setdefault(k, []).extend(v)
    return Measurement(compute_ms=[v for m in parts for v in m.compute_ms], e2e_ms=[v for m in parts for v in m.e2e_ms],
                       batch=parts[0].batch, warmup_iterations=sum(m.warmup_iterations for m in parts),
                       warmup_s=sum(m.warmup_s for m in parts), measure_s=sum(m.measure_s for m in parts),
                       timer=parts[0].timer, stage_ms=stage, compute_kind=parts[0].compute_kind,
                       flags=dict(parts[0].flags))


def round_config(config: MeasureConfig, rounds: int, first: bool) -> MeasureConfig:
    """One turn of a measurement split over ``rounds`` (``enet-bench --rounds``).

    Each turn gets ``1/rounds`` of the duration and of the iteration counts
    (rounded up); the first turn warms up for ``config.warmup_s``, later ones
    for one iteration, to refill caches after the other backends ran.
    Alternating turns of every backend puts load from other programs on all
    of them alike, so their ratios stay fair on a shared machine.
    """
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    return MeasureConfig(
        warmup_s=config.warmup_s if first else 0.0, duration_s=config.duration_s / rounds,
        min_iterations=max(1, math.ceil(config.min_iterations / rounds)),
        max_iterations=None if config.max_iterations is None else max(1, math.ceil(config.max_iterations / rounds)))


def summarize(m: Measurement, *, cv_threshold: float = DEFAULT_CV_THRESHOLD) -> dict[str, Any]:
    """JSON-able summary of a :class:`Measurement`: stats, throughput and warnings."""
    compute = compute_stats(m.compute_ms, m.batch)
    e2e = compute_stats(m.e2e_ms, m.batch)
    warnings = [w for w in (stability_warning(compute, cv_threshold, what="compute latency"),
                            stability_warning(e2e, cv_threshold, what="end-to-end latency")) if w]
    out: dict[str, Any] = {
        "timer": m.timer,
        "iterations": m.iterations,
        "frames": m.frames,
        "warmup_iterations": m.warmup_iterations,
        "warmup_s": round(m.warmup_s, 4),
        "measure_s": round(m.measure_s, 4),
        "throughput_fps": m.frames / m.measure_s if m.measure_s > 0 else None,
        "compute": compute.to_dict(),
        "e2e": e2e.to_dict(),
        "stages_mean_ms": {k: float(np.mean(v)) for k, v in m.stage_ms.items() if v},
        # per-iteration latencies, in order (as trtexec --exportTimes)
        "samples_ms": {"compute": [round(v, 4) for v in m.compute_ms], "e2e": [round(v, 4) for v in m.e2e_ms]},
        "cv_threshold": cv_threshold,
        "stable": not warnings,
        "warnings": warnings,
    }
    if m.compute_kind == "gpu":
        # trtexec's names: GPU Compute Time, H2D Latency, D2H Latency, Enqueue Time, Latency (H2D+GPU+D2H)
        out["compute_kind"] = "gpu"
        out["gpu"] = {k: compute_stats(m.stage_ms[k], m.batch).to_dict() for k in GPU_STAGES if m.stage_ms.get(k)}
        out["gpu"].update(m.flags)
        out["samples_ms"].update({k: [round(v, 4) for v in m.stage_ms[k]] for k in GPU_STAGES if m.stage_ms.get(k)})
    return out
