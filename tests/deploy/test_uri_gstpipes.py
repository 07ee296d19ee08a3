"""URI parsing and GStreamer pipeline strings (pure)."""

from __future__ import annotations

import pytest

from enet.deploy.gstpipes import (CaptureOptions, csi_pipeline, file_sink_pipeline, rtsp_pipeline,
                                  source_pipeline, udp_sink_pipeline, v4l2_pipeline)
from enet.deploy.uri import UriError, parse_input, parse_output, parse_size

JETSON = frozenset({"nvvidconv", "nvv4l2decoder", "nvv4l2h264enc", "nvarguscamerasrc"})
DESKTOP = frozenset({"x264enc", "decodebin"})


def test_parse_inputs():
    assert parse_input("csi://1").kind == "csi" and parse_input("csi://1").live
    assert parse_input("v4l2://0").location == "/dev/video0"
    assert parse_input("v4l2:///dev/video2").location == "/dev/video2"
    assert parse_input("rtsp://cam.local:554/s").kind == "rtsp"
    assert parse_input("gst://videotestsrc ! appsink").location == "videotestsrc ! appsink"
    f = parse_input("file://clip.mp4", is_dir=lambda p: False)
    assert (f.kind, f.location, f.live) == ("file", "clip.mp4", False)
    assert parse_input("frames/", is_dir=lambda p: True).kind == "folder"
    t = parse_input("test://?size=96x64&frames=5&live=1")
    assert t.live and t.options["frames"] == "5"
    for bad in ("http://x", "csi://a", "gst://videotestsrc ! fakesink", "v4l2://video0", ""):
        with pytest.raises(UriError):
            parse_input(bad)


def test_parse_outputs_and_size():
    assert parse_output("out.mp4").kind == "file"
    assert parse_output("display://0").kind == "display"
    assert parse_output("udp://10.0.0.2:5000").location == "10.0.0.2:5000"
    assert parse_output("rtsp://srv:8554/enet").kind == "rtsp"
    for bad in ("out.txt", "udp://host", "ftp://x/y.mp4"):
        with pytest.raises(UriError):
            parse_output(bad)
    assert parse_size("480x360") == (360, 480)
    with pytest.raises(UriError):
        parse_size("480")


def test_desktop_source_pipelines():
    opts = CaptureOptions()
    p = source_pipeline(parse_input("file://my clip.mp4", is_dir=lambda p: False), opts, DESKTOP)
    assert p == ('filesrc location="my clip.mp4" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! '
                 "appsink name=enet_sink max-buffers=4 drop=false sync=false")
    v = v4l2_pipeline("/dev/video0", CaptureOptions(size=(480, 640), rate=30), DESKTOP)
    assert v.startswith('v4l2src device="/dev/video0" ! video/x-raw,width=640,height=480,framerate=30/1 !')
    assert v.endswith("max-buffers=1 drop=true sync=false")
    assert "jpegdec" in v4l2_pipeline("/dev/video0", CaptureOptions(codec="mjpeg"), DESKTOP)
    assert "decodebin" in rtsp_pipeline("rtsp://h/s", CaptureOptions(), DESKTOP)


def test_jetson_pipelines():
    p = source_pipeline(parse_input("a.mp4", is_dir=lambda p: False), CaptureOptions(codec="h264"), JETSON)
    assert p.split(" ! ")[:5] == ['filesrc location="a.mp4"', "qtdemux", "h264parse", "nvv4l2decoder", "nvvidconv"]
    c = csi_pipeline(0, CaptureOptions(flip=2))
    assert c.startswith("nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720")
    assert "nvvidconv flip-method=2" in c
    r = rtsp_pipeline("rtsp://h/s", CaptureOptions(codec="h265"), JETSON)
    assert "rtph265depay ! h265parse ! nvv4l2decoder" in r
    assert "nvv4l2decoder mjpeg=1" in v4l2_pipeline("/dev/video0", CaptureOptions(codec="mjpeg"), JETSON)
    assert "nvv4l2h264enc" in file_sink_pipeline("o.mp4", 640, 480, 30, JETSON)


def test_sink_pipelines():
    f = file_sink_pipeline("o.mp4", 640, 480, 15, DESKTOP)
    assert "x264enc" in f and "mp4mux" in f and "framerate=15/1" in f
    u = udp_sink_pipeline("10.0.0.2", 5000, 640, 480, 30, DESKTOP)
    assert u.endswith("udpsink host=10.0.0.2 port=5000 sync=false async=false")
    with pytest.raises(UriError):
        file_sink_pipeline("o.mp4", 64, 48, 30, frozenset())
