"""Overlay, sources (folder, pattern, OpenCV, reconnect), queues."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from enet.deploy.errors import SourceDisconnected, SourceError
from enet.deploy.overlay import Renderer, class_fractions, colorize, legend_layout, legend_panel, palette_array
from enet.deploy.pipeline import LatestSlot
from enet.deploy.sources import FolderSource, OpenCVSource, ReconnectingSource, open_source


def test_overlay_render_even_and_colours():
    pal = palette_array([[255, 0, 0], [0, 255, 0]], 3)
    labels = np.array([[0, 1], [1, 2]], dtype=np.uint8)
    assert colorize(labels, pal)[0, 1].tolist() == [0, 255, 0]
    assert class_fractions(labels, 3).tolist() == [0.25, 0.5, 0.25]
    r = Renderer(["a", "b", "c"], [[255, 0, 0], [0, 255, 0], [0, 0, 255]], modes=("overlay", "mask"))
    out = r.render(np.zeros((63, 95, 3), np.uint8), np.ones((8, 12), np.uint8), hud_lines=["x"])
    assert out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0 and out.shape[1] > 2 * 95
    assert out[40, 95 + 50].tolist() == [0, 255, 0]  # mask panel coloured from the palette


_CITYSCAPES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
               "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
               "bicycle"]
_CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
           "Bicyclist"]


@pytest.mark.parametrize("classes", [_CAMVID, _CITYSCAPES, ["background", "temporary obstacle 7"],
                                     ["free", "x" * 200]])
@pytest.mark.parametrize("height", [176, 240, 360, 720])
def test_legend_labels_fit_their_panel(classes: list[str], height: int) -> None:
    import cv2

    width, scale, names = legend_layout(height, classes)
    assert width <= max(height, round(height * 0.5), 64)
    row = height / (len(classes) + 0.5)
    sw = max(2, min(int(row * 0.6), height // 15))
    for full, name in zip(classes, names):
        text_w = cv2.getTextSize(f"{name} 100%", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
        assert 8 + sw + text_w + 4 <= width, (name, width)
        assert name == full or (name.endswith("...") and full.startswith(name[:-3]))
    assert names[:1] == classes[:1]  # short names are never cut
    pal = palette_array([], len(classes))
    panel = legend_panel(height, classes, pal, np.full(len(classes), 1.0))
    assert panel.shape == (height, width, 3)  # the same size every frame: from the names alone


def test_latest_slot_drops_stale():
    s = LatestSlot()
    for i in range(5):
        s.put(i)
    assert s.get(timeout=0.1) == 4 and s.dropped == 4


def _video(path, n=7, size=(64, 96), fourcc="MJPG"):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (size[1], size[0]))
    for i in range(n):
        w.write(np.full((size[0], size[1], 3), i * 30, np.uint8))
    w.release()
    return path


def test_opencv_source_counts_frames(tmp_path):
    src = open_source(str(_video(tmp_path / "c.avi")), capture="opencv")
    n = 0
    while src.read() is not None:
        n += 1
    src.close()
    assert n == 7


def test_bad_inputs_fail_in_one_line(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError) as e:
        open_source(str(junk))
    assert "\n" not in str(e.value)
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path).open()


@pytest.mark.camvid
def test_folder_source_camvid(camvid_root):
    src = FolderSource(camvid_root / "val").open()
    rgb, pts = src.read()
    assert rgb.shape == (360, 480, 3) and rgb.dtype == np.uint8 and src.frame_count == 101


class _Flaky:
    """Delivers 2 frames then disconnects."""

    live, fps, frame_count, name, last_age_s, dropped = True, 30.0, None, "flaky", None, 0

    def __init__(self):
        self.n = 0

    def read(self):
        self.n += 1
        if self.n > 2:
            raise SourceDisconnected("gone")
        return np.zeros((4, 4, 3), np.uint8), None

    def close(self):
        pass


def test_reconnect_with_backoff():
    attempts = []

    def opener():
        attempts.append(1)
        if len(attempts) < 3:
            raise SourceError("camera not there")
        return _Flaky()

    src = ReconnectingSource(opener, _Flaky(), stop=threading.Event(), delays=lambda: iter([0.0] * 100))
    got = [src.read() is not None for _ in range(4)]
    assert all(got) and len(attempts) == 3 and src.reconnects == 1


def test_reconnect_gives_up_on_stop():
    stop = threading.Event()
    stop.set()
    src = ReconnectingSource(lambda: _Flaky(), _Flaky(), stop=stop)
    assert src.read() is None


def test_stats_lines_are_written_in_place_and_only_with_a_frame(tmp_path):
    """`tail -f` follows the stats file during a run; a run without a frame leaves no file."""
    import json

    from enet.deploy.sinks import StatsWriter

    empty = StatsWriter(tmp_path / "none.jsonl")
    empty.close()
    assert list(tmp_path.iterdir()) == []
    w = StatsWriter(tmp_path / "s.jsonl")
    w.write({"frame": 0})
    assert json.loads((tmp_path / "s.jsonl").read_text()) == {"frame": 0}  # flushed, under its own name
    w.write({"frame": 1})
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]


def test_reconnect_gives_up_after_the_timeout():
    """One policy for live inputs: retry with backoff for --reconnect-timeout seconds, then fail in one line."""
    def opener():
        raise SourceError("connection refused")

    src = ReconnectingSource(opener, _Flaky(), stop=threading.Event(), delays=lambda: iter([0.01] * 1000),
                             give_up_s=0.05)
    src.last_frame_at -= 3.0  # the last frame came 3 s ago: the message counts from it (issue 29.16)
    src._drop("test")
    with pytest.raises(SourceError, match=r"no frame from flaky for [3-9]\.[0-9] s .*connection refused.*"
                                          r"retrying for [0-9.]+ s \(--reconnect-timeout 0.05"):
        src.read()
    assert src.state == "ended"


def test_argmax_classes_is_numpys_first_maximum():
    from enet.deploy.pipeline import argmax_classes, to_labels

    rng = np.random.default_rng(0)
    y = rng.standard_normal((11, 37, 53)).astype(np.float32)
    y[3, :5] = y[7, :5] = y[:, :5].max(0) + 1.0  # exact ties: the first class wins
    y[:, -1] = 0.0                               # every class tied
    np.testing.assert_array_equal(argmax_classes(y), y.argmax(0).astype(np.uint8))
    np.testing.assert_array_equal(to_labels(y[None]), y.argmax(0))
    assert to_labels(np.full((1, 4, 5), 9, np.int64)).dtype == np.uint8


@pytest.mark.parametrize("live", [False, True])
def test_concurrent_inference_outputs_frames_in_order(live):
    """Two inference threads finish frames out of order; the output stage puts them back in order."""
    import time

    from enet.deploy.overlay import Renderer
    from enet.deploy.pipeline import Pipeline
    from enet.deploy.sources import PatternSource

    class Slow:
        size, name, concurrency, num_classes = (16, 24), "fake", 2, 3
        meta = {"classes": ["a", "b", "c"], "palette": [[0, 0, 0]] * 3, "mean": [0.5] * 3, "std": [0.25] * 3}

        def __init__(self):
            self.running, self.peak, self.lock = 0, 0, threading.Lock()

        def __call__(self, x):
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(0.03 if int(abs(x).sum() * 10) % 2 else 0.001)  # uneven: later frames overtake
            with self.lock:
                self.running -= 1
            return np.zeros((1, 16, 24), np.int64)

    seen = []
    pred = Slow()
    src = PatternSource(size=(16, 24), frames=None if live else 24, fps=200.0, live=live).open()
    p = Pipeline(src, pred, renderer=Renderer(Slow.meta["classes"], Slow.meta["palette"], legend=False),
                 max_frames=24 if live else None, on_frame=lambda n, rec: seen.append(rec["source_frame"]))
    s = p.run()
    assert p.workers == 2 and s.frames == 24 and pred.peak == 2
    assert seen == sorted(seen) and len(set(seen)) == 24
    if not live:
        assert seen == list(range(24))
