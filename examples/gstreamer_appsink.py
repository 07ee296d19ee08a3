"""A GStreamer app that hands frames to ``enet.Segmenter`` through an appsink.

    python examples/gstreamer_appsink.py                      # videotestsrc, 30 frames
    python examples/gstreamer_appsink.py "v4l2src device=/dev/video0"
    python examples/gstreamer_appsink.py "filesrc location=clip.mp4 ! decodebin" --frames 100

Whatever the source, ``videoconvert`` turns it into BGR for the appsink, and
each sample's buffer is read as a numpy frame (no copy beyond the map). On a
Jetson, put ``nvvidconv`` before ``videoconvert`` for CSI cameras.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import enet


def frames(source: str, limit: int):
    """BGR uint8 frames from a GStreamer source description (``limit`` 0: until EOS)."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    pipeline = Gst.parse_launch(f"{source} ! videoconvert ! video/x-raw,format=BGR ! "
                                "appsink name=sink emit-signals=false sync=false max-buffers=2 drop=false")
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    n = 0
    try:
        while not limit or n < limit:
            sample = sink.emit("pull-sample")  # None at end of stream
            if sample is None:
                break
            caps = sample.get_caps().get_structure(0)
            w, h = caps.get_value("width"), caps.get_value("height")
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            if not ok:
                break
            try:
                stride = info.size // h  # rows may be padded to 4 bytes
                frame = np.ndarray((h, w, 3), np.uint8, info.data, strides=(stride, 3, 1)).copy()
            finally:
                buf.unmap(info)
            yield frame
            n += 1
    finally:
        pipeline.set_state(Gst.State.NULL)


def gstreamer_missing() -> str | None:
    """Why GStreamer's Python bindings (PyGObject, ``gi``) cannot be used here, or None when they can."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst  # noqa: F401
    except (ImportError, ValueError) as exc:
        if sys.prefix != sys.base_prefix:  # a venv does not see the system's python3-gi
            return (f"GStreamer's Python bindings do not import ({exc}): apt-get install python3-gi "
                    "gir1.2-gstreamer-1.0, then make the venv with --system-site-packages, or link gi into it: "
                    f"python -m enet.deploy.gst_venv_link {sys.prefix}")
        return f"GStreamer's Python bindings do not import ({exc}): apt-get install python3-gi gir1.2-gstreamer-1.0"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", default="videotestsrc num-buffers=30 ! video/x-raw,width=640,height=480",
                   help="GStreamer source description (default: videotestsrc)")
    p.add_argument("--model", default="camvid")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (default: at end of stream)")
    args = p.parse_args(argv)
    why = gstreamer_missing()  # before the model loads
    if why:
        print(f"gstreamer_appsink: error: {why}", file=sys.stderr)
        return 1

    with enet.Segmenter(args.model) as seg:
        n = 0
        for frame in frames(args.source, args.frames):
            labels = seg.segment(frame)
            top = max(seg.fractions(labels).items(), key=lambda kv: kv[1])
            print(f"frame {n}: {frame.shape[1]}x{frame.shape[0]}, mostly {top[0]} ({top[1] * 100:.0f}%)")
            n += 1
    print(f"gstreamer_appsink: {n} frames with {seg.backend_name}")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
