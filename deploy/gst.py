"""GStreamer through PyGObject: an appsink source and an appsrc sink.

``gi`` is imported lazily (:func:`gst`); pipeline strings come from
:mod:`enet.deploy.gstpipes`. No GLib main loop is needed: frames are pulled
with ``try-pull-sample`` and bus messages polled.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from enet._lazy import require
from enet.deploy.errors import NoFrameYet, SinkError, SourceDisconnected, SourceError
from enet.deploy.gstpipes import APPSINK, APPSRC

log = logging.getLogger(__name__)

_PULL_TIMEOUT_S = 0.25


@functools.lru_cache(maxsize=1)
def gst() -> Any:
    """The initialised ``Gst`` module. Raises MissingDependencyError."""
    # torch 2.13 + PyGObject 3.42: once gi has initialised GStreamer,
    # torch.onnx.export (TorchScript) can abort the process; the on-the-fly
    # export (enet.export.cache.cached_onnx) runs in a child process whenever gi
    # is loaded, so nothing here imports torch (an .onnx or .engine run has none).
    #
    # OpenVINO 2026.4 likewise: when it or onnxruntime 1.32 is first imported after gi has
    # initialised GStreamer, OpenVINO's first infer() aborts the process ("Fatal Python error:
    # Aborted"; measured: torch, openvino, gi, onnxruntime in that order aborts, any order with
    # both runtimes before gi works). The demo writes its clip through GStreamer before it loads
    # the model, so both are imported here, when installed.
    from enet._lazy import available

    available("onnxruntime")
    available("openvino")
    gi = require("gi")
    try:
        gi.require_version("Gst", "1.0")
    except ValueError as exc:
        from enet.errors import MissingDependencyError

        raise MissingDependencyError(
            f"GStreamer typelib missing ({exc}); apt-get install gir1.2-gstreamer-1.0"
        ) from None
    from gi.repository import Gst

    Gst.init(None)
    return Gst


def available() -> bool:
    """True when GStreamer imports through PyGObject; never raises."""
    try:
        gst()
    except Exception:  # noqa: BLE001 - a broken install counts as missing
        return False
    return True


@functools.lru_cache(maxsize=1)
def installed_elements() -> frozenset[str]:
    """Names of the element factories in the GStreamer registry (empty without GStreamer)."""
    if not available():
        return frozenset()
    Gst = gst()
    factories = Gst.Registry.get().get_feature_list(Gst.ElementFactory)
    return frozenset(f.get_name() for f in factories)


def _bus_error(pipeline: Any, timeout_ns: int = 0) -> str | None:
    Gst = gst()
    msg = pipeline.get_bus().timed_pop_filtered(timeout_ns, Gst.MessageType.ERROR)
    if msg is None:
        return None
    err, debug = msg.parse_error()
    log.debug("GStreamer error: %s (%s)", err.message, debug)  # debug: source file and element path, for -v
    return f"{err.message}"


def _launch(description: str) -> Any:
    Gst = gst()
    try:
        return Gst.parse_launch(description)
    except Exception as exc:  # noqa: BLE001 - GLib.Error for a bad description or a missing element
        raise SourceError(f"GStreamer cannot build pipeline '{description}': {exc}") from None


def sample_to_rgb(sample: Any) -> np.ndarray:
    """A ``GstSample`` -> RGB uint8 ``(H, W, 3)`` (copied out of the buffer).

    Accepts RGB, BGR, RGBx/RGBA, BGRx/BGRA and GRAY8 (for ``gst://`` pipelines
    that do not end in ``video/x-raw,format=RGB``); rows may be padded.
    """
    caps = sample.get_caps().get_structure(0)
    w, h = caps.get_value("width"), caps.get_value("height")
    fmt = caps.get_value("format")
    channels = {"RGB": 3, "BGR": 3, "RGBx": 4, "RGBA": 4, "BGRx": 4, "BGRA": 4, "xRGB": 4, "GRAY8": 1}.get(fmt)
    if channels is None:
        raise SourceError(f"appsink delivered {fmt} frames; end the pipeline in videoconvert ! video/x-raw,format=RGB")
    buf = sample.get_buffer()
    ok, info = buf.map(gst().MapFlags.READ)
    if not ok:
        raise SourceError("cannot map a GStreamer buffer")
    try:
        data = np.frombuffer(info.data, dtype=np.uint8)
        stride = len(data) // h
        rows = data[: stride * h].reshape(h, stride)[:, : w * channels].reshape(h, w, channels)
        if fmt in ("RGB",):
            rgb = rows.copy()
        elif fmt == "BGR":
            rgb = rows[:, :, ::-1].copy()
        elif fmt in ("RGBx", "RGBA"):
            rgb = rows[:, :, :3].copy()
        elif fmt in ("BGRx", "BGRA"):
            rgb = rows[:, :, 2::-1].copy()
        elif fmt == "xRGB":
            rgb = rows[:, :, 1:].copy()
        else:
            rgb = np.repeat(rows, 3, axis=2)
    finally:
        buf.unmap(info)
    return rgb


class GstSource:
    """Frames from a pipeline ending in ``appsink`` (name :data:`APPSINK` or any appsink).

    Args:
        description: ``gst_parse_launch`` text.
        live: a live source raises :class:`SourceDisconnected` on error or EOS
            (the caller reopens it); a file ends with ``None``.
        open_timeout_s: how long to wait for the first frame in :meth:`open`.
    """

    def __init__(self, description: str, *, live: bool, open_timeout_s: float = 10.0,
                 name: str | None = None) -> None:
        self.description = description
        self.live = live
        self.name = name or description
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.last_age_s: float | None = None
        self.dropped = 0
        self._open_timeout_s = open_timeout_s
        self._pipeline: Any = None
        self._sink: Any = None
        self._first: tuple[np.ndarray, float | None] | None = None
        self._first_age: float | None = None
        self._duration_s: float | None = None  # a file's length from its container, for the early-end warning
        self._frames = 0
        self._last_pts: float | None = None

    def _find_appsink(self) -> Any:
        sink = self._pipeline.get_by_name(APPSINK)
        if sink is not None:
            return sink
        it = self._pipeline.iterate_sinks()
        while True:
            res, elem = it.next()
            if res != gst().IteratorResult.OK:
                break
            if elem.get_factory() is not None and elem.get_factory().get_name() == "appsink":
                return elem
        raise SourceError(f"pipeline has no appsink: {self.description}")

    def open(self) -> GstSource:
        Gst = gst()
        self._pipeline = _launch(self.description)
        self._sink = self._find_appsink()
        if self._pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            err = _bus_error(self._pipeline) or "state change failed"
            self.close()
            raise SourceError(f"cannot open {self.name}: {err}")
        # Wait for the first frame so a bad file or camera fails here, in one line.
        deadline_ns = int(self._open_timeout_s * 1e9)
        sample = self._sink.emit("try-pull-sample", deadline_ns)
        if sample is None:
            err = _bus_error(self._pipeline) or (
                "end of stream before the first frame" if self._sink.get_property("eos")
                else f"no frame within {self._open_timeout_s:g} s")
            self.close()
            raise SourceError(f"cannot read {self.name}: {err}")
        self._first = (sample_to_rgb(sample), self._pts(sample))
        self._first_age = self._age(sample)
        self._read_rate(sample)
        if not self.live:
            ok, duration = self._pipeline.query_duration(Gst.Format.TIME)
            if ok and duration > 0:
                self._duration_s = duration / Gst.SECOND
        return self

    def _warn_if_short(self) -> None:
        """At the end of a file: warn when the frames stopped well before the container's duration."""
        if self._duration_s is None or self._last_pts is None:
            return
        frame_s = 1.0 / self.fps if self.fps else 0.0
        if self._last_pts + 2 * frame_s < self._duration_s - 0.05:
            log.warning("%s ended early: %d frames (%.1f s) of the %.1f s its header announces (truncated file?)",
                        self.name, self._frames, self._last_pts + frame_s, self._duration_s)
        self._duration_s = None  # warn once

    def _read_rate(self, sample: Any) -> None:
        caps = sample.get_caps().get_structure(0)
        ok, num, den = caps.get_fraction("framerate")
        if ok and den and num:
            self.fps = num / den

    def _age(self, sample: Any) -> float | None:
        """How old a live frame is now: the pipeline clock minus its buffer's running time.

        A live source (v4l2src, nvarguscamerasrc, rtspsrc's jitter buffer)
        timestamps buffers in running time at capture (RTSP: at arrival), so
        this counts decoding, the jitter buffer (``--input-latency``) and time
        in the appsink. None for files (their timestamps are stream positions)
        and for buffers without a timestamp.
        """
        if not self.live or self._pipeline is None:
            return None
        Gst = gst()
        pts = sample.get_buffer().pts
        clock = self._pipeline.get_clock()
        if pts == Gst.CLOCK_TIME_NONE or clock is None:
            return None
        running = sample.get_segment().to_running_time(Gst.Format.TIME, pts)
        if running == Gst.CLOCK_TIME_NONE or running < 0:
            return None
        age = (clock.get_time() - self._pipeline.get_base_time() - running) / Gst.SECOND
        if -1.0 < age < 0.0:
            # rtpjitterbuffer maps RTP time to this clock with a skew estimate; with a small
            # --input-latency frames come out up to ~40 ms "early" (measured on 127.0.0.1): just captured
            return 0.0
        return age if 0.0 <= age < 60.0 else None  # outside that: a clock this code does not understand

    def _pts(self, sample: Any) -> float | None:
        pts = sample.get_buffer().pts
        return None if pts == gst().CLOCK_TIME_NONE else pts / gst().SECOND

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next ``(rgb, pts_seconds)``, or None at the end of a file.

        Raises:
            SourceDisconnected: a live source errored or ended.
            SourceError: a file failed to decode.
        """
        if self._first is not None:
            first, self._first = self._first, None
            self.last_age_s = self._first_age
            return self._count(first)
        if self._sink is None:
            raise SourceError(f"{self.name} is not open")
        while True:
            sample = self._sink.emit("try-pull-sample", int(_PULL_TIMEOUT_S * 1e9))
            if sample is not None:
                self.last_age_s = self._age(sample)
                return self._count((sample_to_rgb(sample), self._pts(sample)))
            err = _bus_error(self._pipeline)
            if err is not None:
                if self.live:
                    raise SourceDisconnected(f"{self.name}: {err}")
                raise SourceError(f"cannot decode {self.name}: {err}")
            if self._sink.get_property("eos"):
                if self.live:
                    raise SourceDisconnected(f"{self.name}: end of stream")
                self._warn_if_short()
                return None
            # Timed out with no error: a live camera is slow or stalled; the
            # caller checks its stop flag and its stall timeout, then asks again.
            if self.live:
                raise NoFrameYet

    def _count(self, item: tuple[np.ndarray, float | None]) -> tuple[np.ndarray, float | None]:
        self._frames += 1
        if item[1] is not None:
            self._last_pts = item[1]
        return item

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.set_state(gst().State.NULL)
            self._pipeline = None
            self._sink = None


def i420_bytes(rgb: np.ndarray) -> bytes:
    """RGB ``(H, W, 3)`` (even sizes) -> an I420 buffer as GStreamer lays it out by default.

    BT.601 limited range (OpenCV's conversion; what ``videoconvert`` made of
    the RGB frames before). GStreamer pads each plane's rows to a multiple of
    4 bytes (``gst_video_info_set_format``): 1140 pixels wide, the chroma rows
    are 570 bytes of 572.
    """
    cv2 = require("cv2")
    h, w = rgb.shape[:2]
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
    ys, cs = -(-w // 4) * 4, -(-(w // 2) // 4) * 4
    if ys == w and cs == w // 2:
        return yuv.tobytes()
    flat = yuv.reshape(-1)
    out = np.zeros(ys * h + 2 * cs * (h // 2), dtype=np.uint8)
    out[: ys * h].reshape(h, ys)[:, :w] = flat[: w * h].reshape(h, w)
    n = (w // 2) * (h // 2)
    for i in range(2):
        start = ys * h + i * cs * (h // 2)
        out[start: start + cs * (h // 2)].reshape(h // 2, cs)[:, : w // 2] = \
            flat[w * h + i * n: w * h + (i + 1) * n].reshape(h // 2, w // 2)
    return out.tobytes()


class GstSink:
    """Pushes RGB frames into a pipeline starting with ``appsrc`` (name :data:`APPSRC`).

    Timestamps are ``index / fps`` for files (constant rate) unless
    :meth:`write` is given the frame's time (a live run: the muxer then
    writes a variable frame rate, each frame lasting until the next), and
    the wall clock since the first frame for live outputs. :meth:`close` sends
    EOS and waits for it, so muxers write their index.
    """

    def __init__(self, description: str, *, fps: float, live: bool, name: str) -> None:
        self.description = description
        self.name = name
        self._fps = fps
        self._live = live
        self._pipeline: Any = None
        self._src: Any = None
        self._count = 0
        self._t0: float | None = None
        self._last_pts = -1

    def open(self) -> GstSink:
        Gst = gst()
        self._pipeline = _launch(self.description)
        self._src = self._pipeline.get_by_name(APPSRC)
        if self._pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            err = _bus_error(self._pipeline) or "state change failed"
            self._pipeline.set_state(Gst.State.NULL)
            raise SinkError(f"cannot open output {self.name}: {err}")
        return self

    def write(self, rgb: np.ndarray, t: float | None = None) -> None:
        """Push one frame; ``t``: its time in seconds from the first (files only), else ``index / fps``."""
        import time

        Gst = gst()
        err = _bus_error(self._pipeline)
        if err is not None:
            raise SinkError(f"output {self.name} failed: {err}")
        h, w = rgb.shape[:2]
        if h % 2 or w % 2 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise SinkError(f"output {self.name} takes RGB frames of even height and width, not {rgb.shape}")
        # the pipeline's appsrc takes I420 (gstpipes.appsrc); BT.601 limited range, as videoconvert made it
        buf = Gst.Buffer.new_wrapped(i420_bytes(rgb))
        dur = int(Gst.SECOND / self._fps)
        if self._live:
            now = time.monotonic()
            self._t0 = now if self._t0 is None else self._t0
            buf.pts = int((now - self._t0) * Gst.SECOND)
        elif t is not None:
            buf.pts = max(int(t * Gst.SECOND), self._last_pts + 1)  # strictly increasing for the muxer
        else:
            buf.pts = self._count * dur
        self._last_pts = buf.pts
        buf.duration = dur
        self._count += 1
        ret = self._src.emit("push-buffer", buf)
        if ret not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
            raise SinkError(f"output {self.name} refused a frame ({ret.value_nick})")

    def close(self, timeout_s: float = 30.0) -> str | None:
        """Send EOS and wait for the file or stream to finish; the error that stopped it, else None."""
        if self._pipeline is None:
            return None
        Gst = gst()
        error = None
        try:
            self._src.emit("end-of-stream")
            msg = self._pipeline.get_bus().timed_pop_filtered(
                int(timeout_s * Gst.SECOND), Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if msg is not None and msg.type == Gst.MessageType.ERROR:
                err, _ = msg.parse_error()
                error = err.message
                log.debug("output %s: %s while finishing", self.name, err.message)
        finally:
            self._pipeline.set_state(Gst.State.NULL)
            self._pipeline = None
        return error
