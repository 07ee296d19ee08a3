"""The camera pipeline: capture -> preprocess -> inference -> postprocess/render -> outputs.

Capture, preprocess and inference run in their own threads; postprocess
(the argmax when the backend returns logits), rendering and the outputs run
in the caller's thread (windows want the main thread). A predictor with
``concurrency`` N > 1 (a CPU backend with N streams) gets N inference threads;
frames then finish out of order and are put back in order before output. Stages hand frames on through bounded queues, so memory is bounded
however long the run:

* a file or folder: blocking queues of ``queue_size``; every frame is processed.
* a live source: capture overwrites a one-frame slot (a stale frame is dropped
  and counted), and the later queues hold one frame, so the next stage that
  frees up always takes the newest frame.

:meth:`Pipeline.request_stop` (Ctrl-C, SIGTERM, ``--frames``, the end of
the stream) stops capture; the frames in flight drain and every output is
finalised. An error in any stage stops all stages and is re-raised by
:meth:`Pipeline.run` after the outputs are finalised.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enet._lazy import require
from enet.deploy.errors import NoFrameYet
from enet.deploy.overlay import Renderer, class_fractions
from enet.transforms import Preprocess

log = logging.getLogger(__name__)

STAGES = ("capture", "preprocess", "infer", "postprocess", "render", "output")
_END = object()
_POLL_S = 0.1


@dataclass
class Packet:
    """One frame on its way through the stages."""

    index: int
    rgb: np.ndarray
    pts: float | None
    timestamp: float          # wall clock (time.time) at capture
    t_captured: float         # perf_counter at capture
    latency_ms: dict[str, float] = field(default_factory=dict)
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    seq: int = 0              # order after preprocessing (capture may drop frames of a live source)


class LatestSlot:
    """A one-item queue whose ``put`` replaces an unread item (counted in ``dropped``)."""

    def __init__(self) -> None:
        self._item: Any = None
        self._has = False
        self._cv = threading.Condition()
        self.dropped = 0

    def put(self, item: Any, timeout: float | None = None) -> None:  # noqa: ARG002 - queue.Queue's signature
        with self._cv:
            if self._has and self._item is not _END:
                self.dropped += 1
            if not (self._has and self._item is _END):
                self._item, self._has = item, True
            self._cv.notify()

    def get(self, timeout: float | None = None) -> Any:
        with self._cv:
            if not self._has and not self._cv.wait_for(lambda: self._has, timeout):
                raise queue.Empty
            item, self._item, self._has = self._item, None, False
            return item


@dataclass
class RunSummary:
    """What a run did: counts, rate, mean stage latencies (ms)."""

    frames: int
    dropped: int
    seconds: float
    fps: float
    latency_ms: dict[str, float]
    backend: str
    stopped_by: str
    reconnects: int = 0

    def line(self) -> str:
        lat = " ".join(f"{k} {v:.1f}" for k, v in self.latency_ms.items() if k != "total")
        return (f"{self.frames} frames in {self.seconds:.1f} s: {self.fps:.1f} fps ({self.backend}); "
                f"dropped {self.dropped}; mean latency {self.latency_ms.get('total', 0):.0f} ms "
                f"[{lat} ms]")


def argmax_classes(logits: np.ndarray) -> np.ndarray:
    """float32 ``(C, H, W)`` -> uint8 ``(H, W)``: the first maximum over classes, as ``np.argmax(0)``.

    A running maximum with OpenCV's vectorised compare/max/bitwise ops, several
    times cheaper than ``np.argmax(axis=0)``, which first copies the class
    axis to the end. Strictly greater replaces, so ties keep the first class.
    """
    cv2 = require("cv2")
    if logits.dtype != np.float32 or logits.shape[0] > 255:
        return logits.argmax(0).astype(np.uint8)
    best = np.array(logits[0], dtype=np.float32, copy=True)
    labels = np.zeros(logits.shape[1:], dtype=np.uint8)
    for c in range(1, logits.shape[0]):
        plane = np.ascontiguousarray(logits[c])
        wins = cv2.compare(plane, best, cv2.CMP_GT)  # 255 where class c beats every earlier one
        cv2.max(best, plane, dst=best)
        labels = cv2.bitwise_or(cv2.bitwise_and(labels, cv2.bitwise_not(wins)),
                                cv2.bitwise_and(wins, np.full_like(wins, c)))
    return labels


def to_labels(y: np.ndarray) -> np.ndarray:
    """Backend output (logits ``(1, C, H, W)`` or labels ``(1, H, W)``) -> uint8 labels ``(H, W)``."""
    if y.ndim == 4:
        return argmax_classes(y[0])
    return y[0].astype(np.uint8, copy=False)


class Pipeline:
    """Runs ``source`` through ``predictor`` into ``sinks``.

    Args:
        source: an opened source (see :mod:`enet.deploy.sources`).
        predictor: callable float32 ``(1, 3, H, W)`` -> logits or labels, with
            ``size``, ``meta``, ``num_classes``, ``name``
            (:class:`enet.deploy.backends.Predictor`).
        sinks: outputs taking the rendered RGB frame; closed by :meth:`run`.
        renderer: draws the output frame.
        stats: a :class:`enet.deploy.sinks.StatsWriter` or None.
        max_frames: stop after this many output frames.
        queue_size: depth of the queues between stages for file sources.
        on_frame: called after each output frame with ``(frame_number, record)``.
        stop_timeout_s: after a stop request, how long to wait for frames in flight.
        stop_event: shared with the source (a reconnecting source stops waiting when it is set).
    """

    def __init__(self, source: Any, predictor: Any, *, sinks: Sequence[Any] = (), renderer: Renderer,
                 stats: Any = None, max_frames: int | None = None, queue_size: int = 4,
                 on_frame: Callable[[int, dict[str, Any]], None] | None = None,
                 stop_timeout_s: float = 5.0, stop_event: threading.Event | None = None) -> None:
        self.source = source
        self.predictor = predictor
        self.sinks = list(sinks)
        self.renderer = renderer
        self.stats = stats
        self.max_frames = max_frames
        self.on_frame = on_frame
        self.stop_timeout_s = stop_timeout_s
        self.live = bool(source.live)
        self.stop_event = stop_event or threading.Event()
        self.stop_reason = "end of stream"
        self._abort = threading.Event()
        self._errors: list[BaseException] = []
        self._stop_at: float | None = None
        if self.live:
            self._q_cap: Any = LatestSlot()
            self._q_pre: Any = queue.Queue(maxsize=1)
            self._q_inf: Any = queue.Queue(maxsize=1)
        else:
            self._q_cap = queue.Queue(maxsize=queue_size)
            self._q_pre = queue.Queue(maxsize=queue_size)
            self._q_inf = queue.Queue(maxsize=queue_size)
        #: inference workers: as many frames as the predictor may run at once
        self.workers = max(1, int(getattr(predictor, "concurrency", 1) or 1))
        self._workers_lock = threading.Lock()
        self._workers_left = self.workers
        meta = predictor.meta
        self._preprocess_frame = Preprocess.from_meta(meta, predictor.size)
        self._classes = list(meta["classes"])

    # ------------------------------------------------------------------ control

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop capturing; frames in flight are finished and outputs finalised. Thread/signal safe."""
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self._stop_at = time.monotonic()
            self.stop_event.set()

    @property
    def dropped(self) -> int:
        return getattr(self._q_cap, "dropped", 0)

    def _fail(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self._abort.set()
        self.stop_event.set()

    def _put(self, q: Any, item: Any) -> bool:
        while not self._abort.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: Any) -> Any:
        while not self._abort.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    # ------------------------------------------------------------------ stages

    def _capture(self) -> None:
        n = 0
        try:
            while not self.stop_event.is_set():
                if not self.live and self.max_frames is not None and n >= self.max_frames:
                    break
                t = time.perf_counter()
                try:
                    item = self.source.read()
                except NoFrameYet:
                    continue
                if item is None:
                    break
                rgb, pts = item
                now = time.perf_counter()
                pkt = Packet(n, rgb, pts, time.time(), now, {"capture": (now - t) * 1e3})
                n += 1
                if not self._put(self._q_cap, pkt):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to run(), re-raised there
            self._fail(exc)
        finally:
            self._put(self._q_cap, _END)

    def _preprocess(self) -> None:
        seq = 0
        try:
            while True:
                pkt = self._get(self._q_cap)
                if pkt is _END:
                    break
                pkt.seq, seq = seq, seq + 1
                t = time.perf_counter()
                pkt.x = self._preprocess_frame.batch([pkt.rgb])
                pkt.latency_ms["preprocess"] = (time.perf_counter() - t) * 1e3
                if not self._put(self._q_pre, pkt):
                    return
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            self._put(self._q_pre, _END)

    def _infer(self) -> None:
        """One inference worker; ``workers`` of them share the queue (frames may finish out of order)."""
        try:
            while True:
                pkt = self._get(self._q_pre)
                if pkt is _END:
                    self._put(self._q_pre, _END)  # for the other workers
                    break
                t = time.perf_counter()
                pkt.y = self.predictor(pkt.x)
                pkt.x = None
                pkt.latency_ms["infer"] = (time.perf_counter() - t) * 1e3
                if not self._put(self._q_inf, pkt):
                    return
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)
        finally:
            with self._workers_lock:
                self._workers_left -= 1
                last = self._workers_left == 0
            if last:
                self._put(self._q_inf, _END)

    # ------------------------------------------------------------------ run

    def run(self) -> RunSummary:
        """Run until the stream ends, a stop is requested or a stage fails.

        Returns:
            The run's :class:`RunSummary`.

        Raises:
            The first stage error (after all outputs are finalised).
        """
        threads = [threading.Thread(target=f, name=f"enet-{f.__name__.strip('_')}", daemon=True)
                   for f in (self._capture, self._preprocess)]
        threads += [threading.Thread(target=self._infer, name=f"enet-infer-{i}", daemon=True)
                    for i in range(self.workers)]
        self._workers_left = self.workers
        for th in threads:
            th.start()
        sums = dict.fromkeys((*STAGES, "total"), 0.0)
        frames = 0
        fps = 0.0
        t_start = time.perf_counter()
        t_last = t_start
        prev_out: float | None = None
        pending: dict[int, Packet] = {}
        next_seq = 0
        try:
            while not self._abort.is_set():
                if self._stop_at is not None and time.monotonic() - self._stop_at > self.stop_timeout_s:
                    log.warning("frames in flight did not finish within %.0f s of the stop", self.stop_timeout_s)
                    break
                try:
                    pkt = self._q_inf.get(timeout=_POLL_S)
                except queue.Empty:
                    if self._abort.is_set():
                        break
                    continue
                if pkt is _END:
                    break
                pending[pkt.seq] = pkt
                while next_seq in pending:  # in order, whichever worker finished first
                    pkt = pending.pop(next_seq)
                    next_seq += 1
                    if self.max_frames is not None and frames >= self.max_frames:
                        continue  # in flight when --frames was reached: drain, do not output
                    record = self._output(pkt, frames, fps)
                    now = time.perf_counter()
                    if prev_out is not None:
                        dt = max(now - prev_out, 1e-6)
                        fps = 1.0 / dt if frames == 1 else 0.9 * fps + 0.1 / dt
                    prev_out = now
                    t_last = now
                    for k, v in record["latency_ms"].items():
                        sums[k] += v
                    frames += 1
                    if self.on_frame is not None:
                        self.on_frame(frames, record)
                    if self.max_frames is not None and frames >= self.max_frames:
                        self.request_stop(f"--frames {self.max_frames}")
        except BaseException as exc:
            self._fail(exc)
        finally:
            self.stop_event.set()
            self._abort.set()
            for th in threads:
                th.join(timeout=2.0)
            self._finalise(capture_done=not threads[0].is_alive())
        if self._errors:
            raise self._errors[0]
        seconds = max(t_last - t_start, 1e-9)
        return RunSummary(
            frames=frames, dropped=self.dropped, seconds=seconds, fps=frames / seconds if frames else 0.0,
            latency_ms={k: v / frames for k, v in sums.items()} if frames else {},
            backend=self.predictor.name, stopped_by=self.stop_reason,
            reconnects=getattr(self.source, "reconnects", 0),
        )

    def _output(self, pkt: Packet, number: int, fps: float) -> dict[str, Any]:
        lat = pkt.latency_ms
        t = time.perf_counter()
        labels = to_labels(pkt.y)
        pkt.y = None
        fractions = class_fractions(labels, len(self._classes))
        t2 = time.perf_counter()
        lat["postprocess"] = (t2 - t) * 1e3
        h, w = self.predictor.size
        hud = [
            f"{self.predictor.name} {w}x{h}  {fps:.1f} fps",
            "cap {:.0f} pre {:.0f} inf {:.0f} post {:.0f} ms".format(
                lat.get("capture", 0), lat.get("preprocess", 0), lat.get("infer", 0), lat["postprocess"]),
        ]
        if self.live:
            hud.append(f"dropped {self.dropped}")
        frame = self.renderer.render(pkt.rgb, labels, fractions=fractions, hud_lines=hud)
        t3 = time.perf_counter()
        lat["render"] = (t3 - t2) * 1e3
        for sink in self.sinks:
            sink.write(frame)
        t4 = time.perf_counter()
        lat["output"] = (t4 - t3) * 1e3
        lat["total"] = (t4 - pkt.t_captured) * 1e3 + lat.get("capture", 0.0)
        record = {
            "frame": number,
            "source_frame": pkt.index,
            "timestamp": round(pkt.timestamp, 6),
            "pts": None if pkt.pts is None else round(pkt.pts, 6),
            "latency_ms": {k: round(v, 3) for k, v in lat.items()},
            "fps": round(fps, 2),
            "dropped": self.dropped,
            "area": {name: round(float(f), 5) for name, f in zip(self._classes, fractions)},
        }
        if self.stats is not None:
            self.stats.write(record)
        return record

    def _finalise(self, *, capture_done: bool) -> None:
        for sink in [*self.sinks, self.stats]:
            if sink is None:
                continue
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - finalise the others, report the first
                # the first error is raised (the command's one line); later ones are logged
                if self._errors:
                    log.error("could not finalise %s: %s", getattr(sink, "name", sink), exc)
                self._errors.append(exc)
        if capture_done:
            self.source.close()
        else:  # closing a capture blocked in read() in another thread can crash the decoder
            log.warning("capture of %s is still blocked; leaving it to process exit", self.source.name)
