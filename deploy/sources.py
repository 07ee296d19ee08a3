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

import contextlib
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

    def __init__(self, folder: str | os.PathLike[str], *, fps: float = 30.0, skip_bad: bool = False) -> None:
        self.folder = Path(folder)
        #: an image that cannot be decoded is skipped (warning naming it, counted in ``dropped``) instead of
        #: failing the read; ``enet-run`` skips (a recording with one bad frame is still a recording)
        self.skip_bad = skip_bad
        self.name = str(folder)
        self.live = False
        self.fps: float | None = fps
        self.frame_count: int | None = None
        self.last_age_s: float | None = None
        self.dropped = 0
        self._files: list[Path] = []
        self._i = 0
        self._first: Item | None = None
        self._held: list[str] | None = None  # while opening: skip warnings wait for a frame that reads

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
        self.dropped = 0
        self._held = []
        try:
            self._first = self.read()  # nothing readable fails here, before the model and outputs open
        finally:
            held, self._held = self._held, None
        if self._first is None:  # one line, not a warning per frame first; it says why the first one failed
            why = held[0].replace("skipping frame ", "", 1).replace("; counted as dropped", "") if held else ""
            raise SourceError(f"none of the {len(self._files)} images in {self.folder} could be read"
                              + (f" ({why})" if why else "") + "; expected readable PNG/JPEG files")
        for line in held:
            log.warning("%s", line)
        return self

    def read(self) -> Item | None:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        from enet.data import read_image

        while self._i < len(self._files):
            path = self._files[self._i]
            pts = self._i / self.fps if self.fps else None
            self._i += 1
            # the dataset loaders' reader: grey, alpha, 16-bit and huge images are handled alike everywhere
            try:
                return read_image(path, reduce_large=True), pts
            except EnetError as exc:
                if not self.skip_bad:
                    raise SourceError(f"cannot decode image {path} ({exc}); expected a readable PNG/JPEG") from None
                # a recording with one bad frame is still a recording: skip it, count it as dropped
                self.dropped += 1
                line = f"skipping frame {path}: cannot decode it ({' '.join(str(exc).split())}); counted as dropped"
                if self._held is not None:
                    self._held.append(line)
                else:
                    log.warning("%s", line)
        return None

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
        open_timeout_s: live sources: how long opening may take (FFmpeg's
            ``CAP_PROP_OPEN_TIMEOUT_MSEC``; the open runs in a helper thread
            that is abandoned after this long for backends without the property).
        read_timeout_s: live sources: FFmpeg's ``CAP_PROP_READ_TIMEOUT_MSEC``.
            Every live read runs in a reader thread, so :meth:`read` returns
            (:class:`NoFrameYet`) within a poll interval whatever the backend
            does; a read stuck inside the backend is abandoned, not waited for.
    """

    def __init__(self, target: str | int, *, api: str | None = None, live: bool, name: str,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 5.0) -> None:
        self.target = target
        self.api = api
        self.live = live
        self.name = name
        self.fps: float | None = None
        self.frame_count: int | None = None
        self.last_age_s: float | None = None
        self.dropped = 0
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._cap: Any = None
        self._first: Item | None = None
        self._i = 0
        self._reader: _ThreadedReader | None = None

    def _capture(self) -> Any:
        cv2 = require("cv2")
        if not self.api:
            return cv2.VideoCapture(self.target)
        api = getattr(cv2, self.api)
        if self.live and self.api == "CAP_FFMPEG":
            # FFmpeg's own open timeout a little inside ours, so it normally returns by itself (a thread
            # abandoned in FFmpeg's open aborted the process at exit: "terminate called ...")
            open_ms = max(200, int(self._open_timeout_s * 1000) - 500)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._read_timeout_s * 1000)]
            return cv2.VideoCapture(self.target, api, params)
        return cv2.VideoCapture(self.target, api)

    def open(self) -> OpenCVSource:
        cv2 = require("cv2")
        if self.live:
            # opening and the first read in a helper thread: a backend without open/read timeouts
            # (a hung camera) cannot hold this thread longer than the open timeout
            got = _bounded(self._open_first, self._open_timeout_s)
            if got is None:
                raise SourceError(f"cannot open {self.name}: no frame within {self._open_timeout_s:.1f} s")
            cap, bgr = got
        else:
            cap, bgr = self._open_first()
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 and not self.live else None
        self._i = 0
        self._first = (self._to_rgb(bgr), 0.0 if self.fps else None)
        if self.live:
            self._reader = _ThreadedReader(cap, self.name)
        return self

    def _open_first(self) -> tuple[Any, np.ndarray]:
        cap = self._capture()
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.name}: OpenCV could not open it")
        ok, bgr = cap.read()
        if not ok or bgr is None:
            cap.release()
            raise SourceError(f"cannot decode {self.name}: no frame could be read; expected a video OpenCV can decode")
        return cap, bgr

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
        if self._reader is not None:
            ok, bgr = self._reader.read()  # NoFrameYet after a poll interval without a frame
        else:
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
        if self._reader is not None:
            stuck = self._reader.stop()
            self._reader = None
            if stuck:  # releasing a capture while a read runs in it can crash the decoder
                log.warning("%s: a read is stuck in OpenCV; abandoning it", self.name)
                self._cap = None
                return
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _bounded(fn: Callable[[], Any], timeout_s: float) -> Any:
    """``fn()`` in a daemon thread; its result, or None when it did not return within ``timeout_s``
    (the thread is abandoned; what it opens late is released). Its exception is re-raised here."""
    box: dict[str, Any] = {}
    done = threading.Event()
    abandoned = threading.Event()

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
        done.set()
        if abandoned.is_set() and "value" in box:
            with contextlib.suppress(Exception):
                box["value"][0].release()

    threading.Thread(target=body, name="enet-open", daemon=True).start()
    if not done.wait(timeout_s):
        abandoned.set()
        return None
    if "error" in box:
        raise box["error"]
    return box["value"]


class _ThreadedReader:
    """Reads a live ``VideoCapture`` in a thread of its own, newest frame kept (a watchdog for reads
    that block inside a backend: the caller polls and can give up; the stuck thread is abandoned)."""

    def __init__(self, cap: Any, name: str) -> None:
        self._cap = cap
        self._cv = threading.Condition()
        self._item: tuple[bool, Any] | None = None
        self._stop = False
        self._in_read = False
        self._thread = threading.Thread(target=self._run, name=f"enet-read {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cv:
                if self._stop:
                    return
                self._in_read = True
            try:
                ok, bgr = self._cap.read()
            except Exception:  # noqa: BLE001 - a backend error is a failed read
                ok, bgr = False, None
            with self._cv:
                self._in_read = False
                self._item = (ok, bgr)
                self._cv.notify_all()
                if not ok or self._stop:
                    return

    def read(self, poll_s: float = 0.25) -> tuple[bool, Any]:
        with self._cv:
            if self._item is None and not self._cv.wait_for(lambda: self._item is not None, poll_s):
                raise NoFrameYet
            item, self._item = self._item, None
            assert item is not None
            return item

    def stop(self) -> bool:
        """Ask the thread to end; True when it is stuck in a read (then it is abandoned)."""
        with self._cv:
            self._stop = True
        self._thread.join(timeout=0.5)
        return self._thread.is_alive()


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
#: A live input that delivers no frame for this long is declared stalled and reopened (``--stall-timeout``).
DEFAULT_STALL_TIMEOUT_S = 2.0
#: Longest a single open attempt may wait for a camera's first frame.
OPEN_TIMEOUT_S = 10.0
#: Shortest time an open attempt is given, even when the reconnect deadline is nearer.
_MIN_ATTEMPT_S = 0.5


def _call_opener(opener: Callable[..., Source], timeout_s: float | None) -> Source:
    """``opener(timeout_s=...)`` for the openers of :func:`make_opener`, ``opener()`` for others."""
    if timeout_s is not None and getattr(opener, "takes_timeout", False):
        return opener(timeout_s=timeout_s)
    return opener()


def retry_open(opener: Callable[..., Source], name: str, *, stop: threading.Event, give_up_s: float,
               delays: Callable[[], Iterator[float]] = backoff_delays, first_error: str | None = None,
               since: float | None = None, flag_s: float | None = None) -> Source | None:
    """Call ``opener`` with backoff until it works; None when ``stop`` is set.

    Each attempt is bounded by what is left of ``give_up_s`` (at least
    :data:`_MIN_ATTEMPT_S`), so the whole retry ends at most that much after it.

    Args:
        since: ``time.monotonic()`` of the last frame (default: now); the message counts from it.
        flag_s: the ``--reconnect-timeout`` to name in the message (default ``give_up_s``).

    Raises:
        SourceError: still failing after ``give_up_s`` seconds (0: never gives up); the message
            states the real time since ``since``.
    """
    start = time.monotonic()
    since = start if since is None else since
    deadline = start + give_up_s if give_up_s else None
    last = first_error

    def gave_up() -> SourceError:
        now = time.monotonic()
        what = "no frame from" if since < start else "cannot reach"
        return SourceError(f"{what} {name} for {now - since:.1f} s ({last}); gave up after retrying for "
                           f"{now - start:.1f} s (--reconnect-timeout {give_up_s if flag_s is None else flag_s:g}; "
                           "0 retries forever)")

    for delay in delays():
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise gave_up()
            # a wait leaves the attempt after it some time; the last ones end at the deadline at the latest
            delay = min(delay, left - _MIN_ATTEMPT_S) if left > 2 * _MIN_ATTEMPT_S else min(delay, left)
        if stop.wait(max(delay, 0.0)):
            return None
        if deadline is not None and time.monotonic() >= deadline:
            raise gave_up()
        timeout = None
        if deadline is not None:
            timeout = min(OPEN_TIMEOUT_S, max(_MIN_ATTEMPT_S, deadline - time.monotonic()))
        try:
            return _call_opener(opener, timeout)
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
        stall_timeout_s: no frame for this long counts as a disconnect (``--stall-timeout``).
        delays: backoff schedule (default :func:`backoff_delays`).
        give_up_s: stop retrying (SourceError) once reconnecting has failed for this long; 0 retries forever.

    Attributes:
        state: ``"live"`` (frames flow), ``"reconnecting"`` (dropped or stalled, being reopened)
            or ``"ended"`` (given up, or stopped).
        last_frame_at: ``time.monotonic()`` of the last frame.
    """

    def __init__(self, opener: Callable[..., Source], first: Source, *, stop: threading.Event,
                 stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
                 delays: Callable[[], Iterator[float]] = backoff_delays,
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
        self.state = "live"
        self.last_frame_at = time.monotonic()

    def open(self) -> ReconnectingSource:
        return self

    def _reopen(self) -> bool:
        try:
            self._src = retry_open(self._opener, self.name, stop=self._stop, give_up_s=self._give_up,
                                   delays=self._delays, since=self.last_frame_at)
        except SourceError:
            self.state = "ended"
            raise
        if self._src is not None:
            self.reconnects += 1
            self.last_frame_at = time.monotonic()
            self.state = "live"
            log.warning("reconnected to %s (reconnect %d)", self.name, self.reconnects)
            return True
        self.state = "ended"
        return False

    def _drop(self, why: str) -> None:
        self.state = "reconnecting"
        log.warning("%s disconnected (%s, %.1f s after its last frame); reopening with backoff", self.name, why,
                    time.monotonic() - self.last_frame_at)
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
                if time.monotonic() - self.last_frame_at > self._stall:
                    self._drop(f"no frame for {self._stall:g} s")
                    continue
                raise
            except SourceDisconnected as exc:
                self._drop(str(exc))
                continue
            if item is None:
                self._drop("end of stream")
                continue
            self.last_frame_at = time.monotonic()
            self.last_age_s = self._src.last_age_s
            return item
        self.state = "ended"
        return None

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None


# --------------------------------------------------------------------------- open_source


def _opencv_for(uri: MediaUri, opts: CaptureOptions, pipeline: str | None,
                timeout_s: float = OPEN_TIMEOUT_S, read_timeout_s: float = DEFAULT_STALL_TIMEOUT_S) -> OpenCVSource:
    if uri.kind == "file":
        return OpenCVSource(uri.location, live=False, name=f"file {uri.location}")
    t = {"open_timeout_s": timeout_s, "read_timeout_s": read_timeout_s}
    if uri.kind == "v4l2":
        return OpenCVSource(uri.location, api="CAP_V4L2", live=True, name=uri.text, **t)
    if uri.kind == "rtsp":
        return OpenCVSource(uri.location, api="CAP_FFMPEG", live=True, name=uri.text, **t)
    # csi:// and gst:// need GStreamer: OpenCV can run them when built with it.
    if pipeline is None or not opencv_has_gstreamer():
        raise MissingDependencyError(
            f"{uri.text} needs GStreamer: apt-get install python3-gi gir1.2-gstreamer-1.0 "
            "(or an OpenCV built with GStreamer, as JetPack's)"
        )
    return OpenCVSource(pipeline, api="CAP_GSTREAMER", live=True, name=uri.text, **t)


def make_opener(uri: MediaUri, *, capture: str = "auto", opts: CaptureOptions | None = None,
                stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S) -> Callable[..., Source]:
    """A function that opens ``uri`` (folder, test, or through GStreamer/OpenCV).

    ``capture="auto"`` uses GStreamer when PyGObject is present and falls back
    to OpenCV when GStreamer cannot open a file (e.g. no decoder plugin). The
    opener takes ``timeout_s``: how long a live input may take to deliver its
    first frame (default :data:`OPEN_TIMEOUT_S`); reads of a live input never
    block longer than a poll interval (GStreamer: ``try-pull-sample``; OpenCV:
    a reader thread, plus FFmpeg's read timeout of ``stall_timeout_s``).
    """
    opts = opts or CaptureOptions()
    if capture not in CAPTURE_KINDS:
        raise EnetError(f"unknown capture {capture!r}; choose one of {', '.join(CAPTURE_KINDS)}")
    if uri.kind == "folder":
        return lambda: FolderSource(uri.location, fps=opts.rate or 30.0, skip_bad=True).open()
    if uri.kind == "test":
        return lambda: PatternSource.from_uri(uri).open()
    if uri.kind == "file" and not Path(uri.location).is_file():
        from enet.deploy.uri import camera_device_hint

        hint = camera_device_hint(uri.location)
        if hint:
            raise SourceError(f"cannot open {uri.location}: {hint}")
        raise SourceError(f"cannot open file {uri.location}: it does not exist")
    use_gst = capture == "gst" or (capture == "auto" and gstmod.available())
    if capture == "gst" and not gstmod.available():
        gstmod.gst()  # raises MissingDependencyError with the fix
    elements = gstmod.installed_elements() if use_gst else frozenset()
    pipeline = source_pipeline(uri, opts, elements)

    def open_gst(timeout_s: float = OPEN_TIMEOUT_S) -> Source:
        assert pipeline is not None
        return gstmod.GstSource(pipeline, live=uri.live, name=uri.text, open_timeout_s=timeout_s).open()

    def open_cv(timeout_s: float = OPEN_TIMEOUT_S) -> Source:
        return _opencv_for(uri, opts, pipeline, timeout_s, stall_timeout_s).open()

    def open_auto(timeout_s: float = OPEN_TIMEOUT_S) -> Source:
        t0 = time.monotonic()
        try:
            return open_gst(timeout_s)
        except SourceError as gst_exc:
            left = timeout_s - (time.monotonic() - t0)  # both tries together stay within timeout_s
            if uri.live and left < _MIN_ATTEMPT_S:
                raise
            try:
                src = open_cv(max(left, _MIN_ATTEMPT_S))
            except SourceError:
                raise gst_exc from None
            log.info("GStreamer could not open %s (%s); using OpenCV", uri.text, gst_exc)
            return src

    if not use_gst:
        chosen = open_cv
    elif capture == "gst" or uri.kind in ("csi", "gst"):
        chosen = open_gst
    else:
        chosen = open_auto
    chosen.takes_timeout = True  # type: ignore[attr-defined]
    return chosen


def open_source(text: str, *, capture: str = "auto", opts: CaptureOptions | None = None,
                stop: threading.Event | None = None, stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
                reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S, play_live: bool = False) -> Source:
    """Parse and open an input; live inputs come wrapped in :class:`ReconnectingSource`.

    A network stream (``rtsp://``) that does not answer at start is retried
    like one that drops: with backoff, for ``reconnect_timeout_s`` (0: forever),
    the first attempt included (it waits at most that long for a first frame).
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
    opener = make_opener(uri, capture=capture, opts=opts, stall_timeout_s=stall_timeout_s)
    stop = stop or threading.Event()
    t0 = time.monotonic()
    first_timeout = OPEN_TIMEOUT_S
    if uri.kind == "rtsp" and reconnect_timeout_s:
        first_timeout = min(OPEN_TIMEOUT_S, max(_MIN_ATTEMPT_S, reconnect_timeout_s))
    try:
        first = _call_opener(opener, first_timeout)
    except SourceError as exc:
        if uri.kind != "rtsp":
            raise
        left = reconnect_timeout_s - (time.monotonic() - t0) if reconnect_timeout_s else 0.0
        log.warning("cannot reach %s (%s); retrying for %s", uri.text, exc,
                    f"{max(left, 0.0):.1f} s more" if reconnect_timeout_s else "ever")
        if reconnect_timeout_s and left <= 0:
            raise SourceError(f"cannot reach {uri.text} for {time.monotonic() - t0:.1f} s ({exc}); gave up "
                              f"(--reconnect-timeout {reconnect_timeout_s:g}; 0 retries forever)") from None
        got = retry_open(opener, uri.text, stop=stop, give_up_s=max(left, 0.0) if reconnect_timeout_s else 0.0,
                         first_error=str(exc), since=t0, flag_s=reconnect_timeout_s)
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
