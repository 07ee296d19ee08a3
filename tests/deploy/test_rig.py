"""Issue 31 items 1-3 (several cameras, one model; no camera holds another hostage) and issue 29 items
4, 5, 15, 20 (enet-run's positionals and sources). Fake sources and predictors where the behaviour is the
pipeline's; the tiny checkpoint where it is the command's. Real RTSP cameras: test_rig_rtsp.py."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pytest
import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

from enet.deploy.cli import main, plan_cameras, split_positionals
from enet.deploy.errors import NoFrameYet, SourceError
from enet.deploy.overlay import Renderer
from enet.deploy.rig import CameraRun, RigPipeline, _Slots
from enet.deploy.rigfile import RigError, default_name, load_rig, parse_toml_subset, unique_names

META = {"classes": ["a", "b", "c"], "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0]], "mean": [0.5] * 3,
        "std": [0.25] * 3}
_GUARD_S = 20.0  # a guard against a hung test, never a measurement


# --------------------------------------------------------------------------- positionals (the rule)


@pytest.mark.parametrize("paths,explicit,want", [
    (["in.mp4"], False, (["in.mp4"], [])),
    (["in.mp4", "out.mp4"], False, (["in.mp4"], ["out.mp4"])),                      # as ever
    (["csi://0", "drive.mp4", "udp://10.0.0.1:5000"], False, (["csi://0"], ["drive.mp4", "udp://10.0.0.1:5000"])),
    (["a.mp4", "b.mp4", "c.mp4", "d.mp4", "http://127.0.0.1:8080"], False,
     (["a.mp4", "b.mp4", "c.mp4", "d.mp4"], ["http://127.0.0.1:8080"])),             # the command
    (["http://@:8080", "a.mp4", "b.mp4", "c.mp4"], False, (["a.mp4", "b.mp4", "c.mp4"], ["http://@:8080"])),
    (["a.mp4", "b.mp4"], True, (["a.mp4", "b.mp4"], [])),                            # with -o: all inputs
    (["a.mp4", "display://0"], False, (["a.mp4"], ["display://0"])),
    (["a.mp4", "b.mp4", "http://@:8080"], False, (["a.mp4", "b.mp4"], ["http://@:8080"])),  # a live view: cameras
    (["a.mp4", "frames/"], False, (["a.mp4", "frames/"], [])),                       # a folder is no output
    (["test://?frames=3", "test://?frames=4"], False, (["test://?frames=3", "test://?frames=4"], [])),
    (["v4l2:///dev/video0", "rtsp://server:8554/seg"], False, (["v4l2:///dev/video0"], ["rtsp://server:8554/seg"])),
])
def test_which_positional_is_an_input(paths, explicit, want):
    assert split_positionals(paths, explicit_outputs=explicit) == want


def test_camera_outputs_and_the_mosaic():
    cams, whole = plan_cameras(["x/front.mp4", "x/rear.mp4"], ["seg_{camera}.mp4", "rig.mp4", "http://@:8080"],
                               None, input_rate=10.0)
    assert [c.name for c in cams] == ["front", "rear"]
    assert [c.outputs for c in cams] == [["seg_front.mp4"], ["seg_rear.mp4"]]
    assert all(c.rate == 10.0 for c in cams) and whole == ["rig.mp4", "http://@:8080"]
    assert plan_cameras(["in.mp4"], ["out.mp4"], None) == ([], ["out.mp4"])  # one camera: today's pipeline
    one, whole = plan_cameras(["in.mp4"], ["out.mp4", "http://@:8080"], None)  # one camera, live view
    assert one[0].outputs == ["out.mp4"] and whole == ["http://@:8080"]


def test_camera_names():
    assert [default_name(u, i) for i, u in enumerate(["a/front.mp4", "rtsp://10.0.0.1/live/rear", "v4l2:///dev/video2",
                                                      "csi://1", "test://?fps=10", "frames/"])] == \
        ["front", "rear", "video2", "csi1", "cam4", "frames"]
    assert unique_names(["a", "a", "b", "a"]) == ["a", "a-2", "b", "a-3"]


# --------------------------------------------------------------------------- rig files

RIG = r"""# a car with two cameras
outputs = ["http://@:8080", "rig.mp4"]   # live view and mosaic

[camera.front]
uri = "front.mp4"          # relative to this file
size = "480x360"
rate = 10
output = "front_seg.mp4"

[camera.rear]
uri = 'rtsp://10.0.0.12/stream'
rate = 12.5
size = "640x480 \u00e4 \"q\" \\ caméra"
output = ["rear.mp4", "udp://10.0.0.2:5000"]
"""


def test_rig_file(tmp_path):
    (tmp_path / "rig.toml").write_text(RIG)
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover - 3.8-3.10 read every rig file with parse_toml_subset
        pass
    else:
        assert parse_toml_subset(RIG) == tomllib.loads(RIG)  # the 3.8-3.10 reader reads what tomllib reads
    cams, outputs = load_rig(tmp_path / "rig.toml")
    assert [(c.name, c.size, c.rate) for c in cams] == [("front", "480x360", 10.0),
                                                       ("rear", '640x480 \u00e4 "q" \\ caméra', 12.5)]
    assert cams[0].uri == str(tmp_path / "front.mp4") and cams[1].uri == "rtsp://10.0.0.12/stream"
    assert cams[0].outputs == [str(tmp_path / "front_seg.mp4")]
    assert cams[1].outputs == [str(tmp_path / "rear.mp4"), "udp://10.0.0.2:5000"]
    assert outputs == ["http://@:8080", str(tmp_path / "rig.mp4")]


@pytest.mark.parametrize("text,match", [
    ("[camera.a]\nsize = '96x64'\n", "has no uri"),
    ("[camera.a]\nuri = 'a.mp4'\nfps = 10\n", "unknown key 'fps'"),
    ("outputs = []\n", "names no camera"),
    ("[camera.a]\nuri = 'a.mp4'\nrate = -1\n", "rate must be positive"),
    ("[camera.a]\nuri = a.mp4\n", "not valid TOML.*line 2"),
])
def test_bad_rig_files_fail_in_one_line(tmp_path, text, match):
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(RigError, match=match):
        load_rig(tmp_path / "r.toml")
    if "uri = a.mp4" in text:
        with pytest.raises(RigError, match="cannot read value"):
            parse_toml_subset(text)


# --------------------------------------------------------------------------- the command line


def _run(tmp_path, capsys, argv, model):
    rc = main([*argv, "--model", str(model), "--backend", "torch", "--writer", "opencv", "--no-display", "-q"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_output_after_the_options(tmp_path, tiny_checkpoint, capsys):
    """Issue 29.4: enet-run rec.mp4 --no-display out.mp4."""
    out = tmp_path / "out.mp4"
    rc = main(["test://?size=96x64&frames=4", "--no-display", str(out), "--model", str(tiny_checkpoint),
               "--backend", "torch", "-q", "--writer", "opencv"])
    assert rc == 0 and out.is_file()


@pytest.mark.parametrize("form", ["two", "dash-o", "camera", "rig"])
def test_an_output_that_is_an_input_is_refused(tmp_path, tiny_checkpoint, capsys, form):
    """Issue 29.5, in every form: nothing is opened, the recording is untouched, exit 2."""
    rec = tmp_path / "rec.mp4"
    rec.write_bytes(b"precious")
    other = tmp_path / "other.mp4"
    other.write_bytes(b"x")
    argv = {"two": [str(rec), str(rec)],
            "dash-o": [str(rec), "-o", str(rec)],
            "camera": [str(rec), str(other), "-o", str(tmp_path / "{camera}.mp4")],
            "rig": ["--rig", str(tmp_path / "r.toml")]}[form]
    (tmp_path / "r.toml").write_text('[camera.rec]\nuri = "rec.mp4"\noutput = "rec.mp4"\n')
    rc, _, err = _run(tmp_path, capsys, argv, tiny_checkpoint)
    assert rc == 2 and "is the input" in err and "Traceback" not in err
    assert rec.read_bytes() == b"precious"


def test_one_output_for_two_cameras_is_refused(tmp_path, tiny_checkpoint, capsys):
    rig = tmp_path / "r.toml"
    rig.write_text('[camera.a]\nuri = "test://?frames=3"\noutput = "x.mp4"\n'
                   '[camera.b]\nuri = "test://?frames=3"\noutput = "x.mp4"\n')
    rc, _, err = _run(tmp_path, capsys, ["--rig", str(rig)], tiny_checkpoint)
    assert rc == 2 and "named twice" in err


@pytest.mark.parametrize("text", ["0", "/dev/video0"])
def test_a_camera_number_suggests_v4l2(tmp_path, tiny_checkpoint, capsys, text, monkeypatch):
    """Issue 29.20: enet-run 0 / enet-run /dev/video0."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([text, "--no-display"])
    assert exc.value.code == 2 and "v4l2:///dev/video0" in capsys.readouterr().err


def test_the_api_says_it_too(tmp_path, monkeypatch):
    from enet.deploy.sources import open_source

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="v4l2:///dev/video0"):
        open_source("0")


def test_no_output_and_no_display_is_said(tiny_checkpoint, capsys):
    """Issue 29.20: the result goes nowhere, in a warning before the run."""
    assert main(["test://?size=96x64&frames=2", "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--no-display"]) == 0
    assert "goes nowhere" in capsys.readouterr().err


def test_a_rig_run_end_to_end(tmp_path, tiny_checkpoint, capsys):
    """Three cameras, per-camera videos, a mosaic, stats records with the camera's name, a line per camera."""
    stats = tmp_path / "s.jsonl"
    rc, out, err = _run(tmp_path, capsys, [
        "test://?size=96x64&frames=6", "test://?size=96x64&frames=4", "test://?size=128x96&frames=5",
        "-o", str(tmp_path / "seg_{camera}.mp4"), "-o", str(tmp_path / "mosaic.mp4"), "--stats", str(stats)],
        tiny_checkpoint)
    assert rc == 0, err
    recs = [json.loads(line) for line in stats.read_text().splitlines()]
    by = {c: [r["source_frame"] for r in recs if r["camera"] == c] for c in ("cam0", "cam1", "cam2")}
    assert by == {"cam0": list(range(6)), "cam1": list(range(4)), "cam2": list(range(5))}  # files: every frame
    for name in ("seg_cam0.mp4", "seg_cam1.mp4", "seg_cam2.mp4", "mosaic.mp4"):
        assert (tmp_path / name).stat().st_size > 0
    assert "camera cam1: 4 frames out" in out and "camera cam2: 5 frames out" in out


# --------------------------------------------------------------------------- the live view (a fake)


class FakeLiveView:
    made: list[FakeLiveView] = []

    def __init__(self, host, port, *, token=None, cameras, classes, palette):
        self.args = (host, port, token, list(cameras), list(classes), list(palette))
        self.published: list[tuple[str, tuple, float, dict, list]] = []
        self.states: list[tuple[str, str]] = []
        self.closed = False
        self.url = f"http://{host}:{port}/"
        FakeLiveView.made.append(self)

    def start(self):
        pass

    def publish(self, camera, bgr, *, captured_at, stats, fractions):
        assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3
        self.published.append((camera, bgr.shape, captured_at, dict(stats), list(fractions)))

    def set_state(self, camera, state):
        self.states.append((camera, state))

    def close(self):
        self.closed = True


def _fake_parse(text):
    from urllib.parse import parse_qs, urlsplit

    u = urlsplit(text)
    host = "0.0.0.0" if u.netloc.startswith("@") else (u.hostname or "127.0.0.1")
    return host, u.port, (parse_qs(u.query).get("token") or [None])[0]


def test_live_view_gets_every_camera_and_the_stats(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import enet.deploy.rigrun as rigrun

    FakeLiveView.made.clear()
    monkeypatch.setattr(rigrun, "live_view_api", lambda: (FakeLiveView, _fake_parse))
    stats = tmp_path / "s.jsonl"
    rc, out, err = _run(tmp_path, capsys, ["test://?size=96x64&frames=5", "test://?size=96x64&frames=3",
                                           "http://@:8080?token=abc", "--stats", str(stats)], tiny_checkpoint)
    assert rc == 0, err
    (view,) = FakeLiveView.made
    assert view.args[:4] == ("0.0.0.0", 8080, "abc", ["cam0", "cam1"]) and view.args[4] == META_CLASSES()
    assert view.closed
    recs = [json.loads(line) for line in stats.read_text().splitlines()]
    for cam in ("cam0", "cam1"):
        pub = [p for p in view.published if p[0] == cam]
        mine = [r for r in recs if r["camera"] == cam]
        assert len(pub) == len(mine) == (5 if cam == "cam0" else 3)
        # the numbers the page shows are the run's: frames, drops, fps of --stats
        assert [p[3]["frames"] for p in pub] == list(range(1, len(mine) + 1))
        assert pub[-1][3]["fps"] == mine[-1]["fps"] and pub[-1][3]["dropped"] == mine[-1]["dropped"]
        assert [round(f, 5) for f in pub[-1][4]] == list(mine[-1]["area"].values())
        assert pub[0][2] == pytest.approx(mine[0]["timestamp"], abs=1e-5)
        assert view.states[0] == (cam, "live") or (cam, "live") in view.states
        assert view.states[-1][1] == "ended" and (cam, "ended") in view.states


def META_CLASSES():  # noqa: N802 - the tiny checkpoint's classes (CamVid)
    from enet.camvid import default_metadata

    return list(default_metadata()["classes"])


# --------------------------------------------------------------------------- no camera holds another hostage


class FakePredictor:
    size, name, num_classes, meta = (16, 24), "fake", 3, META

    def __init__(self, concurrency=1, batch=1):
        self.concurrency, self.batch = concurrency, batch
        self.calls: list[int] = []

    def __call__(self, x):
        self.calls.append(x.shape[0])
        return np.zeros((x.shape[0], 16, 24), np.int64)


class TickSource:
    """A live camera: a frame every ``period`` s (real time, short) until ``n``; ``stall_after``: then silent
    (NoFrameYet) and reported as reconnecting, until ``resume`` is set."""

    live, fps, dropped, last_age_s, reconnects = True, 50.0, 0, None, 0

    def __init__(self, name, n, period=0.02, stall_after=None):
        self.name, self.n, self.period, self.stall_after = name, n, period, stall_after
        self.i = 0
        self.state = "live"
        self.resume = threading.Event()
        self.stalled = threading.Event()

    def read(self):
        if self.stall_after is not None and self.i >= self.stall_after and not self.resume.is_set():
            self.state = "reconnecting"
            self.stalled.set()
            time.sleep(0.02)
            raise NoFrameYet
        if self.i >= self.n:
            return None
        self.state = "live"
        time.sleep(self.period)
        self.i += 1
        return np.full((16, 24, 3), self.i % 255, np.uint8), None

    def close(self):
        pass


def test_a_stalled_camera_never_stops_the_others():
    """Item 3: while one camera is gone (reconnecting) the others keep going, its slot is skipped, and it is
    reported as reconnecting, then live when it returns."""
    fast = TickSource("fast", 60)
    gone = TickSource("gone", 200, stall_after=5)
    view = FakeLiveView("127.0.0.1", 1, cameras=["fast", "gone"], classes=["a"], palette=[(0, 0, 0)])
    cams = [CameraRun("fast", fast), CameraRun("gone", gone)]
    rp = RigPipeline(cams, FakePredictor(), renderer=Renderer(META["classes"], META["palette"], hud=True),
                     live_view=view)
    out = []
    rp.on_frame = lambda n, rec: out.append(rec["camera"])
    done = threading.Event()

    def later():
        assert gone.stalled.wait(_GUARD_S)
        while out.count("fast") < 40 and not done.is_set():  # the fast one goes on while the other is gone
            time.sleep(0.01)
        gone.resume.set()
        gone.n = gone.i + 5

    th = threading.Thread(target=later, daemon=True)
    th.start()
    s = rp.run()
    done.set()
    th.join(_GUARD_S)
    assert out.count("fast") == 60 and out.count("gone") == 10
    assert ("gone", "reconnecting") in view.states
    assert view.states.index(("gone", "reconnecting")) < len(view.states) - 1 - view.states[::-1].index(("gone", "live"))
    assert {c["name"]: c["frames"] for c in s.cameras} == {"fast": 60, "gone": 10}


def test_a_batch_takes_what_is_ready_within_a_bounded_wait():
    """A slow camera never makes a fast one wait for a batch to fill: take() returns the ready frames
    after at most its wait, round robin over the cameras that have one."""
    from enet.deploy.pipeline import Packet

    cams = [CameraRun(n, TickSource(n, 1)) for n in ("a", "b", "c")]
    slots = _Slots(cams)
    abort = threading.Event()

    def pkt(i):
        p = Packet(0, np.zeros((2, 2, 3), np.uint8), None, 0.0, 0.0)
        p.camera = i
        return p

    slots.put(0, pkt(0), abort)
    t = time.monotonic()
    got = slots.take(3, 0.05, abort)
    assert [p.camera for p in got] == [0] and time.monotonic() - t < _GUARD_S
    for i in (0, 1, 2):
        slots.put(i, pkt(i), abort)
    assert [p.camera for p in slots.take(2, 0.0, abort)] == [1, 2]  # round robin: after the one served last
    assert [p.camera for p in slots.take(2, 0.0, abort)] == [0]
    slots.put(1, pkt(1), abort)
    slots.put(1, pkt(1), abort)  # live: the newer frame replaces the unread one, counted
    assert cams[1].slot_dropped == 1
    for i in range(3):
        slots.end(i)
    assert len(slots.take(3, 0.0, abort)) == 1 and slots.take(3, 0.0, abort) is None


def test_a_batching_predictor_gets_several_cameras_at_once():
    cams = [CameraRun(n, TickSource(n, 8, period=0.01)) for n in ("a", "b", "c", "d")]
    pred = FakePredictor(batch=4)
    s = RigPipeline(cams, pred, renderer=Renderer(META["classes"], META["palette"]), batch_wait_s=0.05).run()
    assert s.frames == sum(c["frames"] for c in s.cameras) and s.frames > 0
    assert max(pred.calls) > 1  # several cameras in one call
    assert all(n <= 4 for n in pred.calls)


def test_a_camera_given_up_on_ends_alone_and_fails_the_run():
    class Lost(TickSource):
        def read(self):
            if self.i >= 3:
                self.state = "ended"
                raise SourceError("no frame from lost for 7.1 s (refused); gave up after retrying for 5.0 s")
            return super().read()

    cams = [CameraRun("ok", TickSource("ok", 20)), CameraRun("lost", Lost("lost", 100))]
    rp = RigPipeline(cams, FakePredictor(), renderer=Renderer(META["classes"], META["palette"]))
    with pytest.raises(Exception, match="camera lost: no frame from lost for 7.1 s"):
        rp.run()
    assert {c["name"]: c["frames"] for c in rp.summary.cameras} == {"ok": 20, "lost": 3}


# --------------------------------------------------------------------------- item 15: a corrupt frame


def test_a_corrupt_png_is_skipped_and_counted(tmp_path, caplog, tiny_checkpoint, capsys):
    from PIL import Image

    from enet.deploy.sources import FolderSource

    for i in range(5):
        Image.fromarray(np.full((64, 96, 3), 40 * i, np.uint8)).save(tmp_path / f"f{i}.png")
    (tmp_path / "f2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with caplog.at_level(logging.WARNING):
        src = FolderSource(tmp_path, skip_bad=True).open()  # as enet-run opens a folder
        n = 0
        while src.read() is not None:
            n += 1
    assert n == 4 and src.dropped == 1
    assert any("f2.png" in r.getMessage() for r in caplog.records)
    rc = main([str(tmp_path), "--model", str(tiny_checkpoint), "--backend", "torch", "--no-display", "-q"])
    assert rc == 0 and "dropped 1 of 5 captured" in capsys.readouterr().out  # in the summary's drops
    for p in tmp_path.glob("*.png"):
        p.write_bytes(b"not an image")
    with pytest.raises(SourceError, match="none of the 5 images"):
        FolderSource(tmp_path, skip_bad=True).open()
    with pytest.raises(SourceError, match="cannot decode image"):  # enet-batch's reading: a bad frame fails
        FolderSource(tmp_path).open()


def test_bounded_retry_counts_from_the_last_frame():
    """Item 29.16 / 31.2: the give-up message states the real time since the last frame, and the retry
    ends within its bound even when an attempt itself waits (each attempt gets what is left)."""
    from enet.deploy.sources import retry_open

    waits = []

    def opener(timeout_s=None):
        waits.append(timeout_s)
        time.sleep(min(timeout_s, 0.05))
        raise SourceError("silent")

    opener.takes_timeout = True
    t = time.monotonic()
    with pytest.raises(SourceError, match=r"no frame from cam for [2-9]\.[0-9] s \(silent\); gave up after "
                                          r"retrying for [0-9.]+ s \(--reconnect-timeout 0.3"):
        retry_open(opener, "cam", stop=threading.Event(), give_up_s=0.3, since=time.monotonic() - 2.0,
                   delays=lambda: iter([0.01] * 1000))
    assert time.monotonic() - t < _GUARD_S and all(w is not None and w <= 10.0 for w in waits)


def test_openvino_batches_a_batch_1_model(tmp_path, tiny_checkpoint):
    """The rig's batch: OpenVINO reshapes the static batch-1 ONNX to 1..N frames; results are those of N
    single calls (exactly: the same kernels per frame)."""
    pytest.importorskip("openvino")
    from enet.engine.runtime.ov_backend import OvBackend
    from enet.export.onnx import export_onnx

    model = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx").path
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 96)).astype(np.float32)
    with OvBackend(model, threads=1) as one, OvBackend(model, threads=1, max_batch=3) as many:
        want = np.concatenate([one.infer(x[i:i + 1]) for i in range(3)])
        np.testing.assert_allclose(many.infer(x), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(many.infer(x[:2]), want[:2], rtol=1e-5, atol=1e-5)  # fewer cameras ready
        with pytest.raises(Exception, match="does not match"):
            many.infer(np.zeros((4, 3, 64, 96), np.float32))


def test_a_rig_on_openvino_batches_its_cameras(tmp_path, tiny_checkpoint, capsys):
    pytest.importorskip("openvino")
    stats = tmp_path / "s.jsonl"
    rc = main(["test://?size=96x64&frames=6", "test://?size=96x64&frames=6", "--model", str(tiny_checkpoint),
               "--backend", "openvino", "--no-display", "--stats", str(stats), "--cache-dir", str(tmp_path),
               "--batch", "2"])
    captured = capsys.readouterr()
    assert rc == 0 and "up to 2 frames per inference" in captured.err
    assert len(stats.read_text().splitlines()) == 12


@pytest.mark.parametrize("capture", ["opencv", pytest.param("gst", marks=pytest.mark.gstreamer)])
def test_a_corrupt_packet_in_a_video_does_not_stop_it(tmp_path, capture):
    """Item 29.15, video: 3 kB of garbage in the middle of the clip; the decoder conceals the damaged
    packets and every frame is still delivered (the run goes on to the end)."""
    from importlib.resources import files

    from enet.deploy.sources import open_source

    data = bytearray((files("enet.deploy") / "data" / "camvid_0016E5.mp4").read_bytes())
    mid = len(data) // 2
    data[mid:mid + 3000] = bytes((b * 7 + 13) % 256 for b in data[mid:mid + 3000])
    clip = tmp_path / "corrupt.mp4"
    clip.write_bytes(bytes(data))
    src = open_source(str(clip), capture=capture)
    n = 0
    while src.read() is not None:
        n += 1
    src.close()
    assert n >= 90  # 101 in the clip; a decoder may drop a damaged frame, never the rest
