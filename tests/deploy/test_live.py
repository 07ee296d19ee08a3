"""Issue 18: honest rate and latency, files played live, newest frame only, the summary on every end.

Fake clocks and fake sources throughout: the assertions are about what the
pipeline counts, never about how long this machine took.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from typing import Any

from enet.deploy.errors import NoFrameYet, SourceError
from enet.deploy.overlay import Renderer
from enet.deploy.pipeline import Pipeline, RateMeter, RunSummary, percentiles
from enet.deploy.sources import PacedSource, PatternSource, ReconnectingSource, open_source

META = {"classes": ["a", "b", "c"], "palette": [[0, 0, 0]] * 3, "mean": [0.5] * 3, "std": [0.25] * 3}
_SYNC_S = 20.0  # a real-time guard against a hung test, never a measurement


class FakeClock:
    """Seconds that move only when told to (thread-safe)."""

    def __init__(self) -> None:
        self.t = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def advance(self, s: float) -> None:
        with self._lock:
            self.t += s

    sleep = advance


class FakePredictor:
    """Labels of zeros; optionally spends fake time; records the frames it saw and how many ran at once."""

    size, name, num_classes, meta = (16, 24), "fake", 3, META

    def __init__(self, *, concurrency: int = 1, clock: FakeClock | None = None, cost_s: float = 0.0,
                 gate: threading.Event | None = None) -> None:
        self.concurrency = concurrency
        self.clock, self.cost_s, self.gate = clock, cost_s, gate
        self.seen: list[float] = []
        self.started = threading.Semaphore(0)
        self.on_call: Any = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(float(x[0, 0, 0, 0]))  # the frame's marker (see GatedSource)
        self.started.release()
        if self.on_call is not None:
            self.on_call()
        if self.gate is not None:
            assert self.gate.wait(_SYNC_S)
        if self.clock is not None and self.cost_s:
            self.clock.advance(self.cost_s)
        return np.zeros((1, 16, 24), np.int64)


class LockstepSource:
    """A live camera at ``rate`` on a fake clock: frame k is read once frame k - 1 is in inference and
    frame k - ``ahead`` has been output.

    Each read waits ``1 / rate`` of fake time (the wait for the next frame)
    and reports the frame ``age_s`` old. Lockstep keeps the fake timeline
    deterministic however the threads are scheduled.
    """

    name, fps = "lockstep", 15.0

    def __init__(self, clock: FakeClock, n: int, *, rate: float = 15.0, age_s: float = 0.0, ahead: int = 1,
                 live: bool = True) -> None:
        self.clock, self.n, self.rate, self.age_s, self.ahead, self.live = clock, n, rate, age_s, ahead, live
        self.frame_count, self.last_age_s, self.dropped = None, None, 0
        self.k = 0
        self.out = 0
        self.inferring = 0
        self._cv = threading.Condition()

    def attach(self, pred: FakePredictor) -> FakePredictor:
        pred.on_call = self._on_call
        return pred

    def _on_call(self) -> None:
        with self._cv:
            self.inferring += 1
            self._cv.notify_all()

    def on_frame(self, n: int, _rec: dict) -> None:
        with self._cv:
            self.out = n
            self._cv.notify_all()

    def read(self):
        if self.k >= self.n:
            return None
        with self._cv:
            assert self._cv.wait_for(lambda: self.out >= self.k - self.ahead + 1 and self.inferring >= self.k,
                                     _SYNC_S)
        self.clock.advance(1.0 / self.rate)
        self.last_age_s = self.age_s
        self.k += 1
        return np.zeros((16, 24, 3), np.uint8), None

    def close(self) -> None:
        pass


def _pipeline(source, predictor, clock=None, **kw) -> Pipeline:
    return Pipeline(source, predictor, renderer=Renderer(META["classes"], META["palette"], legend=False),
                    clock=clock or FakeClock(), **kw)


# --------------------------------------------------------------------------- rate


@pytest.mark.parametrize("streams", [1, 2])
def test_rate_meter_is_frames_out_over_wall_time(streams):
    """Two streams finish frames in pairs; the rate is still frames out over time (1/dt averages were 2-3x high)."""
    meter = RateMeter(0.0)
    period = 1 / 15
    times = [(k - k % streams) * period + (k % streams) * 1e-3 for k in range(1, 151)]
    rates = [meter.tick(t) for t in times]
    assert rates[-1] == pytest.approx(15.0, abs=0.5 * streams)  # within the frames of one burst over the window
    assert max(rates[60:]) < 15.0 * 1.05 + 0.5 * streams


@pytest.mark.parametrize("streams", [1, 2])
def test_summary_hud_and_stats_report_one_rate(streams):
    clock = FakeClock()
    src = LockstepSource(clock, 60)  # one frame in flight: in order (the meter's test has the pairs)
    records = []

    def on_frame(n, rec):
        records.append(rec)
        src.on_frame(n, rec)

    s = _pipeline(src, src.attach(FakePredictor(concurrency=streams)), clock, on_frame=on_frame).run()
    assert s.frames == 60 and s.seconds == pytest.approx(60 / 15)
    assert s.fps == pytest.approx(15.0)                                  # frames out / wall time
    assert records[-1]["fps"] == pytest.approx(15.0, abs=0.5 * streams)  # the HUD's and the stats' window
    assert "15.0 fps" in s.line()


# --------------------------------------------------------------------------- latency


def test_latency_is_capture_to_output_without_the_wait():
    """A 15 fps camera: the 66 ms wait for the next frame is not latency; the frame's age and the work are."""
    clock = FakeClock()
    src = LockstepSource(clock, 5, age_s=0.005)
    records = []

    def on_frame(n, rec):
        records.append(rec)
        src.on_frame(n, rec)

    s = _pipeline(src, src.attach(FakePredictor(clock=clock, cost_s=0.010)), clock, on_frame=on_frame).run()
    assert s.frames == 5
    for rec in records:
        lat = rec["latency_ms"]
        assert lat["total"] == pytest.approx(15.0)        # 5 ms old at capture + 10 ms inference
        assert lat["capture"] == pytest.approx(5.0) and lat["infer"] == pytest.approx(10.0)
        assert lat["queue"] == pytest.approx(0.0, abs=1e-6)
        assert rec["wait_ms"] >= 1000 / 15 - 1e-3  # recorded (the read began while the last frame ran), not counted
    assert s.total_ms == pytest.approx({"p50": 15.0, "p95": 15.0, "p99": 15.0, "max": 15.0})
    assert "p95 15" in s.line() and "dropped 0 of 5" in s.line()


def test_percentiles():
    assert percentiles([]) == {}
    p = percentiles(list(range(1, 101)))
    assert p["p50"] == pytest.approx(50.5) and p["max"] == 100 and p["p95"] < p["p99"] < 100


# --------------------------------------------------------------------------- --live


def _numbers(n: int = 40) -> PatternSource:
    return PatternSource(size=(4, 4), frames=n, fps=16.0).open()


def test_paced_source_keeps_the_files_rate_when_the_reader_keeps_up():
    clock = FakeClock()
    src = PacedSource(_numbers(8), 16.0, clock=clock, sleep=clock.sleep)
    got = []
    while (item := src.read()) is not None:
        got.append((item[1], src.last_age_s, clock()))
    assert [g[0] for g in got] == [k / 16 for k in range(8)]  # every frame, at its own time
    assert [g[2] for g in got] == [k / 16 for k in range(8)]
    assert all(g[1] == 0.0 for g in got) and src.dropped == 0


def test_paced_source_drops_frames_a_slow_reader_missed():
    """A reader at 8 fps on a 16 fps file gets every other frame, the newest due; the rest are counted."""
    clock = FakeClock()
    src = PacedSource(_numbers(40), 16.0, clock=clock, sleep=clock.sleep)
    got = []
    while (item := src.read()) is not None:
        got.append(round(item[1] * 16))
        clock.advance(0.125)  # the pipeline is busy for two frame periods
    assert got == [*range(0, 40, 2), 39]  # the last frame is the newest when the file ends
    assert src.dropped == 19 and len(got) + src.dropped == 40


def test_paced_source_reports_lateness_as_age():
    clock = FakeClock()
    src = PacedSource(_numbers(), 16.0, clock=clock, sleep=clock.sleep)
    src.read()
    clock.advance(0.0625 + 0.03125)  # back half a period after frame 1 was due: it is the newest
    item = src.read()
    assert round(item[1] * 16) == 1 and src.last_age_s == pytest.approx(0.03125)


def test_open_source_plays_files_live_at_their_rate_or_input_rate():
    from enet.deploy.gstpipes import CaptureOptions

    src = open_source("test://?size=8x8&fps=25&frames=3", play_live=True)
    assert isinstance(src, PacedSource) and src.live and src.fps == 25.0
    src = open_source("test://?size=8x8&fps=25&frames=3", play_live=True, opts=CaptureOptions(rate=15.0))
    assert src.fps == 15.0
    assert not open_source("test://?size=8x8&frames=3").live  # without --live: as fast as possible
    with pytest.raises(SourceError, match="--input-rate"):
        PacedSource(_numbers(), 0.0)


def test_live_pipeline_on_a_paced_file_counts_drops():
    """Frames the pipeline missed are dropped and counted: out + dropped = captured + skipped by the source."""
    src = PacedSource(PatternSource(size=(16, 24), frames=40, fps=400.0).open(), 400.0)
    s = Pipeline(src, FakePredictor(), renderer=Renderer(META["classes"], META["palette"], legend=False)).run()
    assert s.live and s.stopped_by == "end of stream"
    assert s.frames + s.dropped == s.captured == 40


# --------------------------------------------------------------------------- newest frame only


class GatedSource:
    """A live source whose frames the test releases one by one; frame k's pixels are all k."""

    name, fps, live, frame_count = "gated", 30.0, True, None

    def __init__(self) -> None:
        self.last_age_s, self.dropped = None, 0
        self.release = threading.Semaphore(0)
        self.k = 0
        self.done = False

    def read(self):
        assert self.release.acquire(timeout=_SYNC_S)
        if self.done:
            return None
        self.k += 1
        return np.full((16, 24, 3), self.k - 1, np.uint8), None

    def close(self) -> None:
        pass


def _marker(k: int) -> float:
    from enet.transforms import Preprocess

    return float(Preprocess.from_meta(META, (16, 24)).batch([np.full((16, 24, 3), k, np.uint8)])[0, 0, 0, 0])


@pytest.mark.parametrize("streams", [1, 2])
def test_live_path_holds_one_frame_and_a_free_worker_takes_the_newest(streams):
    gate = threading.Event()
    pred = FakePredictor(concurrency=streams, gate=gate)
    src = GatedSource()
    p = Pipeline(src, pred, renderer=Renderer(META["classes"], META["palette"], legend=False))
    result: list[RunSummary] = []
    th = threading.Thread(target=lambda: result.append(p.run()))
    th.start()
    for _ in range(streams):  # every worker busy with a frame of its own
        src.release.release()
        assert pred.started.acquire(timeout=_SYNC_S)
    for _ in range(5):        # five more frames arrive while they are busy
        src.release.release()
    for _ in range(int(_SYNC_S * 100)):
        if src.k == streams + 5 and p._q_cap.qsize() == 1 and p.dropped == 4:
            break
        threading.Event().wait(0.01)
    assert p.dropped == 4 and p._q_cap.qsize() == 1  # one frame waits: the newest; the four before it dropped
    gate.set()
    assert pred.started.acquire(timeout=_SYNC_S)
    src.done = True
    src.release.release()
    th.join(_SYNC_S)
    s = result[0]
    want = [_marker(k) for k in (*range(streams), streams + 4)]
    assert sorted(pred.seen) == pytest.approx(want)  # then the newest frame, not the oldest
    assert s.captured == streams + 5 and s.frames + s.dropped == s.captured
    assert s.frames == streams + 1 or streams > 1  # two workers may finish out of order (next test)


def test_live_stale_result_is_dropped_not_waited_for():
    """Two workers: frame 1 finishes first and is output; frame 0's result comes later, stale, and is dropped."""
    slow = threading.Event()
    zero = _marker(0)

    class Pred(FakePredictor):
        def __call__(self, x):
            y = super().__call__(x)
            if float(x[0, 0, 0, 0]) == pytest.approx(zero):
                assert slow.wait(_SYNC_S)
            return y

    pred = Pred(concurrency=2)
    src = GatedSource()
    out = []

    def on_frame(n, rec):
        out.append(rec["source_frame"])
        slow.set()

    p = Pipeline(src, pred, renderer=Renderer(META["classes"], META["palette"], legend=False), on_frame=on_frame)
    result: list[RunSummary] = []
    th = threading.Thread(target=lambda: result.append(p.run()))
    th.start()
    src.release.release()                        # frame 0: worker A, held until a result is out
    assert pred.started.acquire(timeout=_SYNC_S)
    src.release.release()                        # frame 1: worker B, done at once, output
    assert pred.started.acquire(timeout=_SYNC_S)
    for _ in range(int(_SYNC_S * 100)):
        if out:
            break
        threading.Event().wait(0.01)
    src.done = True
    src.release.release()
    th.join(_SYNC_S)
    s = result[0]
    assert out == [1] and s.frames == 1 and s.dropped == 1 and s.captured == 2


# --------------------------------------------------------------------------- test:// and the summary


def test_live_test_source_honours_frames():
    src = open_source("test://?size=8x8&fps=1000&frames=5&live=1")
    assert src.live and not isinstance(src, ReconnectingSource)
    n = 0
    while src.read() is not None:
        n += 1
    assert n == 5


def test_summary_on_end_of_input_and_max_frames(tmp_path, tiny_checkpoint, capsys):
    from enet.deploy.cli import main

    assert main(["test://?size=96x64&fps=200&frames=6&live=1", "--model", str(tiny_checkpoint), "--backend",
                 "torch", "--no-display", "-q"]) == 0
    out = capsys.readouterr().out
    assert "stopped by end of stream" in out and "of 6 captured" in out and "p95" in out
    assert main(["test://?size=96x64&frames=50", "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--frames", "3", "--no-display", "-q"]) == 0
    assert "3 frames out" in capsys.readouterr().out


def test_summary_when_the_source_is_given_up(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """A lost camera given up on: the outputs are finalised, the summary printed, then the one-line error."""
    import enet.deploy.sources as sources
    from enet.deploy.cli import main

    class Lost(PatternSource):
        def read(self):
            if self._i >= 4:
                raise SourceError("cannot reach rtsp://cam for 30 s (refused); gave up")
            return super().read()

    monkeypatch.setattr(sources, "open_source",
                        lambda *a, **k: Lost(size=(64, 96), fps=100.0, live=True).open())
    out = tmp_path / "o.mp4"
    assert main(["rtsp://cam/x", str(out), "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--writer", "opencv", "--no-display", "-q"]) == 1
    std = capsys.readouterr()
    assert "stopped by error: cannot reach rtsp://cam" in std.out and "frames out" in std.out
    assert std.err.strip().splitlines() == ["enet-run: error: cannot reach rtsp://cam for 30 s (refused); gave up"]
    assert out.is_file()


def test_input_rate_without_live_says_what_it_does(tiny_checkpoint, caplog):
    from enet.deploy.cli import RunConfig, run

    with caplog.at_level("WARNING"):
        run(RunConfig(input="test://?size=96x64&frames=2", model=str(tiny_checkpoint), backend="torch",
                      input_rate=15.0))
    assert "add --live" in caplog.text


# --------------------------------------------------------------------------- recording at real speed


def test_opencv_recording_holds_frames_for_real_time(tmp_path):
    """Constant-rate writer: a live frame is held until the next one's capture time."""
    import cv2

    from enet.deploy.sinks import VideoFileSink

    sink = VideoFileSink(tmp_path / "r.avi", fps=10.0, writer="opencv")
    for t in (0.0, 0.2, 0.4, 0.45):
        sink.write(np.zeros((48, 64, 3), np.uint8), t=t)
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "r.avi"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert sink.frames == 4 and sink.written == n == 6  # 0.45 s of drive at 10 fps: 0, 0, 0.2, 0.2, 0.4, 0.45


@pytest.mark.gstreamer
def test_gstreamer_recording_gets_capture_times(tmp_path):
    import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

    from enet.deploy.gst import gst
    from enet.deploy.sinks import VideoFileSink

    sink = VideoFileSink(tmp_path / "r.mp4", fps=15.0, writer="gst")
    times = [k / 15 for k in range(15)] + [2.0 + k / 15 for k in range(14)] + [2.9]  # a 1 s gap of dropped frames
    for t in times:
        sink.write(np.zeros((48, 64, 3), np.uint8), t=t)
    sink.close()
    Gst = gst()
    p = Gst.parse_launch(f'filesrc location="{tmp_path / "r.mp4"}" ! qtdemux ! fakesink')
    p.set_state(Gst.State.PAUSED)
    p.get_state(10 * Gst.SECOND)
    ok, duration = p.query_duration(Gst.Format.TIME)
    p.set_state(Gst.State.NULL)
    assert ok and duration / Gst.SECOND == pytest.approx(3.0, abs=0.1)  # 30 frames, 3 s of drive (not 2 s)
    from enet.deploy.sources import open_source

    src = open_source(str(tmp_path / "r.mp4"), capture="gst")
    pts = []
    while (item := src.read()) is not None:
        pts.append(item[1])
    src.close()
    assert pts == pytest.approx(times, abs=1e-3)  # every frame, at its capture time


def test_input_latency_is_the_rtsp_jitter_buffer():
    from pathlib import Path

    from enet.deploy.cli import build_parser
    from enet.deploy.gstpipes import CaptureOptions, rtsp_pipeline
    from enet.deploy.rtsp_serve import launch_line

    assert "rtspsrc location=\"rtsp://h/s\" latency=40 " in rtsp_pipeline("rtsp://h/s", CaptureOptions(latency_ms=40),
                                                                          frozenset())
    assert CaptureOptions().latency_ms == 200  # the default is unchanged
    args = build_parser().parse_args(["rtsp://h/s", "--input-latency", "0", "--live"])
    assert args.input_latency == 0 and args.live
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rtsp://h/s", "--input-latency", "-5"])
    assert "qtdemux ! h264parse ! rtph264pay name=pay0" in launch_line(Path("a.mp4"))


@pytest.mark.gstreamer
def test_rtsp_served_file_gives_frames_with_their_age(tmp_path):
    """A file served on 127.0.0.1 (python -m enet.deploy.rtsp_serve) is read as a live RTSP camera."""
    import socket
    import subprocess
    import sys

    import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

    import gi

    try:
        gi.require_version("GstRtspServer", "1.0")
    except ValueError:
        pytest.skip("gst-rtsp-server typelib not installed (apt-get install gir1.2-gst-rtsp-server-1.0)")
    from enet.deploy.gstpipes import CaptureOptions
    from enet.deploy.sinks import VideoFileSink

    clip = tmp_path / "clip.mp4"
    sink = VideoFileSink(clip, fps=15.0, writer="gst")
    for k in range(60):
        sink.write(np.full((48, 64, 3), k * 4, np.uint8))
    sink.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "enet.deploy.rtsp_serve", str(clip), "--port", str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert "rtsp://127.0.0.1" in server.stdout.readline()
        stop = threading.Event()
        src = open_source(f"rtsp://127.0.0.1:{port}/clip", capture="gst", opts=CaptureOptions(latency_ms=0),
                          stop=stop, reconnect_timeout_s=10)
        ages = []
        for _ in range(3):
            while True:
                try:
                    item = src.read()
                    break
                except NoFrameYet:
                    continue
            assert item is not None and item[0].shape == (48, 64, 3)
            ages.append(src.last_age_s)
        stop.set()
        src.close()
        assert all(a is not None and a >= 0 for a in ages[1:]), ages  # from the buffer timestamp
    finally:
        server.terminate()
        server.wait(10)
