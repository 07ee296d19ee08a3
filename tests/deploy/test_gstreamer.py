"""Real GStreamer pipelines (skipped without PyGObject + GStreamer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

pytestmark = pytest.mark.gstreamer


def test_videotestsrc_appsink():
    from enet.deploy.sources import open_source

    src = open_source("gst://videotestsrc num-buffers=5 ! video/x-raw,width=96,height=64 ! videoconvert ! "
                      "video/x-raw,format=RGB ! appsink name=enet_sink", capture="gst")
    rgb, _ = src.read()
    assert rgb.shape == (64, 96, 3) and rgb.dtype == np.uint8
    src.close()


def test_file_source_through_gstreamer(tmp_path):
    import cv2

    from enet.deploy.gst import GstSource
    from enet.deploy.gstpipes import CaptureOptions, source_pipeline
    from enet.deploy.gst import installed_elements
    from enet.deploy.uri import parse_input

    path = tmp_path / "c.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    for i in range(6):
        w.write(np.full((64, 96, 3), 40 * i, np.uint8))
    w.release()
    desc = source_pipeline(parse_input(str(path)), CaptureOptions(), installed_elements())
    src = GstSource(desc, live=False).open()
    n = 0
    while src.read() is not None:
        n += 1
    src.close()
    assert n == 6


@pytest.mark.parametrize("capture", ["gst", "opencv"])
def test_truncated_video_ends_with_a_warning(tmp_path, caplog, capture):
    import logging
    import subprocess
    from importlib.resources import files

    from enet.deploy.sources import open_source

    clip = files("enet.deploy") / "data" / "camvid_0016E5.mp4"
    whole = tmp_path / "faststart.mp4"  # index first, so a cut-off file still opens
    remux = subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "qtdemux", "!", "h264parse",
                            "!", "mp4mux", "faststart=true", "!", "filesink", f"location={whole}"],
                           capture_output=True, timeout=60)
    if remux.returncode != 0:
        pytest.skip("gst-launch-1.0 cannot remux H.264 MP4 here (qtdemux/h264parse/mp4mux)")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    for path, short in ((whole, False), (cut, True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            src = open_source(str(path), capture=capture)
            n = 0
            while src.read() is not None:
                n += 1
            src.close()
        warned = [r.getMessage() for r in caplog.records if "ended early" in r.getMessage()]
        assert (n < 101, len(warned)) == ((True, 1) if short else (False, 0)), (n, warned)


def test_gst_sink_writes_readable_mp4(tmp_path):
    from enet.deploy.sinks import VideoFileSink, _gst_h264_ok

    if not _gst_h264_ok():
        pytest.skip("no GStreamer H.264 encoder (gstreamer1.0-plugins-ugly)")
    import cv2

    sink = VideoFileSink(tmp_path / "g.mp4", fps=10, writer="gst")
    for i in range(8):
        sink.write(np.full((64, 96, 3), 30 * i, np.uint8))
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "g.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 8


@pytest.mark.parametrize("width", [96, 98, 1142])  # rows GStreamer pads: 98 / 2 = 49 chroma bytes, 1142 / 2 = 571
def test_gst_sink_keeps_pictures_at_widths_gstreamer_pads(tmp_path, width):
    from enet.deploy.sinks import VideoFileSink, _gst_h264_ok

    if not _gst_h264_ok():
        pytest.skip("no GStreamer H.264 encoder (gstreamer1.0-plugins-ugly)")
    import cv2

    h = 66
    yy, xx = np.mgrid[0:h, 0:width]
    frames = [np.stack([(xx * 255 // width + 8 * i) % 256, yy * 255 // h, np.full_like(xx, 40 + 20 * i)],
                       axis=-1).astype(np.uint8) for i in range(6)]
    frames.append(np.full((h, width, 3), (128, 64, 128), np.uint8))  # a flat colour: range and matrix
    sink = VideoFileSink(tmp_path / "w.mp4", fps=10, writer="gst")
    for f in frames:
        sink.write(f)
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "w.mp4"))
    got = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        got.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert len(got) == len(frames) and got[0].shape == frames[0].shape
    for want, seen in zip(frames, got):  # smooth ramps survive H.264; a misread stride shears them to noise
        mse = np.mean((want.astype(np.float32) - seen) ** 2)
        assert 10 * np.log10(255 ** 2 / max(mse, 1e-6)) > 20  # about 26-40 dB here; a sheared picture under 10
    assert np.abs(got[-1][h // 2, width // 2].astype(int) - [128, 64, 128]).max() <= 4


def test_gst_sink_refuses_odd_sizes(tmp_path):
    from enet.deploy.errors import SinkError
    from enet.deploy.sinks import VideoFileSink, _gst_h264_ok

    if not _gst_h264_ok():
        pytest.skip("no GStreamer H.264 encoder (gstreamer1.0-plugins-ugly)")
    sink = VideoFileSink(tmp_path / "odd.mp4", fps=10, writer="gst")
    with pytest.raises(SinkError, match="even height and width"):
        sink.write(np.zeros((65, 96, 3), np.uint8))
    sink.close()


GST_THEN_RUNTIMES = """
import sys
import numpy as np
from enet.deploy.gst import gst
gst()                        # as enet-run does when it opens a GStreamer source
import onnxruntime           # what choosing the backend imports next
from enet.engine.runtime.backend import open_backend
with open_backend(sys.argv[1], "openvino") as b:
    b.infer(np.zeros(b.input_shape, np.float32))
print("OK")
"""


def test_openvino_runs_after_gstreamer_is_initialised(tiny_checkpoint, tmp_path):
    """OpenVINO aborted the process when onnxruntime was first imported after gi (enet.deploy.gst.gst)."""
    import subprocess
    import sys

    from enet.export.onnx import export_onnx

    pytest.importorskip("openvino")
    pytest.importorskip("onnxruntime")
    model = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx", labels=True).path
    r = subprocess.run([sys.executable, "-c", GST_THEN_RUNTIMES, str(model)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr[-1500:]
