"""Serve an H.264 video file as a local RTSP camera (for comparing a file with a stream).

    python -m enet.deploy.rtsp_serve clip.mp4                 # rtsp://127.0.0.1:8554/clip
    python -m enet.deploy.rtsp_serve pattern:160x120@10 --path cam   # an endless test pattern (x264enc)
    enet-run rtsp://127.0.0.1:8554/clip --input-latency 50 --no-display

The file is played at its own rate, as a camera would send it, from the
start for each client; at its end the client sees the end of the stream
(``enet-run`` then reconnects and it plays again). Needs gst-rtsp-server's typelib (Debian/Ubuntu:
``apt-get install gir1.2-gst-rtsp-server-1.0``) and an H.264 file in MP4 or
Matroska (``enet-demo`` writes one: ``demo_out/camvid_0016E5.mp4``). A test
and benchmark tool, not part of the car runtime; see docs/deploy.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from enet.cli import ArgumentParser, positive_int

    p = ArgumentParser(prog="python -m enet.deploy.rtsp_serve",
                       description="Serve an H.264 MP4/MKV file as an RTSP camera on this machine, at the file's "
                                   "own rate, from the start for each client (Ctrl-C stops).",
                       epilog="examples:\n"
                              "  python -m enet.deploy.rtsp_serve demo_out/camvid_0016E5.mp4\n"
                              "  python -m enet.deploy.rtsp_serve drive.mp4 --port 8555 --path cam --host 0.0.0.0")
    p.add_argument("file", help="H.264 video in .mp4/.mov/.mkv, or pattern:WxH@FPS (an endless moving test "
                                "pattern, encoded with x264enc: a camera that never ends)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=positive_int, default=8554, help="port (default 8554)")
    p.add_argument("--path", default=None, help="mount path (default: the file's stem)")
    return p


def launch_line(path: Path) -> str:
    """The media pipeline: demux, parse and packetise without re-encoding (``pay0`` is what RTSP serves)."""
    from enet.deploy.gstpipes import quote

    demux = "matroskademux" if path.suffix.lower() in (".mkv", ".webm") else "qtdemux"
    return (f"( filesrc location={quote(str(path))} ! {demux} ! h264parse ! "
            "rtph264pay name=pay0 pt=96 config-interval=1 )")


def pattern_line(spec: str) -> str:
    """``pattern:160x120@10`` -> an endless live H.264 test pattern (``pay0``)."""
    from enet.errors import DataError

    try:
        size, fps = spec[len("pattern:"):].split("@")
        w, h = (int(v) for v in size.lower().split("x"))
        rate = int(fps)
    except ValueError:
        raise DataError(f"bad pattern {spec!r}; expected pattern:WxH@FPS, e.g. pattern:160x120@10") from None
    return (f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={rate}/1 ! "
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={rate} ! "
            "rtph264pay name=pay0 pt=96 config-interval=1 )")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from enet.cli import guard

    return guard("rtsp_serve", lambda: _serve(args))


def _serve(args: argparse.Namespace) -> int:
    from enet.deploy.gst import gst
    from enet.errors import DataError, MissingDependencyError

    pattern = args.file.startswith("pattern:")
    path = Path(args.file).resolve()
    if not pattern and not path.is_file():
        raise DataError(f"cannot serve {args.file}: it does not exist")
    line = pattern_line(args.file) if pattern else launch_line(path)
    gst()
    import gi

    try:
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GLib, GstRtspServer
    except (ValueError, ImportError):
        raise MissingDependencyError("gst-rtsp-server's typelib is missing; apt-get install "
                                     "gir1.2-gst-rtsp-server-1.0") from None

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(line)
    factory.set_shared(False)
    mount = args.path or ("pattern" if pattern else path.stem)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        raise DataError(f"cannot listen on {args.host}:{args.port} (in use?)")
    print(f"rtsp_serve: rtsp://{args.host}:{args.port}/{mount} serving {args.file if pattern else path}", flush=True)
    loop = GLib.MainLoop()
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
