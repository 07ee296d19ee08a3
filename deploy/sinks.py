"""Outputs: a video file, a window, an RTP/RTSP stream, JSON-lines stats, a contact sheet.

Sinks take RGB uint8 frames of one size and open lazily on the first frame
(its size fixes theirs). On a live run each frame also comes with ``t``, its
capture time in seconds since the first frame's, so a recording plays at
real speed: a GStreamer-written file gets those times as its timestamps (a
variable frame rate), an OpenCV-written one (constant rate) holds a frame
for as many frame periods as passed until the next (dropped frames become
held frames). ``t`` is None for a file processed as fast as possible. ``close`` finalises: a video file is written under a
temporary name (``.<stem>.partial<suffix>``) and renamed into place only once
its container is complete, so a crash never leaves a truncated file under the
final name, and Ctrl-C/SIGTERM still yields a playable video.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from enet._lazy import require
from enet.deploy import gst as gstmod
from enet.deploy import gstpipes
from enet.deploy.errors import SinkError
from enet.deploy.uri import MediaUri
from enet.fileio import make_parents, remove_empty

log = logging.getLogger(__name__)

WRITERS = ("auto", "gst", "opencv")
_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class Sink(Protocol):
    name: str

    def write(self, rgb: np.ndarray, t: float | None = None) -> None: ...
    def close(self) -> None: ...


def partial_path(path: Path) -> Path:
    """Where a video is written until it is finalised (same folder, same suffix)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def _gst_h264_ok() -> bool:
    if not gstmod.available():
        return False
    el = gstmod.installed_elements()
    try:
        gstpipes.h264_encoder(el)
    except Exception:  # noqa: BLE001 - UriError: no encoder
        return False
    return "h264parse" in el and "mp4mux" in el


class VideoFileSink:
    """A video file: H.264 through GStreamer when it has an encoder, else OpenCV (MPEG-4 part 2).

    Args:
        path: ``.mp4``, ``.mkv``, ``.avi`` or ``.mov``.
        fps: frame rate written in the file.
        writer: ``auto|gst|opencv``.
    """

    def __init__(self, path: str | os.PathLike[str], *, fps: float = 30.0, writer: str = "auto") -> None:
        self.path = Path(path)
        self.name = str(path)
        self.fps = fps if fps and fps > 0 else 30.0
        if writer not in WRITERS:
            raise SinkError(f"unknown writer {writer!r}; choose one of {', '.join(WRITERS)}")
        if self.path.is_dir():
            raise SinkError(f"cannot write {self.path}: it is a folder; give a file name such as out.mp4")
        self._made = make_parents(self.path)  # missing folders are created (docs/cli.md), removed if nothing is written
        self._writer = writer
        self._tmp = partial_path(self.path)
        self._impl: Any = None
        self._kind = ""
        self.frames = 0   # frames given
        self.written = 0  # frames in the file (more when an OpenCV-written live run holds frames)
        self._failed = False

    def _open(self, width: int, height: int) -> None:
        use_gst = self._writer == "gst" or (self._writer == "auto" and self.path.suffix.lower() in (".mp4", ".mkv")
                                            and _gst_h264_ok())
        if use_gst:
            desc = gstpipes.file_sink_pipeline(str(self._tmp), width, height, self.fps, gstmod.installed_elements())
            self._impl = gstmod.GstSink(desc, fps=self.fps, live=False, name=self.name).open()
            self._kind = "gst"
        else:
            cv2 = require("cv2")
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.path.suffix.lower()])
            vw = cv2.VideoWriter(str(self._tmp), fourcc, float(self.fps), (width, height))
            if not vw.isOpened():
                raise SinkError(f"cannot write {self.path}: OpenCV could not open a video writer")
            self._impl = vw
            self._kind = "opencv"
        log.info("writing %s (%dx%d @ %.3g fps via %s)", self.path, width, height, self.fps, self._kind)

    def write(self, rgb: np.ndarray, t: float | None = None) -> None:
        """Append a frame; ``t`` (seconds since the first frame) places it in time on a live run."""
        try:
            self._write(rgb, t)
        except BaseException as exc:
            self._failed = True  # close() removes the partial file instead of renaming it into place
            if isinstance(exc, (SinkError, OSError)) and self._impl is not None:
                why = (exc.strerror if isinstance(exc, OSError) else str(exc)) or type(exc).__name__
                why = why.replace(f"output {self.name} failed: ", "")
                raise SinkError(f"cannot write {self.path}: {why.rstrip('.')} after {self.frames} frame(s); the "
                                "incomplete video is removed; free space or choose another location") from None
            raise

    def _write(self, rgb: np.ndarray, t: float | None) -> None:
        if self._impl is None:
            self._open(rgb.shape[1], rgb.shape[0])
            self._size = rgb.shape[:2]
        elif rgb.shape[:2] != self._size:
            # a folder of mixed sizes: a video has one size, the first frame's (a writer given
            # another size drops the frame silently or fails)
            cv2 = require("cv2")
            rgb = cv2.resize(rgb, (self._size[1], self._size[0]), interpolation=cv2.INTER_AREA)
        if self._kind == "gst":
            self._impl.write(rgb, t)
            self.written += 1
        else:
            cv2 = require("cv2")
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            # constant rate: the previous frame is held until this one's time (at least one write)
            copies = 1 if t is None else max(1, round(t * self.fps) + 1 - self.written)
            for _ in range(copies):
                self._impl.write(bgr)
            self.written += copies
        self.frames += 1

    def close(self) -> None:
        """Finish the container and rename it into place (no file when no frame was written).

        Storage policy (README "Exit codes"): when the writer failed (a full
        disk, a folder made unwritable, an I/O error) or the finished file
        does not open as a video, the incomplete file is removed, never
        renamed into place, and :class:`SinkError` says so; an MP4 cut short
        by a full disk has no index and would not play anyway.

        Raises:
            SinkError: the video could not be completed (the partial file is gone).
        """
        if self._impl is None:
            return
        impl, self._impl = self._impl, None
        error = None
        try:
            if self._kind == "gst":
                error = impl.close()
            else:
                impl.release()
            if not error and not self._failed and self.frames:
                error = self._check_finished()
        finally:
            ok = self.frames and not error and not self._failed and self._tmp.is_file()
            if ok:
                try:
                    os.replace(self._tmp, self.path)
                except OSError as exc:  # the folder became unwritable (or vanished) during the run
                    error = exc.strerror or str(exc)
                    ok = False
            if not ok:
                with contextlib.suppress(OSError):
                    self._tmp.unlink()
                remove_empty(self._made)
        if error and not self._failed:  # a failed write was reported already
            left = (f"the incomplete video is left as {self._tmp}" if self._tmp.exists()
                    else "the incomplete video was removed")
            raise SinkError(f"cannot write {self.path}: {error.rstrip('.')} after {self.frames} frame(s); {left}; "
                            "free space or choose another location")

    def _check_finished(self) -> str | None:
        """Why the finished temp file is not a whole video (OpenCV's writer fails silently on a full disk)."""
        with contextlib.suppress(ImportError, OSError, ValueError):
            import resource

            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            if limit != resource.RLIM_INFINITY and self._tmp.stat().st_size >= limit:
                return f"the file reached the file-size limit of {limit} bytes (ulimit -f)"
        cv2 = require("cv2")
        cap = cv2.VideoCapture(str(self._tmp))
        try:
            if not cap.isOpened():
                return "the finished file does not open as a video (disk full or writer failure)"
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            cap.release()
        if 0 < count < self.frames - 1:  # containers may round the count by one
            return f"the finished file holds {count} of the frames (disk full or writer failure)"
        if count <= 0:
            with contextlib.suppress(OSError):
                if os.statvfs(self._tmp.parent).f_bavail == 0:
                    return "no space left on the device"
        return None


class StreamSink:
    """H.264 over RTP/UDP (``udp://host:port``) or published to an RTSP server (``rtsp://...``)."""

    def __init__(self, uri: MediaUri, *, fps: float = 30.0) -> None:
        self.uri = uri
        self.name = uri.text
        self.fps = fps or 30.0
        self._impl: Any = None
        gstmod.gst()  # fail now, in one line, without GStreamer

    def write(self, rgb: np.ndarray, t: float | None = None) -> None:  # noqa: ARG002 - live: sent as it comes
        if self._impl is None:
            h, w = rgb.shape[:2]
            el = gstmod.installed_elements()
            try:
                if self.uri.kind == "udp":
                    host, port = self.uri.location.rsplit(":", 1)
                    desc = gstpipes.udp_sink_pipeline(host, int(port), w, h, self.fps, el)
                else:
                    desc = gstpipes.rtsp_sink_pipeline(self.uri.location, w, h, self.fps, el)
            except gstpipes.UriError as exc:
                raise SinkError(f"cannot stream to {self.name}: {exc}") from None
            self._impl = gstmod.GstSink(desc, fps=self.fps, live=True, name=self.name).open()
        self._impl.write(rgb)

    def close(self) -> None:
        if self._impl is not None:
            impl, self._impl = self._impl, None
            error = impl.close(timeout_s=2.0)
            if error:
                log.warning("output %s: %s while finishing", self.name, error)


class DisplaySink:
    """A window: GStreamer's video sink, else ``cv2.imshow`` (not in opencv-python-headless).

    Args:
        required: an explicit ``display://`` output; otherwise (a window opened
            because $DISPLAY is set) a failure only disables the window.
        on_quit: called when the user presses q or Esc in an OpenCV window.
    """

    def __init__(self, *, fps: float = 30.0, required: bool = False,
                 on_quit: Callable[[], None] | None = None) -> None:
        self.name = "display"
        self.fps = fps or 30.0
        self.required = required
        self._on_quit = on_quit
        self._impl: Any = None
        self._kind = ""
        self._disabled = False

    def _open(self, w: int, h: int) -> None:
        errors = []
        if gstmod.available():
            try:
                desc = gstpipes.display_sink_pipeline(w, h, self.fps, gstmod.installed_elements())
                self._impl = gstmod.GstSink(desc, fps=self.fps, live=True, name="display").open()
                self._kind = "gst"
                return
            except SinkError as exc:
                errors.append(str(exc))
        try:
            cv2 = require("cv2")
            cv2.namedWindow("enet-run", cv2.WINDOW_NORMAL)
            self._kind = "opencv"
            self._impl = cv2
            return
        except Exception as exc:  # noqa: BLE001 - cv2.error: headless OpenCV has no GUI
            errors.append(f"OpenCV has no GUI ({str(exc).strip().splitlines()[-1][:80]})")
        raise SinkError(f"cannot open a window: {'; '.join(errors)}")

    def write(self, rgb: np.ndarray, t: float | None = None) -> None:  # noqa: ARG002 - shown as it comes
        if self._disabled:
            return
        try:
            if self._impl is None:
                self._open(rgb.shape[1], rgb.shape[0])
            if self._kind == "gst":
                self._impl.write(rgb)
            else:
                cv2 = self._impl
                cv2.imshow("enet-run", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                if (cv2.waitKey(1) & 0xFF) in (ord("q"), 27) and self._on_quit:
                    self._on_quit()
        except SinkError as exc:
            if self.required:
                raise
            log.warning("%s; continuing without a window", exc)
            self._disabled = True

    def close(self) -> None:
        if self._impl is None:
            return
        impl, self._impl = self._impl, None
        if self._kind == "gst":
            impl.close(timeout_s=2.0)
        else:
            with contextlib.suppress(Exception):
                impl.destroyAllWindows()


class StatsWriter:
    """JSON lines, one record per frame, appended and flushed in place (``tail -f`` works during a run).

    The file is created with the first record, so a run that processes no
    frame leaves none; each line is complete when flushed, so an interrupted
    run leaves a valid file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._made = make_parents(self.path)  # missing folders are created (docs/cli.md)
        self._f: IO[str] | None = None
        self._closed = False
        self.records = 0

    def write(self, record: dict[str, Any]) -> None:
        if self._f is None:
            if self._closed:
                raise SinkError(f"stats {self.path} is closed")
            try:
                self._f = open(self.path, "w", encoding="utf-8")
            except OSError as exc:
                raise SinkError(f"cannot write stats {self.path}: {exc.strerror}") from None
        try:
            self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._f.flush()
        except OSError as exc:
            # a full or failing disk: the last line may be torn, so the file goes (README "Exit codes")
            f, self._f = self._f, None
            self._closed = True
            raise self._discard(f, f"{exc.strerror} after {self.records} record(s)") from None
        self.records += 1

    def _discard(self, f: IO[str], why: str) -> SinkError:
        """Close ``f`` and remove its file (its last line may be torn); returns the error to raise."""
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        return SinkError(f"cannot write stats {self.path}: {why}; the incomplete file was removed; "
                         "free space or choose another location")

    def close(self) -> None:
        self._closed = True
        if self._f is None:
            remove_empty(self._made)
            return
        f, self._f = self._f, None
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
        except OSError as exc:
            raise self._discard(f, exc.strerror) from None


class ContactSheet:
    """Keeps the frames at ``indices`` (downscaled) and writes them as one PNG grid.

    Args:
        path: ``.png`` file (written atomically).
        indices: output frame numbers to keep.
        columns: grid columns.
        thumb_width: width of each tile in pixels.
    """

    def __init__(self, path: str | os.PathLike[str], indices: Sequence[int], *, columns: int = 2,
                 thumb_width: int = 640) -> None:
        self.path = Path(path)
        self.name = str(path)
        self._want = set(int(i) for i in indices)
        self._columns = max(1, columns)
        self._thumb_width = thumb_width
        self._tiles: list[tuple[int, np.ndarray]] = []
        self._i = 0

    def write(self, rgb: np.ndarray, t: float | None = None) -> None:  # noqa: ARG002 - picks by number
        if self._i in self._want:
            cv2 = require("cv2")
            scale = min(1.0, self._thumb_width / rgb.shape[1])
            tile = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                              interpolation=cv2.INTER_AREA) if scale < 1.0 else rgb.copy()
            cv2.putText(tile, f"frame {self._i}", (6, tile.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
            self._tiles.append((self._i, tile))
        self._i += 1

    def close(self) -> None:
        if not self._tiles:
            return
        cv2 = require("cv2")
        from enet.fileio import write_bytes

        tiles = [t for _, t in sorted(self._tiles, key=lambda x: x[0])]
        th, tw = tiles[0].shape[:2]
        rows = -(-len(tiles) // self._columns)
        gap = 4
        sheet = np.full((rows * th + (rows + 1) * gap, self._columns * tw + (self._columns + 1) * gap, 3), 255,
                        dtype=np.uint8)
        for k, tile in enumerate(tiles):
            r, c = divmod(k, self._columns)
            y, x = gap + r * (th + gap), gap + c * (tw + gap)
            sheet[y:y + th, x:x + tw] = tile[:th, :tw]
        ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SinkError(f"cannot encode contact sheet {self.path}")
        write_bytes(self.path, png.tobytes())
        self._tiles = []


def make_output(uri: MediaUri, *, fps: float, writer: str = "auto",
                on_quit: Callable[[], None] | None = None) -> Sink:
    """The sink for a parsed output URI."""
    if uri.kind == "file":
        return VideoFileSink(uri.location, fps=fps, writer=writer)
    if uri.kind == "display":
        return DisplaySink(fps=fps, required=True, on_quit=on_quit)
    return StreamSink(uri, fps=fps)
