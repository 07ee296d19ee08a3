"""GStreamer pipeline strings: pure functions of a URI, options and the installed elements.

Nothing here imports ``gi``. ``elements`` is the set of element factory names
present on the machine (:func:`enet.deploy.gst.installed_elements` asks the
registry); passing it in keeps every builder testable without GStreamer.
Jetson is detected by its elements: ``nvvidconv`` (NVMM <-> system memory),
``nvv4l2decoder``/``nvv4l2h264enc`` (hardware codecs), ``nvarguscamerasrc`` (CSI).

Sources end in an ``appsink`` named :data:`APPSINK` delivering RGB; sinks start
with an ``appsrc`` named :data:`APPSRC` taking RGB.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import PurePath

from enet.deploy.uri import MediaUri, UriError

APPSINK = "enet_sink"
#: rtspsrc: fail a TCP connection or RTSP request without an answer after this many microseconds (default 20 s)
RTSP_TCP_TIMEOUT_US = 3_000_000
APPSRC = "enet_src"

TO_RGB = "videoconvert ! video/x-raw,format=RGB"
# nvvidconv copies NVMM buffers to system memory; it cannot emit RGB, so BGRx then videoconvert.
NV_TO_RGB = "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=RGB"

_DEMUX = {".mp4": "qtdemux", ".mov": "qtdemux", ".m4v": "qtdemux", ".mkv": "matroskademux",
          ".webm": "matroskademux", ".avi": "avidemux", ".ts": "tsdemux", ".h264": "", ".264": "",
          ".h265": "", ".265": ""}
_PARSE = {"h264": "h264parse", "h265": "h265parse", "vp8": "", "vp9": "", "mpeg4": "mpeg4videoparse",
          "mjpeg": "jpegparse"}
_DEPAY = {"h264": "rtph264depay ! h264parse", "h265": "rtph265depay ! h265parse"}
CODECS = tuple(_PARSE)


@dataclass(frozen=True)
class CaptureOptions:
    """What the user asked of the capture.

    Attributes:
        size: ``(height, width)`` to capture at (cameras) or None for the default.
        rate: frames per second to ask a camera for, or None.
        codec: compressed stream codec (``h264``, ``h265``, ``mjpeg``, ...) or
            None to let ``decodebin`` find out (files) / assume H.264 (RTSP on Jetson).
        flip: ``nvvidconv flip-method`` for CSI cameras (0-7).
        latency_ms: RTSP jitter buffer.
    """

    size: tuple[int, int] | None = None
    rate: float | None = None
    codec: str | None = None
    flip: int = 0
    latency_ms: int = 200


def quote(value: str) -> str:
    """Quote a property value for ``gst_parse_launch`` (paths with spaces, quotes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_jetson(elements: Collection[str]) -> bool:
    return "nvvidconv" in elements


def _hw_decode(elements: Collection[str]) -> bool:
    return "nvv4l2decoder" in elements and "nvvidconv" in elements


def appsink(live: bool) -> str:
    """A live appsink keeps only the newest frame; a file appsink applies back-pressure."""
    if live:
        return f"appsink name={APPSINK} max-buffers=1 drop=true sync=false"
    return f"appsink name={APPSINK} max-buffers=4 drop=false sync=false"


def _caps(size: tuple[int, int] | None, rate: float | None) -> str:
    parts = []
    if size:
        parts += [f"width={size[1]}", f"height={size[0]}"]
    if rate:
        parts.append(f"framerate={round(rate)}/1")
    return ",".join(parts)


def _fraction(rate: float | None, default: int = 30) -> str:
    return f"{round(rate) if rate else default}/1"


def file_pipeline(path: str, opts: CaptureOptions, elements: Collection[str]) -> str:
    """A video file, decoded in hardware on Jetson when the codec is known."""
    src = f"filesrc location={quote(path)}"
    suffix = PurePath(path).suffix.lower()
    codec = opts.codec
    if _hw_decode(elements) and codec in _PARSE and suffix in _DEMUX:
        demux = _DEMUX[suffix]
        chain = [src] + ([demux] if demux else []) + ([_PARSE[codec]] if _PARSE[codec] else [])
        dec = "nvv4l2decoder mjpeg=1" if codec == "mjpeg" else "nvv4l2decoder"
        return " ! ".join(chain + [dec, NV_TO_RGB, appsink(False)])
    convert = NV_TO_RGB if is_jetson(elements) else TO_RGB
    return f"{src} ! decodebin ! {convert} ! {appsink(False)}"


def v4l2_pipeline(device: str, opts: CaptureOptions, elements: Collection[str]) -> str:
    """A V4L2 camera: raw YUV by default, MJPEG with ``codec="mjpeg"``."""
    caps = _caps(opts.size, opts.rate)
    if opts.codec == "mjpeg":
        head = f"v4l2src device={quote(device)} io-mode=2 ! image/jpeg" + (f",{caps}" if caps else "")
        if _hw_decode(elements):
            return f"{head} ! nvv4l2decoder mjpeg=1 ! {NV_TO_RGB} ! {appsink(True)}"
        return f"{head} ! jpegdec ! {TO_RGB} ! {appsink(True)}"
    if opts.codec not in (None, "raw"):
        raise UriError(f"v4l2 cameras deliver raw or mjpeg frames, not {opts.codec}")
    head = f"v4l2src device={quote(device)}" + (f" ! video/x-raw,{caps}" if caps else "")
    return f"{head} ! {TO_RGB} ! {appsink(True)}"


def csi_pipeline(sensor: int, opts: CaptureOptions) -> str:
    """A Jetson MIPI CSI camera: nvarguscamerasrc (NVMM NV12) -> nvvidconv -> RGB."""
    h, w = opts.size or (720, 1280)
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! "
        f"video/x-raw(memory:NVMM),width={w},height={h},framerate={_fraction(opts.rate)},format=NV12 ! "
        f"nvvidconv flip-method={opts.flip} ! video/x-raw,format=BGRx ! videoconvert ! "
        f"video/x-raw,format=RGB ! {appsink(True)}"
    )


def rtsp_pipeline(url: str, opts: CaptureOptions, elements: Collection[str]) -> str:
    """An RTSP camera over TCP-or-UDP; hardware H.264/H.265 decode on Jetson.

    Bounded waits (docs/deploy.md, "Bounded waits"): ``tcp-timeout`` fails a
    connection or request that gets no answer (a frozen server whose socket
    stays open) after :data:`RTSP_TCP_TIMEOUT_US` instead of 20 s (closing
    such a stream waits at most rtspsrc's ``teardown-timeout``, 100 ms by
    default; not set here: GStreamer < 1.18 may lack it); the reads
    themselves are bounded by the appsink pull (``enet.deploy.gst``).
    """
    src = f"rtspsrc location={quote(url)} latency={opts.latency_ms} tcp-timeout={RTSP_TCP_TIMEOUT_US}"
    if _hw_decode(elements):
        codec = opts.codec or "h264"
        if codec not in _DEPAY:
            raise UriError(f"RTSP input codec must be h264 or h265, not {codec}")
        return f"{src} ! {_DEPAY[codec]} ! nvv4l2decoder ! {NV_TO_RGB} ! {appsink(True)}"
    if opts.codec in _DEPAY:
        return f"{src} ! {_DEPAY[opts.codec]} ! avdec_{opts.codec} ! {TO_RGB} ! {appsink(True)}"
    return f"{src} ! decodebin ! {TO_RGB} ! {appsink(True)}"


def source_pipeline(uri: MediaUri, opts: CaptureOptions, elements: Collection[str]) -> str:
    """The capture pipeline for ``uri`` (kinds file, v4l2, csi, rtsp, gst).

    Raises:
        UriError: a kind GStreamer does not capture (folder, test) or a bad codec.
    """
    if opts.codec is not None and opts.codec not in CODECS + ("raw",):
        raise UriError(f"unknown input codec {opts.codec!r}; expected one of {', '.join(CODECS)}")
    if uri.kind == "file":
        return file_pipeline(uri.location, opts, elements)
    if uri.kind == "v4l2":
        return v4l2_pipeline(uri.location, opts, elements)
    if uri.kind == "csi":
        return csi_pipeline(int(uri.location), opts)
    if uri.kind == "rtsp":
        return rtsp_pipeline(uri.location, opts, elements)
    if uri.kind == "gst":
        return uri.location
    raise UriError(f"{uri.kind} inputs are not read through GStreamer")


# --------------------------------------------------------------------------- sinks


def appsrc(width: int, height: int, fps: float, *, live: bool) -> str:
    """The output pipelines' source: I420 frames (``GstSink.write`` converts the RGB ones with OpenCV,
    about 0.1 against 1.0 ms in ``videoconvert`` per 1140x360 frame; even sizes, as the renderer makes)."""
    return (
        f"appsrc name={APPSRC} is-live={'true' if live else 'false'} format=time block=true "
        f"caps=video/x-raw,format=I420,width={width},height={height},framerate={_fraction(fps)}"
    )


def h264_encoder(elements: Collection[str], *, bitrate_kbps: int = 4000, streaming: bool = False) -> str:
    """The best H.264 encoder present: Jetson's nvv4l2h264enc, x264enc, openh264enc.

    Raises:
        UriError: none is installed (apt-get install gstreamer1.0-plugins-ugly).
    """
    gop = 30
    if "nvv4l2h264enc" in elements and "nvvidconv" in elements:
        return (
            "nvvidconv ! video/x-raw(memory:NVMM),format=NV12 ! "
            f"nvv4l2h264enc bitrate={bitrate_kbps * 1000} iframeinterval={gop} insert-sps-pps=true"
        )
    if "x264enc" in elements:
        # zerolatency has no B-frames; files neither: a live run writes each frame at its capture time
        # (not a constant rate), and with B-frames mp4mux (GStreamer 1.22) then shifted the timestamps
        # and lost the last frames (6 frames in, 4 out)
        # ultrafast: the camera pipeline's inference shares the CPU with the encoder. At the fixed
        # bitrate the same file size as superfast (and veryfast), about 2.5 ms less CPU per
        # 1140x360 demo frame, 42.7 against 44.9 dB PSNR to the frames it was given (docs/deploy.md)
        tune = " tune=zerolatency" if streaming else " bframes=0"
        return (f"videoconvert ! video/x-raw,format=I420 ! x264enc bitrate={bitrate_kbps} "
                f"speed-preset=ultrafast key-int-max={gop}{tune}")
    if "openh264enc" in elements:
        return f"videoconvert ! video/x-raw,format=I420 ! openh264enc bitrate={bitrate_kbps * 1000}"
    raise UriError("no H.264 encoder in GStreamer; apt-get install gstreamer1.0-plugins-ugly (x264enc)")


def file_sink_pipeline(path: str, width: int, height: int, fps: float, elements: Collection[str]) -> str:
    """RGB frames -> H.264 in MP4 (or Matroska for .mkv); EOS writes the index."""
    mux = "matroskamux" if path.lower().endswith(".mkv") else "mp4mux"
    return (f"{appsrc(width, height, fps, live=False)} ! {h264_encoder(elements)} ! h264parse ! "
            f"{mux} ! filesink location={quote(path)}")


def udp_sink_pipeline(host: str, port: int, width: int, height: int, fps: float,
                      elements: Collection[str]) -> str:
    """H.264 RTP over UDP; play with the SDP in docs/deploy.md or gst-launch udpsrc."""
    return (f"{appsrc(width, height, fps, live=True)} ! {h264_encoder(elements, streaming=True)} ! "
            f"h264parse ! rtph264pay config-interval=1 pt=96 ! "
            f"udpsink host={host} port={port} sync=false async=false")


def rtsp_sink_pipeline(url: str, width: int, height: int, fps: float, elements: Collection[str]) -> str:
    """Publish H.264 to an RTSP server (e.g. mediamtx) with rtspclientsink."""
    return (f"{appsrc(width, height, fps, live=True)} ! {h264_encoder(elements, streaming=True)} ! "
            f"h264parse ! rtspclientsink location={quote(url)}")


def display_sink_pipeline(width: int, height: int, fps: float, elements: Collection[str]) -> str:
    """A window: nv3dsink on Jetson, else autovideosink."""
    if "nv3dsink" in elements and "nvvidconv" in elements:
        return f"{appsrc(width, height, fps, live=True)} ! nvvidconv ! nv3dsink sync=false"
    return f"{appsrc(width, height, fps, live=True)} ! videoconvert ! autovideosink sync=false"
