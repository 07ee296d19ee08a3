"""Several cameras, one model: the rig pipeline of ``enet-run a.mp4 b.mp4 ...`` and ``enet-run --rig rig.toml``.

Each camera has a capture thread of its own, so a camera that stalls,
disconnects or reconnects blocks only its own thread (its reads are bounded:
:mod:`enet.deploy.sources`). Captured frames wait in a per-camera slot: a live
camera's slot keeps the newest frame (a replaced one is dropped and counted),
a file's slot holds two and makes its reader wait (every frame processed).

The inference workers (``predictor.concurrency`` of them: two on a 2-core CPU
backend) share one model. A free worker takes the ready frames of up to
``batch`` cameras, round robin from the camera after the one served last;
when fewer are ready it waits at most ``batch_wait_s`` for more, never for a
camera that has nothing (a slow or lost camera never makes a fast one wait).
A predictor with ``batch`` > 1 runs them as one inference; otherwise they run
one after the other (the shipped ONNX models have a static batch of 1).

Results are postprocessed, rendered (HUD with the camera's own fps, latency
and drops), written to the camera's outputs, to the mosaic (one frame with
every camera, written at the fastest camera's rate) and published to a live
view; ``--stats`` records carry the camera's name.

The cameras themselves and rig files: :mod:`enet.deploy.rigfile`.

A camera given up on (``--reconnect-timeout``) or at the end of its file is
``ended``; the others go on. The run ends when every camera has ended, on a
stop, or when each camera reached ``--frames``; a camera given up on then
makes the run fail (exit 1) after the outputs are finalised.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from enet.deploy.errors import NoFrameYet
from enet.deploy.overlay import Renderer, blend, class_fractions, colorize
from enet.deploy.pipeline import STAGES, Packet, RateMeter, RunSummary, captured_packet, percentiles, to_labels
from enet.errors import EnetError
from enet.transforms import DEFAULT_FIT, Preprocess

log = logging.getLogger(__name__)

_POLL_S = 0.1
_END = object()
#: How many recent frames the live per-camera latency percentiles (HUD, live view) are taken over.
LATENCY_WINDOW = 100
#: Camera states, as reported to the live view and the log.
STATES = ("live", "reconnecting", "ended")


# --------------------------------------------------------------------------- run-time camera


class CameraRun:
    """One opened camera in a running rig: its source, outputs and counters."""

    def __init__(self, name: str, source: Any, sinks: Sequence[Any] = (), *, index: int = 0) -> None:
        self.name = name
        self.index = index
        self.source = source
        self.sinks = list(sinks)
        self.live = bool(source.live)
        self.frames = 0
        self.captured = 0
        self.late = 0
        self.slot_dropped = 0
        self.error: BaseException | None = None
        self.capture_ended = False
        self.done = False  # reached --frames
        self.next_seq = 0
        self.out_seq = -1
        self.meter: RateMeter | None = None
        self.totals = array("d")
        self.recent: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.fps = 0.0
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.state = "live"
        self.last_frame: np.ndarray | None = None
        self.last_fractions: list[float] | None = None

    @property
    def dropped(self) -> int:
        return self.slot_dropped + int(getattr(self.source, "dropped", 0)) + self.late

    @property
    def reconnects(self) -> int:
        return int(getattr(self.source, "reconnects", 0))

    def source_state(self) -> str:
        if self.capture_ended:
            return "ended"
        return str(getattr(self.source, "state", "live"))

    def stats(self) -> dict[str, Any]:
        """What the HUD and the live view show: fps over the last 2 s, latency over the last frames."""
        p = percentiles(list(self.recent))
        return {"fps": round(self.fps, 2), "latency_p50_ms": round(p.get("p50", 0.0), 1),
                "latency_p95_ms": round(p.get("p95", 0.0), 1), "dropped": self.dropped, "frames": self.frames}


class _Slots:
    """Per-camera frame slots under one condition: live ones keep the newest, files hold ``depth``."""

    def __init__(self, cams: Sequence[CameraRun], depth: int = 2) -> None:
        self.cv = threading.Condition()
        self.cams = list(cams)
        self.items: list[deque[Packet]] = [deque() for _ in cams]
        self.ended = [False] * len(cams)
        self.depth = depth
        self._next = 0

    def put(self, i: int, pkt: Packet, abort: threading.Event) -> bool:
        cam = self.cams[i]
        with self.cv:
            if cam.live:
                if self.items[i]:
                    cam.slot_dropped += len(self.items[i])
                    self.items[i].clear()
            else:
                while len(self.items[i]) >= self.depth:
                    if abort.is_set():
                        return False
                    self.cv.wait(_POLL_S)
            self.items[i].append(pkt)
            self.cv.notify_all()
        return True

    def end(self, i: int) -> None:
        with self.cv:
            self.ended[i] = True
            self.cv.notify_all()

    def take(self, max_n: int, wait_s: float, abort: threading.Event) -> list[Packet] | None:
        """Up to ``max_n`` frames of distinct cameras, round robin; after the first is ready, at most
        ``wait_s`` more for others that are coming. None when every camera ended and nothing is left."""
        n = len(self.items)
        with self.cv:
            while True:
                if abort.is_set():
                    return None
                ready = [i for i in range(n) if self.items[i]]
                if ready:
                    break
                if all(self.ended):
                    return None
                self.cv.wait(_POLL_S)
            if max_n > 1 and len(ready) < max_n and wait_s > 0:
                deadline = time.monotonic() + wait_s
                waiting_for = sum(1 for i in range(n) if not self.ended[i])
                while len(ready) < min(max_n, waiting_for):
                    left = deadline - time.monotonic()
                    if left <= 0 or abort.is_set():
                        break
                    self.cv.wait(left)
                    ready = [i for i in range(n) if self.items[i]]
            order = [(self._next + k) % n for k in range(n)]
            chosen = [i for i in order if self.items[i]][:max_n]
            self._next = (chosen[-1] + 1) % n
            out = [self.items[i].popleft() for i in chosen]
            self.cv.notify_all()  # a file's reader may put again
            return out


class RigPipeline:
    """Runs several cameras through one predictor (module docstring).

    Args:
        cameras: the opened cameras.
        predictor: as :class:`enet.deploy.pipeline.Pipeline` takes it; ``batch`` (optional, default 1):
            frames one call may take (``(N, 3, H, W)``).
        renderer: draws each camera's output frame.
        mosaic_sinks: outputs of the mosaic (every camera's latest frame in a grid).
        mosaic_rate: frames per second of the mosaic (default: the fastest camera's).
        live_view: an object with ``publish`` and ``set_state`` (:mod:`enet.deploy.live`) or None.
        stats: a :class:`enet.deploy.sinks.StatsWriter` or None.
        max_frames: each camera stops after this many results.
        batch_wait_s: once one camera's frame is ready, how long a batch may wait for the others'.
        stop_event: shared with the sources (a reconnecting source stops waiting when it is set).
        fit: frames of another aspect ratio than the model's (:data:`enet.transforms.FITS`), as in one-camera runs.
    """

    def __init__(self, cameras: Sequence[CameraRun], predictor: Any, *, renderer: Renderer,
                 mosaic_sinks: Sequence[Any] = (), mosaic_rate: float | None = None, live_view: Any = None,
                 stats: Any = None, max_frames: int | None = None, batch_wait_s: float = 0.005,
                 on_frame: Callable[[int, dict[str, Any]], None] | None = None,
                 stop_event: threading.Event | None = None, stop_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.perf_counter, fit: str = DEFAULT_FIT) -> None:
        self.cameras = list(cameras)
        for i, c in enumerate(self.cameras):
            c.index = i
        self.predictor = predictor
        self.renderer = renderer
        self.mosaic_sinks = list(mosaic_sinks)
        self.mosaic_rate = mosaic_rate or max([c.source.fps or 0.0 for c in self.cameras] + [0.0]) or 10.0
        self.live_view = live_view
        self.stats = stats
        self.max_frames = max_frames
        self.batch = max(1, int(getattr(predictor, "batch", 1) or 1))
        self.batch_wait_s = batch_wait_s
        self.on_frame = on_frame
        self.stop_event = stop_event or threading.Event()
        self.stop_timeout_s = stop_timeout_s
        self.clock = clock
        self.stop_reason = "end of stream"
        self.summary: RunSummary | None = None
        self.live = any(c.live for c in self.cameras)
        self.workers = max(1, int(getattr(predictor, "concurrency", 1) or 1))
        self._abort = threading.Event()
        self._errors: list[BaseException] = []
        self._stop_at: float | None = None
        self._slots = _Slots(self.cameras)
        self._q_out: queue.Queue[Any] = queue.Queue()
        self._workers_left = self.workers
        self._workers_lock = threading.Lock()
        self._seq_lock = threading.Lock()
        meta = predictor.meta
        self._preprocess_frame = Preprocess.from_meta(meta, predictor.size, fit=fit)
        self._classes = list(meta["classes"])

    # ------------------------------------------------------------------ control

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop capturing; frames in flight are finished and outputs finalised. Thread/signal safe."""
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self._stop_at = time.monotonic()
            self.stop_event.set()

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._abort.set()
        self.stop_event.set()

    # ------------------------------------------------------------------ stages

    def _capture(self, cam: CameraRun) -> None:
        clock = self.clock
        n = 0
        try:
            while not self.stop_event.is_set() and not cam.done:
                t = clock()
                try:
                    item = cam.source.read()
                except NoFrameYet:
                    continue
                if item is None:
                    break
                pkt = captured_packet(n, item, cam.source, t, clock)
                pkt.camera = cam.index  # type: ignore[attr-defined]
                n += 1
                cam.captured = n
                if not self._slots.put(cam.index, pkt, self._abort):
                    return
        except EnetError as exc:  # this camera failed (given up on): the others go on
            cam.error = exc
            log.error("camera %s: %s", cam.name, " ".join(str(exc).split()))
        except BaseException as exc:  # noqa: BLE001 - handed to run(), re-raised there
            self._fail(exc)
        finally:
            cam.capture_ended = True
            self._slots.end(cam.index)

    def _infer(self) -> None:
        try:
            while True:
                pkts = self._slots.take(self.batch, self.batch_wait_s, self._abort)
                if pkts is None:
                    break
                with self._seq_lock:  # the order frames were taken, per camera
                    for pkt in pkts:
                        cam = self.cameras[pkt.camera]  # type: ignore[attr-defined]
                        pkt.seq, cam.next_seq = cam.next_seq, cam.next_seq + 1
                for pkt in pkts:
                    t = self.clock()
                    x, pkt.placement = self._preprocess_frame.frame(pkt.rgb, order="rgb")  # as Pipeline._prepare
                    pkt.x = x[None]
                    pkt.latency_ms["preprocess"] = (self.clock() - t) * 1e3
                if self.batch > 1 and len(pkts) > 1:
                    t = self.clock()
                    y = self.predictor(np.concatenate([p.x for p in pkts]))
                    ms = (self.clock() - t) * 1e3
                    for k, pkt in enumerate(pkts):
                        pkt.y, pkt.x = y[k:k + 1], None
                        pkt.latency_ms["infer"] = ms
                        self._q_out.put(pkt)
                    continue
                for pkt in pkts:
                    t = self.clock()
                    pkt.y, pkt.x = self.predictor(pkt.x), None
                    pkt.latency_ms["infer"] = (self.clock() - t) * 1e3
                    self._q_out.put(pkt)
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            with self._workers_lock:
                self._workers_left -= 1
                last = self._workers_left == 0
            if last:
                self._q_out.put(_END)

    # ------------------------------------------------------------------ run

    def run(self) -> RunSummary:
        """Run until every camera ended, a stop is requested, or a stage fails.

        Returns:
            The whole run's :class:`RunSummary`; ``summary.cameras`` holds one dict per camera
            (name, frames, captured, dropped, fps, total_ms, reconnects, state, error).

        Raises:
            The first stage error, else the first camera's error (given up on), after every output
            is finalised (:attr:`summary` is set).
        """
        threads = [threading.Thread(target=self._capture, args=(c,), name=f"enet-capture-{c.name}", daemon=True)
                   for c in self.cameras]
        threads += [threading.Thread(target=self._infer, name=f"enet-infer-{i}", daemon=True)
                    for i in range(self.workers)]
        sums = dict.fromkeys((*STAGES, "total"), 0.0)
        totals = array("d")
        frames = 0
        t_start = self.clock()
        t_last = t_start
        for c in self.cameras:
            c.meter = RateMeter(t_start)
            self._announce(c, "live")
        t_mosaic = t_start
        for th in threads:
            th.start()
        try:
            while not self._abort.is_set():
                if self._stop_at is not None and time.monotonic() - self._stop_at > self.stop_timeout_s:
                    log.warning("frames in flight did not finish within %.0f s of the stop", self.stop_timeout_s)
                    break
                self._watch_states()
                now = self.clock()
                if self.mosaic_sinks and now - t_mosaic >= 1.0 / self.mosaic_rate:
                    t_mosaic = now
                    self._write_mosaic(now - t_start)
                try:
                    pkt = self._q_out.get(timeout=min(_POLL_S, 1.0 / self.mosaic_rate))
                except queue.Empty:
                    continue
                if pkt is _END:
                    break
                cam = self.cameras[pkt.camera]
                if cam.live and pkt.seq < cam.out_seq:
                    cam.late += 1  # a frame of this camera taken later is out already: stale
                    continue
                if cam.done:
                    continue
                cam.out_seq = pkt.seq
                record = self._output(cam, pkt)
                t_last = self.clock()
                for k, v in record["latency_ms"].items():
                    sums[k] += v
                totals.append(record["latency_ms"]["total"])
                frames += 1
                if self.on_frame is not None:
                    self.on_frame(frames, record)
                if self.max_frames is not None and cam.frames >= self.max_frames:
                    cam.done = True
                    if all(c.done or c.capture_ended for c in self.cameras):
                        self.request_stop(f"--frames {self.max_frames}")
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.stop_event.set()
            self._abort.set()
            with self._slots.cv:
                self._slots.cv.notify_all()
            for th in threads:
                th.join(timeout=2.0)
            self._watch_states(final=True)
            self._finalise(threads)
            seconds = max(t_last - t_start, 1e-9)
            self.summary = RunSummary(
                frames=frames, dropped=sum(c.dropped for c in self.cameras), seconds=seconds,
                fps=frames / seconds if frames else 0.0,
                latency_ms={k: v / frames for k, v in sums.items()} if frames else {},
                backend=self.predictor.name, stopped_by=self._ended_by(),
                reconnects=sum(c.reconnects for c in self.cameras),
                captured=sum(c.captured + int(getattr(c.source, "dropped", 0)) for c in self.cameras),
                total_ms=percentiles(totals), live=self.live)
            self.summary.cameras = [self._camera_summary(c, t_start) for c in self.cameras]  # type: ignore[attr-defined]
        if self._errors:
            raise self._errors[0]
        failed = [c for c in self.cameras if c.error is not None]
        if failed and self.stop_reason == "end of stream":
            raise EnetError(f"camera {failed[0].name}: {' '.join(str(failed[0].error).split())}")
        return self.summary

    def _ended_by(self) -> str:
        if self._errors:
            return "error: " + (" ".join(str(self._errors[0]).split()) or type(self._errors[0]).__name__)
        failed = [c for c in self.cameras if c.error is not None]
        if failed and self.stop_reason == "end of stream":
            return f"error: camera {failed[0].name}: {' '.join(str(failed[0].error).split())}"
        return self.stop_reason

    def _camera_summary(self, c: CameraRun, t_start: float) -> dict[str, Any]:
        end = c.t_last if c.t_last is not None else t_start
        seconds = max(end - t_start, 1e-9)
        return {"name": c.name, "frames": c.frames, "captured": c.captured + int(getattr(c.source, "dropped", 0)),
                "dropped": c.dropped, "seconds": seconds, "fps": c.frames / seconds if c.frames else 0.0,
                "total_ms": percentiles(c.totals), "reconnects": c.reconnects, "state": c.state,
                "error": None if c.error is None else " ".join(str(c.error).split())}

    # ------------------------------------------------------------------ states

    def _announce(self, cam: CameraRun, state: str) -> None:
        cam.state = state
        if self.live_view is not None:
            try:
                self.live_view.set_state(cam.name, state)
            except Exception as exc:  # noqa: BLE001 - a viewer problem never stops the cameras
                log.debug("live view: %s", exc)

    def _watch_states(self, final: bool = False) -> None:
        for c in self.cameras:
            state = "ended" if final and c.state != "ended" and (c.capture_ended or self._abort.is_set()) \
                else c.source_state()
            if state != c.state:
                if state == "reconnecting":
                    log.warning("camera %s: reconnecting (last frame %.1f s ago)", c.name,
                                time.monotonic() - getattr(c.source, "last_frame_at", time.monotonic()))
                elif state == "live":
                    log.warning("camera %s: live again", c.name)
                elif not final:
                    log.info("camera %s: ended (%s)", c.name, "given up" if c.error else "end of stream")
                self._announce(c, state)

    # ------------------------------------------------------------------ output

    def _output(self, cam: CameraRun, pkt: Packet) -> dict[str, Any]:
        clock = self.clock
        lat = pkt.latency_ms
        t = clock()
        labels = to_labels(pkt.y)
        pkt.y = None
        fractions = class_fractions(pkt.placement.content(labels), len(self._classes))
        labels = pkt.placement.labels_to_frame(labels)
        t2 = clock()
        lat["postprocess"] = (t2 - t) * 1e3
        h, w = self.predictor.size
        st = cam.stats()
        hud = [f"{cam.name}  {self.predictor.name} {w}x{h}  {cam.fps:.1f} fps",
               "latency {:.0f} ms (p95 {:.0f}): pre {:.0f} inf {:.0f}".format(
                   (t - pkt.t_captured) * 1e3, st["latency_p95_ms"], lat.get("preprocess", 0), lat.get("infer", 0))]
        if cam.live:
            hud.append(f"dropped {cam.dropped}" + (f"  reconnects {cam.reconnects}" if cam.reconnects else ""))
        # the files and the mosaic get the full render (HUD, legend); the live view's page draws its own numbers
        # and legend, so it gets the overlay alone, and a rig whose only output is the page renders nothing more
        full = bool(cam.sinks) or bool(self.mosaic_sinks) or self.live_view is None
        frame = self.renderer.render(pkt.rgb, labels, fractions=fractions, hud_lines=hud) if full else None
        view_frame = None
        if self.live_view is not None:
            view_frame = blend(pkt.rgb, colorize(labels, self.renderer.palette), self.renderer.alpha)[:, :, ::-1]
        t3 = clock()
        lat["render"] = (t3 - t2) * 1e3
        if cam.t_first is None:
            cam.t_first = pkt.t_captured
        t_video = pkt.t_captured - cam.t_first if cam.live else None
        for sink in cam.sinks:
            sink.write(frame, t=t_video)
        t4 = clock()
        lat["output"] = (t4 - t3) * 1e3
        lat["total"] = (t4 - pkt.t_captured) * 1e3
        lat["queue"] = max(0.0, lat["total"] - sum(lat.get(k, 0.0) for k in STAGES if k != "queue"))
        assert cam.meter is not None
        cam.fps = cam.meter.tick(t4)
        cam.totals.append(lat["total"])
        cam.recent.append(lat["total"])
        cam.t_last = t4
        cam.last_frame = frame
        cam.last_fractions = [float(f) for f in fractions]
        number = cam.frames
        cam.frames += 1
        record = {
            "camera": cam.name,
            "frame": number,
            "source_frame": pkt.index,
            "timestamp": round(pkt.timestamp, 6),
            "pts": None if pkt.pts is None else round(pkt.pts, 6),
            "latency_ms": {k: round(lat.get(k, 0.0), 3) for k in (*STAGES, "total")},
            "wait_ms": round(pkt.wait_ms, 3),
            "fps": round(cam.fps, 2),
            "dropped": cam.dropped,
            "reconnects": cam.reconnects,
            "area": {name: round(float(f), 5) for name, f in zip(self._classes, fractions)},
        }
        if self.stats is not None:
            self.stats.write(record)
        if self.live_view is not None:
            try:
                self.live_view.publish(cam.name, view_frame, captured_at=pkt.timestamp,
                                       stats=cam.stats(), fractions=cam.last_fractions)
            except Exception as exc:  # noqa: BLE001 - a viewer problem never stops the cameras
                log.debug("live view: %s", exc)
        return record

    def _write_mosaic(self, t: float) -> None:
        frames = [c.last_frame for c in self.cameras]
        if all(f is None for f in frames):
            return
        grid = mosaic(frames, [c.name for c in self.cameras], [c.state for c in self.cameras])
        for sink in self.mosaic_sinks:
            sink.write(grid, t=t if self.live else None)

    def _finalise(self, threads: Sequence[threading.Thread]) -> None:
        closing = [s for c in self.cameras for s in c.sinks] + self.mosaic_sinks + [self.stats]
        for sink in closing:
            if sink is None:
                continue
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - finalise the others, report the first
                if self._errors:
                    log.error("could not finalise %s: %s", getattr(sink, "name", sink), exc)
                self._errors.append(exc)
        for c, th in zip(self.cameras, threads):
            if not th.is_alive():
                c.source.close()
            else:  # closing a capture blocked in read() in another thread can crash the decoder
                log.warning("capture of %s is still blocked; leaving it to process exit", c.name)


def mosaic(frames: Sequence[np.ndarray | None], names: Sequence[str], states: Sequence[str]) -> np.ndarray:
    """Every camera's latest frame in a grid (``ceil(sqrt(n))`` columns), each cell the first frame's size.

    A camera without a frame is a dark cell; one that is not live is greyed and labelled with its state.
    """
    from enet._lazy import require

    cv2 = require("cv2")
    shape = next(f.shape for f in frames if f is not None)
    h, w = shape[:2]
    n = len(frames)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.zeros((rows * h, cols * w, 3), np.uint8)
    for k, (f, name, state) in enumerate(zip(frames, names, states)):
        r, c = divmod(k, cols)
        cell = out[r * h:(r + 1) * h, c * w:(c + 1) * w]
        if f is not None:
            cell[:] = f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
        if state != "live":
            cell[:] = (cell.astype(np.uint16) // 3).astype(np.uint8)
            cv2.putText(cell, f"{name}: {state}", (10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, max(0.4, h / 720.0),
                        (255, 255, 255), 1, cv2.LINE_AA)
    return out
