"""Camera inputs and outputs as URIs, as jetson-inference's videoSource/videoOutput.

Inputs::

    file://clip.mp4, clip.mp4        a video file (every frame is processed)
    file://frames/, frames/          an image folder, frames in name order
    v4l2:///dev/video0, v4l2://0     a V4L2 camera (live)
    csi://0                          a Jetson MIPI CSI camera (nvarguscamerasrc, live)
    rtsp://host:554/stream           an RTSP camera (live)
    gst://<pipeline ending in appsink>  a raw GStreamer pipeline (live)
    test://?size=96x64&fps=30&frames=300&live=0   a synthetic pattern (tests, soak runs)

Outputs::

    out.mp4, file://out.mp4          a video file (.mp4, .mkv, .avi, .mov)
    display://0                      a window
    rtsp://server:8554/enet          publish to an RTSP server (rtspclientsink)
    udp://host:5000, rtp://host:5000 H.264 RTP over UDP
    http://@:8080, http://127.0.0.1:8080?token=T   the live view in a browser (enet.deploy.live)

Output-only forms (:func:`is_output_only`: ``http://``, ``display://``,
``udp://``, ``rtp://``) are outputs wherever they stand on ``enet-run``'s
command line; the rule for the other positionals is in docs/deploy.md ("Rigs").

Parsing is pure except that a path's kind (folder or file) is looked up with
``is_dir``, which tests can replace.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from enet.errors import EnetError

INPUT_KINDS = ("file", "folder", "v4l2", "csi", "rtsp", "gst", "test")
OUTPUT_KINDS = ("file", "display", "rtsp", "udp", "live")
#: Schemes that only name outputs (never an input).
OUTPUT_ONLY_SCHEMES = ("http", "display", "udp", "rtp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov")
LIVE_KINDS = frozenset({"v4l2", "csi", "rtsp", "gst"})


class UriError(EnetError):
    """An input or output string that is not a supported URI."""


@dataclass(frozen=True)
class MediaUri:
    """A parsed input or output.

    Attributes:
        kind: one of :data:`INPUT_KINDS` or :data:`OUTPUT_KINDS`.
        location: path, device, sensor id, URL or pipeline text.
        options: query options (``test://`` only).
        text: what the user wrote.
    """

    kind: str
    location: str
    text: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """Live sources drop stale frames; files process every frame."""
        if self.kind == "test":
            return self.options.get("live", "0") in ("1", "true", "yes")
        return self.kind in LIVE_KINDS


def _strip_file_scheme(text: str) -> str:
    # file:///abs/path -> /abs/path ; file://rel/path -> rel/path
    return text[len("file://"):]


def parse_input(text: str, *, is_dir: Callable[[str], bool] = os.path.isdir) -> MediaUri:
    """Parse an input URI or plain path.

    Raises:
        UriError: an unsupported scheme or a malformed URI.
    """
    if not text:
        raise UriError("empty input; expected a path or a URI such as file://clip.mp4 or csi://0")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "gst":
        pipeline = text[len("gst://"):].strip()
        if "appsink" not in pipeline:
            raise UriError(f"gst:// pipeline must end in an appsink, got {pipeline!r}")
        return MediaUri("gst", pipeline, text)
    if scheme == "csi":
        sensor = text[len("csi://"):].strip("/") or "0"
        if not sensor.isdigit():
            raise UriError(f"csi:// expects a sensor number such as csi://0, got {text!r}")
        return MediaUri("csi", sensor, text)
    if scheme == "v4l2":
        dev = text[len("v4l2://"):]
        if dev.isdigit():
            dev = f"/dev/video{dev}"
        if not dev.startswith("/dev/"):
            raise UriError(f"v4l2:// expects a device such as v4l2:///dev/video0, got {text!r}")
        return MediaUri("v4l2", dev, text)
    if scheme in ("rtsp", "rtsps"):
        if not urlsplit(text).hostname:
            raise UriError(f"{text!r} has no host; expected rtsp://host:port/path")
        return MediaUri("rtsp", text, text)
    if scheme == "test":
        query = text[len("test://"):].lstrip("/").lstrip("?")
        return MediaUri("test", "pattern", text, dict(parse_qsl(query)))
    if scheme == "file":
        path = _strip_file_scheme(text)
    elif scheme:
        raise UriError(
            f"unsupported input scheme {scheme}:// in {text!r}; expected file://, a folder, v4l2://, "
            "csi://, rtsp://, gst:// or test://"
        )
    else:
        path = text
    if not path:
        raise UriError(f"{text!r} names no file")
    return MediaUri("folder" if is_dir(path) else "file", path, text)


def is_output_only(text: str) -> bool:
    """True for an output-only form (``http://``, ``display://``, ``udp://``, ``rtp://``)."""
    return "://" in text and text.split("://", 1)[0].lower() in OUTPUT_ONLY_SCHEMES


def camera_device_hint(text: str) -> str | None:
    """The fix for an input that names a camera the way other tools do (``0``, ``/dev/video0``), else None."""
    if text.isdigit() and not os.path.exists(text):
        return f"{text!r} is not a file; for camera {text} write v4l2:///dev/video{text} (csi://{text} for a Jetson CSI camera)"
    if text.startswith("/dev/video"):
        return f"{text} is a camera device; write v4l2://{text}"
    return None


def parse_output(text: str) -> MediaUri:
    """Parse an output URI or a video path.

    Raises:
        UriError: an unsupported scheme or file type.
    """
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "display":
        return MediaUri("display", text[len("display://"):] or "0", text)
    if scheme == "http":
        try:
            port = urlsplit(text).port
        except ValueError:
            port = None
        if not port:
            raise UriError(f"{text!r} needs a port, e.g. http://127.0.0.1:8080 (http://@:8080: every interface)")
        return MediaUri("live", text, text)
    if scheme in ("rtsp", "rtsps"):
        if not urlsplit(text).hostname:
            raise UriError(f"{text!r} has no host; expected rtsp://server:8554/path")
        return MediaUri("rtsp", text, text)
    if scheme in ("udp", "rtp"):
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port:
            raise UriError(f"{text!r} needs a host and port, e.g. udp://192.168.1.10:5000")
        return MediaUri("udp", f"{parts.hostname}:{port}", text)
    if scheme == "file":
        path = _strip_file_scheme(text)
    elif scheme:
        raise UriError(
            f"unsupported output scheme {scheme}:// in {text!r}; expected a video file, display://, "
            "rtsp://, udp:// or http:// (live view)"
        )
    else:
        path = text
    if not path.lower().endswith(VIDEO_SUFFIXES):
        raise UriError(
            f"output {text!r} is not a video file; expected a name ending in {', '.join(VIDEO_SUFFIXES)}"
        )
    return MediaUri("file", path, text)


def parse_size(text: str) -> tuple[int, int]:
    """``"480x360"`` (width x height) -> ``(height, width)``.

    Raises:
        UriError: not ``WxH`` with positive integers.
    """
    try:
        w_s, h_s = text.lower().split("x")
        w, h = int(w_s), int(h_s)
    except ValueError:
        raise UriError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 480x360") from None
    if w <= 0 or h <= 0:
        raise UriError(f"size {text!r} must be positive, e.g. 480x360")
    return h, w
