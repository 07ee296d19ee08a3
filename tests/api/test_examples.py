"""Each program in examples/ runs: on a generated clip, or a GStreamer test source; short."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 320x240 frames: a grey sky over a dark road, moving noise."""
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(4):
        f = np.empty((240, 320, 3), np.uint8)
        f[:120], f[120:] = 170, 70
        writer.write(cv2.add(f, rng.integers(0, 30, f.shape, dtype=np.uint8)))
    writer.release()
    assert path.stat().st_size > 0
    return path


def test_camera_loop(clip: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "seg.mp4"
    assert load("camera_loop").main([str(clip), "--no-display", "--frames", "3", "-o", str(out)]) == 0
    assert "3 frames" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (240, 320, 3)


def test_camera_loop_bad_source(tmp_path: Path) -> None:
    assert load("camera_loop").main([str(tmp_path / "none.mp4"), "--no-display"]) == 1


def test_ros2_shaped_messages(clip: Path) -> None:
    ros = load("ros2_publish")
    pub = ros.PrintPublisher("/enet/class_ids")
    assert ros.main([str(clip), "--frames", "2"], publisher=pub) == 0
    assert len(pub.sent) == 2
    msg = pub.sent[0]
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (240, 320, "mono8", 320, 0)
    labels = ros.message_to_labels(msg)
    assert labels.shape == (240, 320) and labels.max() < 11 and len(msg.data) == 240 * 320
    assert msg.header.frame_id == "camera" and msg.header.sec > 0


@pytest.mark.gstreamer
def test_gstreamer_appsink(capsys) -> None:
    app = load("gstreamer_appsink")
    assert app.main(["videotestsrc num-buffers=3 ! video/x-raw,width=322,height=240", "--frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "frame 2: 322x240" in out and "3 frames" in out


def test_camera_loop_without_a_window_says_what_to_do(clip: Path, monkeypatch, capsys) -> None:
    """Issue 29 item 8: headless OpenCV (what enet-rt installs) or no display: one line, what to do instead."""
    loop = load("camera_loop")
    monkeypatch.setenv("DISPLAY", ":99")

    def headless(name):
        raise cv2.error("The function is not implemented. Rebuild the library with GTK+ 2.x")

    monkeypatch.setattr(loop.cv2, "namedWindow", headless)
    assert loop.main([str(clip)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no window support" in err[0] and "--no-display -o seg.mp4" in err[0]
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert loop.main([str(clip)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display here" in err[0]


def test_gstreamer_appsink_without_gi_says_what_to_do(monkeypatch, capsys) -> None:
    """Issue 29 item 17: no raw ModuleNotFoundError; in a venv, the fix is --system-site-packages or the link."""
    app = load("gstreamer_appsink")
    monkeypatch.setitem(sys.modules, "gi", None)  # import gi -> ImportError
    assert app.main(["videotestsrc num-buffers=1", "--frames", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gstreamer_appsink: error: GStreamer's Python bindings")
    if sys.prefix != sys.base_prefix:
        assert "--system-site-packages" in err[0] and "enet.deploy.gst_venv_link" in err[0]


def test_gi_hint_in_a_venv_that_cannot_see_the_system_gi(monkeypatch) -> None:
    """Issue 29 item 17: apt-get is not the advice when python3-gi is installed and the venv is the problem."""
    from enet import _lazy

    monkeypatch.setattr(_lazy, "system_gi", lambda: "/usr/lib/python3/dist-packages/gi")
    monkeypatch.setattr(sys, "base_prefix", "/usr")
    monkeypatch.setattr(sys, "prefix", "/home/me/venv")
    hint = _lazy.install_hint("gi")
    assert "--system-site-packages" in hint and "python -m enet.deploy.gst_venv_link /home/me/venv" in hint
    assert not hint.startswith("apt-get")
    monkeypatch.setattr(_lazy, "system_gi", lambda: None)
    assert _lazy.install_hint("gi").startswith("apt-get install python3-gi")
