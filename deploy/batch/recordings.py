"""What ``enet-batch``'s inputs name, and decoding one recording.

An input is a video file, an image folder (one recording: its images in name
order, as ``enet-run FOLDER`` plays it), a folder of videos (each one a
recording), or a text file listing any of those (one per line, ``#``
comments, relative paths relative to the list). Paths may be URLs:
``file://``, ``http(s)://`` (decoded by OpenCV's FFmpeg as it streams) or any
scheme pyarrow's file systems read (``s3://``, ``gs://``, ``hdfs://``...; a
remote video is copied to a local temp file on the worker first).

Frames are decoded with OpenCV, as ``enet-run --capture opencv`` decodes them
(:class:`enet.deploy.sources.OpenCVSource`, :class:`~enet.deploy.sources.FolderSource`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enet.errors import EnetError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".h264", ".h265",
                  ".hevc")
LIST_SUFFIXES = (".txt", ".lst", ".list")
_STREAMED = ("http", "https")


@dataclass(frozen=True)
class Recording:
    """One recording to segment.

    Attributes:
        id: stable name in the output folder: the file or folder name plus a
            hash of the full location (two ``front.mp4`` of different drives differ).
        location: local path or URL.
        kind: ``"video"`` or ``"folder"``.
    """

    id: str
    location: str
    kind: str


def recording_id(location: str) -> str:
    stem = Path(location.rstrip("/").split("://", 1)[-1]).name
    stem = Path(stem).stem if Path(stem).suffix.lower() in VIDEO_SUFFIXES else stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "recording"
    return f"{stem[:60]}-{hashlib.sha1(location.encode()).hexdigest()[:8]}"


def _scheme(text: str) -> str | None:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    return m.group(1).lower() if m else None


def _local(text: str) -> str | None:
    """The local path of ``text`` (a path or ``file://`` URL), else None."""
    scheme = _scheme(text)
    if scheme is None:
        return text
    if scheme == "file":
        return text[len("file://"):]
    return None


def _image_suffixes() -> tuple[str, ...]:
    from enet.deploy.sources import IMAGE_SUFFIXES

    return IMAGE_SUFFIXES


def _remote_fs(url: str) -> tuple[Any, str]:
    from enet._lazy import require

    pafs = require("pyarrow.fs")
    try:
        return pafs.FileSystem.from_uri(url)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError/... for bad or unknown URLs
        raise EnetError(f"cannot open {url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                        "expected a path or a URL pyarrow reads (s3://, gs://, hdfs://, file://)") from None


def _listing(location: str) -> tuple[str, list[str]]:
    """``("dir" | "file" | "missing", names in a folder)`` of a local path or pyarrow URL."""
    local = _local(location)
    if local is not None:
        p = Path(local)
        if p.is_dir():
            return "dir", sorted(f.name for f in p.iterdir() if f.is_file())
        return ("file" if p.is_file() else "missing"), []
    if _scheme(location) in _STREAMED:
        return "file", []
    from enet._lazy import require

    pafs = require("pyarrow.fs")
    fs, path = _remote_fs(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        entries = fs.get_file_info(pafs.FileSelector(path, recursive=False))
        return "dir", sorted(Path(e.path).name for e in entries if e.type == pafs.FileType.File)
    return ("file" if info.type == pafs.FileType.File else "missing"), []


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def expand(inputs: list[str]) -> list[Recording]:
    """The recordings ``inputs`` name, in order, without duplicates.

    Raises:
        EnetError: an input that does not exist or holds nothing to segment.
    """
    out: dict[str, Recording] = {}
    for text in inputs:
        for rec in _expand_one(text, depth=0):
            out.setdefault(rec.id, rec)
    if not out:
        raise EnetError("the inputs name no recordings; expected video files, image folders or a list file")
    return list(out.values())


def _expand_one(text: str, depth: int) -> list[Recording]:
    text = text.strip()
    kind, names = _listing(text)
    suffix = Path(text.split("?", 1)[0]).suffix.lower()
    if kind == "missing":
        raise EnetError(f"input {text} does not exist; expected a video file, an image folder or a list file")
    if kind == "dir":
        images = [n for n in names if Path(n).suffix.lower() in _image_suffixes()]
        if images:
            return [Recording(recording_id(_canonical(text)), text, "folder")]
        videos = [n for n in names if Path(n).suffix.lower() in VIDEO_SUFFIXES]
        if not videos:
            raise EnetError(f"folder {text} holds no images and no videos; expected {', '.join(_image_suffixes())} "
                            f"or {', '.join(VIDEO_SUFFIXES)} files")
        return [Recording(recording_id(_canonical(_join(text, v))), _join(text, v), "video") for v in videos]
    if suffix in LIST_SUFFIXES:
        if depth > 0:
            raise EnetError(f"list file {text} is named in another list; lists do not nest")
        return [r for line in _list_lines(text) for r in _expand_one(line, depth + 1)]
    return [Recording(recording_id(_canonical(text)), text, "video")]


def _canonical(text: str) -> str:
    local = _local(text)
    return str(Path(local).resolve()) if local is not None else text


def _list_lines(text: str) -> list[str]:
    local = _local(text)
    if local is not None:
        try:
            body = Path(local).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EnetError(f"cannot read list file {text}: {exc}") from None
        base = Path(local).parent
    else:
        fs, path = _remote_fs(text)
        with fs.open_input_stream(path) as f:
            body = f.read().decode("utf-8")
        base = None
    lines = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if base is not None and _scheme(line) is None and not os.path.isabs(line):
            line = str(base / line)
        elif base is None and _scheme(line) is None and not line.startswith("/"):
            line = text.rsplit("/", 1)[0] + "/" + line
        lines.append(line)
    if not lines:
        raise EnetError(f"list file {text} names no recordings")
    return lines


# --------------------------------------------------------------------------- decoding


def frames(rec: Recording) -> Iterator[tuple[np.ndarray, float | None]]:
    """RGB uint8 ``(H, W, 3)`` frames of one recording, with their presentation time in seconds.

    Raises:
        EnetError (SourceError): the recording cannot be opened or a frame decoded.
    """
    local = _local(rec.location)
    if rec.kind == "folder":
        if local is not None:
            yield from _read_all(_folder_source(local))
        else:
            yield from _remote_folder(rec.location)
        return
    if local is not None or _scheme(rec.location) in _STREAMED:
        yield from _read_all(_video_source(local if local is not None else rec.location, rec.location))
        return
    with _remote_copy(rec.location) as path:
        yield from _read_all(_video_source(str(path), rec.location))


def _folder_source(path: str) -> Any:
    from enet.deploy.sources import FolderSource

    return FolderSource(path).open()


def _video_source(target: str, name: str) -> Any:
    from enet.deploy.sources import OpenCVSource

    return OpenCVSource(target, live=False, name=f"video {name}").open()


def _read_all(source: Any) -> Iterator[tuple[np.ndarray, float | None]]:
    try:
        while (item := source.read()) is not None:
            yield item
    finally:
        source.close()


def _remote_folder(url: str) -> Iterator[tuple[np.ndarray, float | None]]:
    from enet._lazy import require
    from enet.deploy.errors import SourceError

    cv2 = require("cv2")
    fs, path = _remote_fs(url)
    _, names = _listing(url)
    names = [n for n in names if Path(n).suffix.lower() in _image_suffixes()]
    for i, name in enumerate(names):
        with fs.open_input_stream(path.rstrip("/") + "/" + name) as f:
            data = np.frombuffer(f.read(), dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"cannot decode image {_join(url, name)}; expected a readable PNG/JPEG")
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i / 30.0


@contextlib.contextmanager
def _remote_copy(url: str) -> Iterator[Path]:
    fs, path = _remote_fs(url)
    suffix = Path(path).suffix
    fd, tmp = tempfile.mkstemp(prefix="enet-batch-video.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, fs.open_input_stream(path) as f:
            while block := f.read(1 << 22):
                out.write(block)
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def frame_count_hint(rec: Recording) -> int | None:
    """Frames a local recording announces (a video header, a folder's images), for the progress bar; None if unknown."""
    local = _local(rec.location)
    if local is None:
        return None
    if rec.kind == "folder":
        return sum(1 for f in Path(local).iterdir() if f.suffix.lower() in _image_suffixes())
    try:
        from enet._lazy import require

        cv2 = require("cv2")
        cap = cv2.VideoCapture(local)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        cap.release()
        return n if n > 0 else None
    except Exception:  # noqa: BLE001 - only a hint
        return None
