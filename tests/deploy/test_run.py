"""End-to-end runs of enet-run / enet-demo with the tiny checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

from enet.deploy.cli import RunConfig, main, run


def _count(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))


@pytest.mark.parametrize("writer", ["opencv", "auto"])
def test_end_to_end_video_and_stats(tmp_path, tiny_checkpoint, writer):
    out, stats = tmp_path / "o.mp4", tmp_path / "s.jsonl"
    rc = main(["test://?size=96x64&frames=12", str(out), "--model", str(tiny_checkpoint), "--backend", "torch",
               "--stats", str(stats), "--visualize", "overlay,mask", "--writer", writer, "--no-display", "-q"])
    assert rc == 0
    n, w = _count(out)
    assert n == 12 and w > 2 * 96
    recs = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(recs) == 12 and abs(sum(recs[0]["area"].values()) - 1) < 1e-3
    assert {"capture", "preprocess", "infer", "postprocess", "render", "total"} <= set(recs[0]["latency_ms"])
    assert not list(tmp_path.glob(".*partial*"))


def test_max_frames_and_errors(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "new" / "o.mp4"  # missing folders are created (docs/cli.md)
    stats = tmp_path / "new2" / "s.jsonl"
    assert main(["test://?frames=50", str(out), "--model", str(tiny_checkpoint), "--backend", "torch",
                 "--frames", "5", "--writer", "opencv", "--no-display", "--stats", str(stats), "-q"]) == 0
    assert _count(out)[0] == 5 and len(stats.read_text().splitlines()) == 5
    assert main([str(tmp_path / "none.mp4"), "--model", str(tiny_checkpoint), "-q"]) == 1
    with pytest.raises(SystemExit) as exc:  # not a multiple of 8: a bad command line (README "Exit codes")
        main(["test://?frames=3", "--model", str(tiny_checkpoint), "--backend", "torch", "--size", "100x60", "-q"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("enet-run: error:") for line in err) and "Traceback" not in "".join(err)


def test_auto_takes_the_fastest_cpu_backend(tmp_path, tiny_checkpoint):
    pytest.importorskip("onnxruntime")
    from enet._lazy import available
    from enet.engine.runtime.cpu_choice import ort_has_cuda

    s = run(RunConfig(input="test://?frames=9", model=str(tiny_checkpoint), backend="auto",
                      cache_dir=str(tmp_path), stats=str(tmp_path / "s.jsonl")))
    want = "ort-cuda" if ort_has_cuda() else "openvino" if available("openvino") else "ort-fast"
    assert s.frames == 9 and s.backend.startswith(want)
    assert list(tmp_path.glob("*.onnx"))
    recs = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["source_frame"] for r in recs] == list(range(9))  # in order, however many inference threads


@pytest.mark.parametrize("kind,streams", [("openvino", 2), ("ort-fast", None), ("ort-fast", 2), ("ort", 2)])
def test_onnx_cpu_backends_in_the_pipeline(tmp_path, tiny_checkpoint, kind, streams):
    pytest.importorskip("openvino" if kind == "openvino" else "onnxruntime")
    s = run(RunConfig(input="test://?frames=7", model=str(tiny_checkpoint), backend=kind, streams=streams,
                      cache_dir=str(tmp_path), threads=2))
    assert s.frames == 7 and s.backend.startswith(kind)


@pytest.mark.parametrize("live", [False, True])
def test_cpu_streams_default_to_one_on_every_cpu_for_a_live_camera(tmp_path, tiny_checkpoint, live):
    pytest.importorskip("openvino")
    from enet.cpus import usable_cpus
    from enet.deploy.backends import open_predictor

    ctx, _ = open_predictor(str(tiny_checkpoint), backend="openvino", cache_dir=str(tmp_path), live=live)
    backend = ctx._backend
    if live:  # one frame at a time arrives: each finishes sooner on every CPU
        assert backend.concurrency == 1 and backend._threads == usable_cpus()
    else:     # a file read as fast as possible: two frames at once when there are 2+ CPUs
        assert backend.concurrency == (2 if usable_cpus() >= 2 else 1)


def test_camera_pipeline_keeps_onnx_runtime_threads_from_spinning(tmp_path, tiny_checkpoint):
    pytest.importorskip("onnxruntime")
    from enet.deploy.backends import open_predictor

    ctx, _ = open_predictor(str(tiny_checkpoint), backend="ort-fast", cache_dir=str(tmp_path), live=True)
    assert ctx._backend._spin is False  # capture, rendering and encoding share the cores
    with ctx as predictor:
        assert predictor is not None
        so = ctx._backend._session.get_session_options()
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_sigterm_finalises_video(tmp_path, tiny_checkpoint):
    out = tmp_path / "live.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "enet.deploy.cli", "test://?size=96x64&fps=20&live=1", str(out),
                             "--model", str(tiny_checkpoint), "--backend", "torch", "--writer", "opencv",
                             "--no-display"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".*partial*")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # 128 + SIGTERM, after finalising (README "Exit codes")
    assert _count(out)[0] > 0
    assert "frames out" in stdout and "stopped by SIGTERM" in stdout  # the same summary as any other end


@pytest.mark.slow
def test_soak_memory_flat(tmp_path, tiny_checkpoint):
    class Fast:
        """A stand-in model: labels from the input, no weights (the soak tests the pipeline)."""

        size, name = (64, 96), "fake"
        meta = {"classes": [f"c{i}" for i in range(11)], "palette": [[i * 20, 0, 0] for i in range(11)],
                "mean": [0.5] * 3, "std": [0.25] * 3}
        num_classes = 11

        def __call__(self, x):
            return (np.abs(x[:, 0]) * 4).astype(np.int64) % 11

    from enet.deploy.overlay import Renderer
    from enet.deploy.pipeline import Pipeline
    from enet.deploy.sinks import StatsWriter, VideoFileSink
    from enet.deploy.sources import PatternSource

    rss = []

    def on_frame(n, _rec):
        if n % 250 == 0:
            with open("/proc/self/statm") as f:
                rss.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))

    p = Pipeline(PatternSource(size=(64, 96), frames=3000).open(), Fast(),
                 sinks=[VideoFileSink(tmp_path / "soak.mp4", writer="opencv")],
                 renderer=Renderer(Fast.meta["classes"], Fast.meta["palette"], modes=("overlay", "mask")),
                 stats=StatsWriter(tmp_path / "soak.jsonl"), on_frame=on_frame)
    s = p.run()
    assert s.frames == 3000
    growth = rss[-1] - rss[1]
    assert growth < 20e6, f"RSS grew {growth / 1e6:.1f} MB over {s.frames} frames"


@pytest.mark.camvid
def test_demo_on_camvid(tmp_path, tiny_checkpoint, capsys):
    from enet.deploy.demo import main as demo

    rc = demo(["--model", str(tiny_checkpoint), "--frames", "6", "-o", str(tmp_path), "--backend", "torch", "-q"])
    assert rc == 0
    assert _count(tmp_path / "enet_demo.mp4")[0] == 6
    assert (tmp_path / "contact_sheet.png").stat().st_size > 1000
    assert "fps" in capsys.readouterr().out


def test_demo_without_model_one_line(tmp_path, capsys, monkeypatch):
    from enet.deploy.demo import main as demo

    monkeypatch.setenv("ENET_MODEL", str(tmp_path / "nope.pth"))
    assert demo(["-o", str(tmp_path)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_demo_falls_back_to_bundled_clip(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    from enet.deploy.demo import BUNDLED_CLIP
    from enet.deploy.demo import main as demo

    assert BUNDLED_CLIP.is_file(), "the bundled demo clip is missing from the package"
    monkeypatch.setenv("ENET_CAMVID", str(tmp_path / "no-camvid"))
    out = tmp_path / "out"
    rc = demo(["--model", str(tiny_checkpoint), "--frames", "4", "-o", str(out), "--backend", "torch", "-q"])
    assert rc == 0
    assert "bundled clip" in capsys.readouterr().out
    assert _count(out / "enet_demo.mp4")[0] == 4


def test_demo_with_explicit_missing_camvid_one_line(tmp_path, tiny_checkpoint, capsys):
    from enet.deploy.demo import main as demo

    rc = demo(["--model", str(tiny_checkpoint), "--data-root", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CamVid not found" in err[0]
