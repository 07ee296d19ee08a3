"""Frame sources: GStreamer appsink, OpenCV VideoCapture, image folders, a test pattern.

Every source delivers RGB uint8 ``(H, W, 3)`` frames::

    src = open_source("file://clip.mp4")        # opened: first frame already decoded
    while (item := src.read()) is not None:     # (rgb, pts_seconds | None)
        ...
    src.close()

``read`` returns None at the end of a file or folder. Live sources raise
:class:`NoFrameYet` when no frame arrived within a short poll (so the caller
can check its stop flag) and are wrapped in :class:`ReconnectingSource`, which
reopens them with exponential backoff when they disconnect or stall.

After each ``read``, ``last_age_s`` says how old the frame already was when
it was returned (a live GStreamer buffer's timestamp against the pipeline
clock; the lateness of a file frame played live), or None when the source
cannot tell (the frame counts as captured when it was read). ``dropped``
counts frames the source itself skipped because a newer one was due
(:class:`PacedSource`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
import typing
from typing import Any, Protocol

import numpy as np

from enet._lazy import require
from enet.deploy import gst as gstmod
from enet.deploy.errors import NoFrameYet, SourceDisconnected, SourceError
from enet.deploy.gstpipes import CaptureOptions, source_pipeline
from enet.deploy.uri import MediaUri, parse_input, parse_size
from enet.errors import EnetError, MissingDependencyError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CAPTURE_KINDS = ("auto", "gst", "opencv")

Item = typing.Tuple[np.ndarray, typing.Optional[float]]  # typing.: evaluated at run time on Python 3.8


class Source(Protocol):
    name: str
    live: bool
    fps: float | None
    frame_count: int | None
    last_age_s: float | None
    dropped: int

    def open(self) -> Source: ...
    def read(self) -> Item | None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- folder


class FolderSource:
    """Images of a folder in name order (e.g. a CamVid sequence), as a file-like source."""

    def __init__(self, folder: str | os.PathLike[str], *, fps: float = 30.0) -> None:
        self.folder = Path(folder)
        self.name = str(folder)
        self.live = False
        self.fps: float | None = fps
        self.frame_count: int | None = None
        self.last_age_s: float | None = None
        self.dropped = 0
        self._files: list[Path] = []
        self._i = 0
        self._first: Item | None = None

    def open(self) -> FolderSource:
        if not self.folder.is_dir():
            raise SourceError(f"cannot open folder {self.folder}: it does not exist")
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(
                f"folder {self.folder} holds no images; expected {', '.join(IMAGE_SUFFIXES)} files"
            )
        self.frame_count = len(self._files)
        self._i = 0
        self._first = None
        self._first = self.read()  # a broken first image fails here, before the model and outputs open
        return self

    def read(self) -> Item | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._i >= len(self._files):
            return None
        from enet.data import read_image

        path = self._files[self._i]
        # the dataset loaders' reader: grey, alpha, 16-bit and huge images are handled alike everywhere
        try:
            rgb = read_image(path, reduce_large=True)
        except EnetError as exc:
            raise SourceError(f"cannot decode image {path} ({exc}); expected a readable PNG/JPEG") from None
        pts = self._i / self.fps if self.fps else None
        self._i += 1
        return rgb, pts

    def close(self) -> None:
        self._files = []


# --------------------------------------------------------------------------- test pattern


class PatternSource:
    """A synthetic moving pattern (``test://?size=96x64&fps=30&frames=300&live=0``).

    For tests and soak runs: no files, no camera, deterministic frames. A live
    pattern is paced at ``fps``; a file-like one is delivered as fast as read.
    """

    def __init__(self, *, size: tuple[int, int] = (64, 96), fps: float = 30.0,
                 frames: int | None = None, live: bool = False) -> None:
        self.name = f"test pattern {size[1]}x{size[0]}"
        self.live = live
        self.fps: float | None = fps
        self.frame_count = frames
        self.last_age_s: float | None = None
        self.dropped = 0
        self._size = size
        self._i = 0
        self._base: np.ndarray | None = None
        self._next_t = 0.0

    @classmethod
    def from_uri(cls, uri: MediaUri) -> PatternSource:
        opts = uri.options
        try:
            size = parse_size(opts.get("size", "96x64"))
            fps = float(opts.get("fps", "30"))
            frames = int(opts["frames"]) if "frames" in opts else None
        except ValueError:
            raise SourceError(f"bad test:// options in {uri.text!r}; e.g. test://?size=96x64&fps=30&frames=100") from None
        return cls(size=size, fps=fps, frames=frames, live=uri.live)

    def open(self) -> PatternSource:
        h, w = self._size
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(w + h - 2, 1)], -1)
        self._base = base.astype(np.uint8)
        self._i = 0
        self._next_t = time.monotonic()
        return self

    def read(self) -> Item | None:
        if self._base is None:
            raise SourceError("test pattern is not open")
        if self.frame_count is not None and self._i >= self.frame_count:
            return None
        if self.live and self.fps:
            delay = self._next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(self._next_t + 1.0 / self.fps, time.monotonic() - 1.0)
        h, w = self._size
        frame = np.roll(self._base, self._i % w, axis=1)
        # a bright box moving down: something for the model and the eye to track
        y0 = (self._i * 2) % max(h - h // 4, 1)
        frame[y0:y0 + h // 4, w // 3:w // 3 + w // 4] = (250, 250, 40)
        pts = self._i / self.fps if self.fps else None
        self._i += 1
        return frame, pts

    def close(self) -> None:
        self._base = None


# --------------------------------------------------------------------------- OpenCV


class OpenCVSource:
    """``cv2.VideoCapture`` over a file, a V4L2 device, an RTSP URL or a GStreamer string.

    Args:
        target: what VideoCapture opens.
        api: a ``cv2.CAP_*`` backend constant name (``"CAP_V4L2"``...) or None.
        live: a live source raises :class:`SourceDisconnected` when a read fails.
    """

    def __init__(self, target: str | int, *, api: str | None = None, live: bool, name: str) -> None:
        self.target = target
        self.api = api
        self.live = live
        self.name = name
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.last_age_s: float | None = None
        self.dropped = 0
        self._cap: Any = None
        self._first: Item | None = None
        self._i = 0

    def open(self) -> OpenCVSource:
        cv2 = require("cv2")
        cap = cv2.VideoCapture(self.target, getattr(cv2, self.api)) if self.api else cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.name}: OpenCV could not open it")
        ok, bgr = cap.read()
        if not ok or bgr is None:
            cap.release()
            raise SourceError(f"cannot decode {self.name}: no frame could be read; expected a video OpenCV can decode")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 and not self.live else None
        self._i = 0
        self._first = (self._to_rgb(bgr), 0.0 if self.fps else None)
        return self

    def _to_rgb(self, frame: np.ndarray) -> np.ndarray:
        from enet.transforms import to_rgb8

        return to_rgb8(frame, order="bgr", what=f"a frame of {self.name}")

    def read(self) -> Item | None:
        if self._first is not None:
            first, self._first = self._first, None
            self._i = 1
            return first
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self.live:
                raise SourceDisconnected(f"{self.name}: read failed")
            if self.frame_count and self._i < self.frame_count:
                log.warning("%s ended early: %d of the %d frames its header announces (truncated file?)",
                            self.name, self._i, self.frame_count)
                self.frame_count = None  # warn once
            return None
        pts = self._i / self.fps if self.fps else None
        self._i += 1
        return self._to_rgb(bgr), pts

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def opencv_has_gstreamer() -> bool:
    """True when this OpenCV was built with GStreamer (JetPack's is; pip wheels are not)."""
    try:
        cv2 = require("cv2")
    except MissingDependencyError:
        return False
    for line in cv2.getBuildInformation().splitlines():
        if "GStreamer:" in line:
            return "YES" in line
    return False


# --------------------------------------------------------------------------- live playback


class PacedSource:
    """A file, folder or test pattern played as a camera would deliver it (``--live``).

    Frame ``k`` is released at ``t0 + k / rate`` (``t0``: the first read). A
    reader that comes back late gets the newest frame that is due; the frames
    it missed are skipped and counted in ``dropped``, as a camera's
    ``appsink drop=true`` drops them. ``last_age_s`` is how late the frame is
    returned after its release time (the frame counts as captured then).

    Args:
        inner: an opened file-like source.
        rate: frames per second (the file's own, or ``--input-rate``).
        clock: monotonic seconds (tests pass a fake one).
        sleep: waits the given seconds (default: on ``stop``, so a stop ends the wait).
        stop: set to stop waiting.
    """

    def __init__(self, inner: Source, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] | None = None, stop: threading.Event | None = None) -> None:
        if not rate or rate <= 0:
            raise SourceError(f"cannot play {inner.name} live: its frame rate is unknown; pass --input-rate FPS")
        self._inner = inner
        self.name = f"{inner.name} (live at {rate:g} fps)"
        self.live = True
        self.fps: float | None = rate
        self.frame_count = inner.frame_count
        self.last_age_s: float | None = None
        self.dropped = 0
        self._clock = clock
        self._stop = stop or threading.Event()
        self._sleep = sleep or self._stop.wait
        self._t0: float | None = None
        self._next = 0

    def open(self) -> PacedSource:
        return self

    def read(self) -> Item | None:
        rate = self.fps or 1.0
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        due_now = int((now - self._t0) * rate)  # the newest frame whose release time has passed
        item = self._inner.read()               # decoded before its release time when the reader is early
        if item is None:
            return None
        k, self._next = self._next, self._next + 1
        while self._next <= due_now:            # newer ones released while the reader was busy: a camera
            newer = self._inner.read()          # delivers the newest and drops the rest
            if newer is None:
                break
            item, k, self._next = newer, self._next, self._next + 1
            self.dropped += 1
        due = self._t0 + k / rate
        delay = due - self._clock()
        if delay > 0:
            self._sleep(delay)
        self.last_age_s = max(0.0, self._clock() - due)
        return item[0], k / rate

    def close(self) -> None:
        self._inner.close()


# --------------------------------------------------------------------------- reconnect


def backoff_delays(initial: float = 0.5, factor: float = 2.0, maximum: float = 10.0) -> Iterator[float]:
    """0.5, 1, 2, 4, 8, 10, 10, ... seconds."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


#: One policy for every live input (RTSP, cameras, gst://): retry with backoff
#: for this long, at start and after a drop, then fail (``--reconnect-timeout``).
DEFAULT_RECONNECT_TIMEOUT_S = 30.0


def retry_open(opener: Callable[[], Source], name: str, *, stop: threading.Event, give_up_s: float,
               delays: Callable[[], Iterator[float]] = backoff_delays, first_error: str | None = None) -> Source | None:
    """Call ``opener`` with backoff until it works; None when ``stop`` is set.

    Raises:
        SourceError: still failing after ``give_up_s`` seconds (0: never gives up).
    """
    start = time.monotonic()
    last = first_error
    for delay in delays():
        if give_up_s and time.monotonic() - start + delay > give_up_s:
            raise SourceError(f"cannot reach {name} for {give_up_s:g} s ({last}); gave up "
                              "(--reconnect-timeout sets how long to retry, 0 retries forever)")
        if stop.wait(delay):
            return None
        try:
            return opener()
        except SourceError as exc:
            last = str(exc)
            log.warning("reconnect to %s failed (%s); retrying", name, exc)
    return None  # pragma: no cover - the schedule is endless


class ReconnectingSource:
    """A live source that is reopened with exponential backoff when it drops.

    Args:
        opener: builds and opens a fresh source (raises SourceError on failure).
        first: an already opened source (so a wrong URI fails before this wraps it).
        stop: set to give up waiting; :meth:`read` then returns None.
        stall_timeout_s: no frame for this long counts as a disconnect.
        delays: backoff schedule (default :func:`backoff_delays`).
        give_up_s: stop retrying (SourceError) once reconnecting has failed for this long; 0 retries forever.
    """

    def __init__(self, opener: Callable[[], Source], first: Source, *, stop: threading.Event,
                 stall_timeout_s: float = 5.0, delays: Callable[[], Iterator[float]] = backoff_delays,
                 give_up_s: float = DEFAULT_RECONNECT_TIMEOUT_S) -> None:
        self._give_up = give_up_s
        self._opener = opener
        self._src: Source | None = first
        self._stop = stop
        self._stall = stall_timeout_s
        self._delays = delays
        self.name = first.name
        self.live = True
        self.fps = first.fps
        self.frame_count = None
        self.reconnects = 0
        self.last_age_s: float | None = None
        self.dropped = 0
        self._last_frame = time.monotonic()

    def open(self) -> ReconnectingSource:
        return self

    def _reopen(self) -> bool:
        self._src = retry_open(self._opener, self.name, stop=self._stop, give_up_s=self._give_up,
                               delays=self._delays)
        if self._src is not None:
            self.reconnects += 1
            self._last_frame = time.monotonic()
            log.warning("reconnected to %s (reconnect %d)", self.name, self.reconnects)
            return True
        return False

    def _drop(self, why: str) -> None:
        log.warning("%s disconnected (%s); reopening with backoff", self.name, why)
        if self._src is not None:
            self._src.close()
        self._src = None

    def read(self) -> Item | None:
        while not self._stop.is_set():
            if self._src is None and not self._reopen():
                return None
            assert self._src is not None
            try:
                item = self._src.read()
            except NoFrameYet:
                if time.monotonic() - self._last_frame > self._stall:
                    self._drop(f"no frame for {self._stall:g} s")
                    continue
                raise
            except SourceDisconnected as exc:
                self._drop(str(exc))
                continue
            if item is None:
                self._drop("end of stream")
                continue
            self._last_frame = time.monotonic()
            self.last_age_s = self._src.last_age_s
            return item
        return None

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None


# --------------------------------------------------------------------------- open_source


def _opencv_for(uri: MediaUri, opts: CaptureOptions, pipeline: str | None) -> OpenCVSource:
    if uri.kind == "file":
        return OpenCVSource(uri.location, live=False, name=f"file {uri.location}")
    if uri.kind == "v4l2":
        return OpenCVSource(uri.location, api="CAP_V4L2", live=True, name=uri.text)
    if uri.kind == "rtsp":
        return OpenCVSource(uri.location, api="CAP_FFMPEG", live=True, name=uri.text)
    # csi:// and gst:// need GStreamer: OpenCV can run them when built with it.
    if pipeline is None or not opencv_has_gstreamer():
        raise MissingDependencyError(
            f"{uri.text} needs GStreamer: apt-get install python3-gi gir1.2-gstreamer-1.0 "
            "(or an OpenCV built with GStreamer, as JetPack's)"
        )
    return OpenCVSource(pipeline, api="CAP_GSTREAMER", live=True, name=uri.text)


def make_opener(uri: MediaUri, *, capture: str = "auto", opts: CaptureOptions | None = None) -> Callable[[], Source]:
    """A function that opens ``uri`` (folder, test, or through GStreamer/OpenCV).

    ``capture="auto"`` uses GStreamer when PyGObject is present and falls back
    to OpenCV when GStreamer cannot open a file (e.g. no decoder plugin).
    """
    opts = opts or CaptureOptions()
    if capture not in CAPTURE_KINDS:
        raise EnetError(f"unknown capture {capture!r}; choose one of {', '.join(CAPTURE_KINDS)}")
    if uri.kind == "folder":
        return lambda: FolderSource(uri.location, fps=opts.rate or 30.0).open()
    if uri.kind == "test":
        return lambda: PatternSource.from_uri(uri).open()
    if uri.kind == "file" and not Path(uri.location).is_file():
        raise SourceError(f"cannot open file {uri.location}: it does not exist")
    use_gst = capture == "gst" or (capture == "auto" and gstmod.available())
    if capture == "gst" and not gstmod.available():
        gstmod.gst()  # raises MissingDependencyError with the fix
    elements = gstmod.installed_elements() if use_gst else frozenset()
    pipeline = source_pipeline(uri, opts, elements)

    def open_gst() -> Source:
        assert pipeline is not None
        return gstmod.GstSource(pipeline, live=uri.live, name=uri.text).open()

    def open_cv() -> Source:
        return _opencv_for(uri, opts, pipeline).open()

    if not use_gst:
        return open_cv
    if capture == "gst" or uri.kind in ("csi", "gst"):
        return open_gst

    def open_auto() -> Source:
        try:
            return open_gst()
        except SourceError as gst_exc:
            try:
                src = open_cv()
            except SourceError:
                raise gst_exc from None
            log.info("GStreamer could not open %s (%s); using OpenCV", uri.text, gst_exc)
            return src

    return open_auto


def open_source(text: str, *, capture: str = "auto", opts: CaptureOptions | None = None,
                stop: threading.Event | None = None, stall_timeout_s: float = 5.0,
                reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S, play_live: bool = False) -> Source:
    """Parse and open an input; live inputs come wrapped in :class:`ReconnectingSource`.

    A network stream (``rtsp://``) that does not answer at start is retried
    like one that drops: with backoff, for ``reconnect_timeout_s`` (0: forever).
    ``play_live`` plays a file, folder or test pattern as a camera would
    (:class:`PacedSource`, at ``opts.rate`` or the file's own rate); a live
    input is live already. A ``test://`` pattern ends after its ``frames=``,
    live or not (it is never reopened).

    Raises:
        SourceError: the input cannot be opened or its first frame decoded.
        UriError: an unsupported URI.
        MissingDependencyError: the input needs GStreamer or OpenCV.
    """
    uri = parse_input(text)
    opener = make_opener(uri, capture=capture, opts=opts)
    stop = stop or threading.Event()
    try:
        first = opener()
    except SourceError as exc:
        if uri.kind != "rtsp":
            raise
        log.warning("cannot reach %s (%s); retrying for %s", uri.text, exc,
                    f"{reconnect_timeout_s:g} s" if reconnect_timeout_s else "ever")
        got = retry_open(opener, uri.text, stop=stop, give_up_s=reconnect_timeout_s, first_error=str(exc))
        if got is None:
            raise SourceError(f"stopped while waiting for {uri.text}") from None
        first = got
    opts = opts or CaptureOptions()
    if not first.live:
        if play_live:
            try:
                return PacedSource(first, opts.rate or first.fps or 0.0, stop=stop)
            except SourceError:
                first.close()
                raise
        return first
    if uri.kind == "test":
        return first
    return ReconnectingSource(opener, first, stop=stop, stall_timeout_s=stall_timeout_s,
                              give_up_s=reconnect_timeout_s)
