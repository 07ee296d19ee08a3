"""enet-batch: inputs, the output folder, and real runs on a local Ray and a 2-node loopback cluster.

The Ray runs are few and share their outputs (a module fixture): each start of
Ray costs seconds on a loaded 2-core machine. No wall-clock asserts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401 - before gi (see enet.deploy.gst.gst)

from enet.errors import EnetError

RAY_TIMEOUT_S = 600  # a local Ray run takes ~30 s here idle; minutes when the 2 cores are saturated


# --------------------------------------------------------------------------- generated recordings


def write_clip(path: Path, frames: int, *, size=(80, 120), seed=0) -> Path:
    """A short MPEG-4 clip of moving coloured blocks (OpenCV's writer)."""
    import cv2

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    base = rng.integers(0, 255, size=(h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for i in range(frames):
        big = cv2.resize(np.roll(base, i, axis=1), (w + 16, h + 16), interpolation=cv2.INTER_NEAREST)
        out.write(np.ascontiguousarray(big[:h, :w]))
    out.release()
    return path


def write_folder(path: Path, frames: int, *, size=(48, 64), seed=1) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(path / f"f{i:04d}.png"), rng.integers(0, 255, size=(*size, 3), dtype=np.uint8))
    return path


# --------------------------------------------------------------------------- inputs (no Ray)


def test_expand_inputs(tmp_path):
    pytest.importorskip("pyarrow")
    from enet.deploy.batch.recordings import expand

    a = write_clip(tmp_path / "a" / "front.mp4", 3)
    b = write_clip(tmp_path / "b" / "front.mp4", 3)
    folder = write_folder(tmp_path / "seq", 2)
    (tmp_path / "day").mkdir()
    write_clip(tmp_path / "day" / "x.avi", 2)
    write_clip(tmp_path / "day" / "y.mp4", 2)
    (tmp_path / "day" / "notes.md").write_text("not a recording")
    lst = tmp_path / "list.txt"
    lst.write_text(f"# the fleet\n\n{a}\nb/front.mp4\nfile://{folder}\n")
    recs = expand([str(lst), str(tmp_path / "day"), str(a)])
    kinds = [(Path(r.location).name, r.kind) for r in recs]
    assert kinds == [("front.mp4", "video"), ("front.mp4", "video"), ("seq", "folder"), ("x.avi", "video"),
                     ("y.mp4", "video")]  # a repeated input counts once
    assert recs[0].id != recs[1].id and recs[0].id.startswith("front-")  # same name, other drive
    assert expand([str(b)])[0].id == recs[1].id  # stable across runs and spellings
    with pytest.raises(EnetError, match="does not exist"):
        expand([str(tmp_path / "nope.mp4")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnetError, match="no images and no videos"):
        expand([str(tmp_path / "empty")])


def test_decode_marks_the_end_and_failures(tmp_path):
    from enet.deploy.batch.ray_run import END, FAILED, FRAME, decode_recordings

    clip = write_clip(tmp_path / "c.mp4", 5)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(2000))
    batch = {"id": np.array(["c", "bad"], dtype=object), "location": np.array([str(clip), str(bad)], dtype=object),
             "kind": np.array(["video", "video"], dtype=object)}
    assert [b["frame"][-1] for b in decode_recordings(batch, size=(64, 96), resize="area", chunk=4,
                                                      max_frames=3)][:2] == [2, -1]  # --frames 3
    out = list(decode_recordings(batch, size=(64, 96), resize="area", chunk=2))
    status = np.concatenate([b["status"] for b in out])
    assert list(status) == [FRAME] * 5 + [END, FAILED]
    assert all(b["image"].shape[1:] == (64, 96, 3) for b in out)
    assert out[-2]["count"][0] == 5
    assert "bad.mp4" in out[-1]["error"][0]


# --------------------------------------------------------------------------- output folder (no Ray)


def _results(n, classes=3, worker="w/1"):
    from enet.deploy.batch.store import FrameResult

    return [FrameResult(frame=i, pts=i / 10, fractions=np.full(classes, 1 / classes), confidence=float("nan"),
                        worker=worker, decode_ms=1.0, infer_ms=2.0) for i in range(n)]


def test_store_commits_atomically_and_cleans_up(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from enet.deploy.batch.store import Store

    out = tmp_path / "out"
    store = Store(out, ["road", "car", "sky"], {"model_sha256": "aa", "labels": False})
    store.check()
    store.open()
    assert not (out / "labels").exists()  # no empty labels/ without --labels (issue 29 item 21)
    store.commit("r1", "r1.mp4", reversed(_results(4)), compare=False)
    assert store.complete() == {"r1"}
    t = pq.read_table(out / "frames" / "r1.parquet")
    assert t.column("frame").to_pylist() == [0, 1, 2, 3]
    assert set(t.column_names) >= {"recording", "pts", "frac_road", "frac_car", "frac_sky", "confidence", "worker"}
    assert t.column("confidence").null_count == 4
    # what a run killed mid-write leaves: a temp file, and a frames file without its done mark
    (out / "frames" / ".r2.parquet.x1.tmp.parquet").write_bytes(b"half")
    (out / "frames" / "r3.parquet").write_bytes(b"no done mark")
    (out / "labels" / "r3").mkdir(parents=True)
    Store(out, ["road", "car", "sky"], {"model_sha256": "aa", "labels": False}).open()
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["r1.parquet"]
    assert not (out / "labels" / "r3").exists()
    summary = pq.read_table(Store(out, ["road", "car", "sky"], {}).write_tables(compare=False)).to_pylist()
    assert summary[0]["recording"] == "r1" and summary[0]["frames"] == 4
    with pytest.raises(EnetError, match="model_sha256"):
        Store(out, ["road"], {"model_sha256": "bb", "labels": False}).check()


def test_plan_workers():
    from enet.deploy.batch.ray_run import plan_workers

    local = [{"Alive": True, "Resources": {"CPU": 2.0}}]
    loopback = [{"Alive": True, "Resources": {"CPU": 1.0}}, {"Alive": True, "Resources": {"CPU": 1.0}}]
    assert plan_workers(local, None, None, 0) == (1, 2.0)
    assert plan_workers(loopback, None, None, 0) == (2, 1.0)
    assert plan_workers(local, 3, 0.5, 0) == (3, 0.5)
    gpus = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}}, {"Alive": False, "Resources": {"GPU": 4.0}}]
    assert plan_workers(gpus, None, None, 1) == (2, 1.0)
    with pytest.raises(EnetError, match="GPUs"):
        plan_workers(local, None, None, 1)
    with pytest.raises(EnetError, match="exceeds"):
        plan_workers(local, None, 4, 0)


# --------------------------------------------------------------------------- the command line (no Ray run)


def test_without_ray_one_line(tmp_path, capsys, monkeypatch):
    from enet.deploy.batch.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main([str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("enet-batch: error: ray is not importable")
    assert "enet-rt[batch]" in err[0]
    assert not (tmp_path / "o").exists()


def test_bad_command_lines(tmp_path, capsys, tiny_checkpoint):
    pytest.importorskip("ray")
    from enet.deploy.batch.cli import main

    assert main([str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o"), "--model", str(tiny_checkpoint)]) == 1
    (tmp_path / "file").write_text("x")
    clip = write_clip(tmp_path / "c.mp4", 2)
    assert main([str(clip), "-o", str(tmp_path / "file"), "--model", str(tiny_checkpoint)]) == 1
    assert main([str(clip), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "none.onnx")]) == 1
    for argv in ([str(clip)], [str(clip), "-o", "x", "--workers", "0"], [str(clip), "-o", "x", "--size", "100x60"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 6 and all(line.startswith("enet-batch: error:") for line in err), err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- real runs


def _batch(args, *, timeout=RAY_TIMEOUT_S, env=None):
    return subprocess.run([sys.executable, "-m", "enet.deploy.batch.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _enet_run_areas(source, model, tmp_path, name):
    """Per-frame class fractions of ``enet-run --stats`` (OpenCV decoding, as enet-batch's).

    ``--fit stretch``: enet-batch resizes frames to the model's size whatever their aspect ratio
    (enet-run's default since issue 29 is letterbox; the clips here are not the tiny model's aspect).
    """
    from enet.deploy.cli import main

    stats = tmp_path / f"{name}.jsonl"
    assert main([str(source), "--model", str(model), "--backend", "ort", "--capture", "opencv", "--stats", str(stats),
                 "--no-display", "-q", "--fit", "stretch"]) == 0
    return [json.loads(line)["area"] for line in stats.read_text().splitlines()]


def _fractions(out, rec_id):
    import pyarrow.parquet as pq

    return pq.read_table(Path(out) / "frames" / f"{rec_id}.parquet").to_pylist()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, tiny_checkpoint):
    """One local enet-batch run over a clip, an image folder and a broken video; its outputs."""
    pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    ws = tmp_path_factory.mktemp("batch")
    cache = ws / "cache"  # the runs and enet-run share one exported ONNX
    clip = write_clip(ws / "drive1.mp4", 23)
    folder = write_folder(ws / "seq", 5)
    broken = ws / "drive2.mp4"
    broken.write_bytes(os.urandom(4000))
    out = ws / "out"
    r = _batch([clip, folder, broken, "-o", out, "--model", tiny_checkpoint, "--backend", "ort", "--confidence",
                "--labels", "--batch", "4"], env=dict(os.environ, ENET_CACHE_DIR=str(cache)))
    if "cannot start a local Ray" in r.stderr:  # Ray's raylet must register within a fixed 30 s
        pytest.skip("Ray could not start here (a saturated machine): " + r.stderr.strip().splitlines()[-1])
    return {"ws": ws, "clip": clip, "folder": folder, "broken": broken, "out": out, "run": r, "cache": cache}


def test_local_run_matches_enet_run(local_run, tiny_checkpoint, tmp_path, monkeypatch):
    from enet.deploy.batch.recordings import expand

    r, out = local_run["run"], local_run["out"]
    monkeypatch.setenv("ENET_CACHE_DIR", str(local_run["cache"]))
    assert r.returncode == 1, r.stderr  # the broken video fails; the others are written
    assert "core_worker" not in r.stderr and "raylet" not in r.stderr  # Ray's own lines stay out (issue 29 item 13)
    last = r.stderr.strip().splitlines()[-1]
    clip_id, folder_id, broken_id = (expand([str(local_run[k])])[0].id for k in ("clip", "folder", "broken"))
    assert last.startswith("enet-batch: error: 1 of 3 recordings failed:") and broken_id in last
    assert "frames/s overall" in r.stdout and "decode" in r.stdout and "infer" in r.stdout
    assert sorted(p.name for p in (out / "frames").iterdir()) == sorted([f"{clip_id}.parquet", f"{folder_id}.parquet"])
    for key, rec_id, n in (("clip", clip_id, 23), ("folder", folder_id, 5)):
        rows = _fractions(out, rec_id)
        want = _enet_run_areas(local_run[key], tiny_checkpoint, tmp_path, key)
        assert len(rows) == len(want) == n and [row["frame"] for row in rows] == list(range(n))
        for row, area in zip(rows, want):
            assert {c: round(row[f"frac_{c}"], 5) for c in area} == area
            assert 0 < row["confidence"] <= 1
        assert len(list((out / "labels" / rec_id).glob("*.png"))) == n
    stats = json.loads((out / "run.json").read_text())
    assert stats["frames"] == 28 and set(stats["stage_s"]) == {"decode", "infer", "write"}


def test_resume_after_an_interrupted_run(local_run, tiny_checkpoint):
    """The broken recording is redone once fixed; complete ones are skipped, untouched; a run killed
    mid-write left only temporary files, which go."""
    import pyarrow.parquet as pq

    out = local_run["out"]
    env = dict(os.environ, ENET_CACHE_DIR=str(local_run["cache"]))
    before = {p.name: p.stat().st_mtime_ns for p in (out / "frames").iterdir()}
    (out / "frames" / ".x.parquet.abc.tmp.parquet").write_bytes(b"killed mid-write")
    shutil.copy(local_run["clip"], local_run["broken"])
    r = _batch([local_run["clip"], local_run["folder"], local_run["broken"], "-o", out, "--model", tiny_checkpoint,
                "--backend", "ort", "--confidence", "--labels", "-q"], env=env)
    assert r.returncode == 0, r.stderr
    assert "2 recordings already complete" in r.stdout and "23 frames of 1 recordings" in r.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (out / "frames").iterdir()}
    assert len(after) == 3 and all(after[k] == v for k, v in before.items())
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert sorted(s["frames"] for s in summary) == [5, 23, 23]
    # another model into the same folder is refused before any work
    r = _batch([local_run["clip"], "-o", out, "--model", tiny_checkpoint, "--backend", "ort", "-q"], env=env)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("enet-batch: error:")
    assert "labels" in r.stderr or "confidence" in r.stderr


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def loopback_cluster(tmp_path: Path):
    """A Ray head and one worker node on 127.0.0.1, one CPU each, token-authenticated; torn down after."""
    import secrets

    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip(f"no ray command beside {sys.executable}")
    port = _free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    common = ["--block", "--num-cpus", "1", "--object-store-memory", str(100 * 1024 * 1024),
              "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    procs: list[subprocess.Popen] = []

    def start(args, log):
        procs.append(subprocess.Popen([str(ray_bin), "start", *args, *common], env=env, start_new_session=True,
                                      stdout=log, stderr=subprocess.STDOUT))

    logs = [open(tmp_path / "head.log", "w"), open(tmp_path / "worker.log", "w")]  # noqa: SIM115 - closed below
    try:
        start(["--head", "--port", str(port), "--include-dashboard", "false"], logs[0])
        start(["--address", f"127.0.0.1:{port}"], logs[1])  # retries until the head's GCS answers
        for name in ("head.log", "worker.log"):
            _wait_for(lambda name=name: "Ray runtime started" in (tmp_path / name).read_text(), procs, 120,
                      [tmp_path / "head.log", tmp_path / "worker.log"])
        yield f"127.0.0.1:{port}", env
    finally:
        for p in reversed(procs):  # our own process groups only; --block stops the node's processes on SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5  # a node drains for up to 30 s; nothing of this run needs that
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # still draining: the node's raylet, GCS, workers
            p.wait(timeout=30)
        for f in logs:
            f.close()


def _wait_for(ready, procs, timeout, logs_of=()):
    deadline = time.monotonic() + timeout
    while not ready():
        if any(p.poll() is not None for p in procs):
            logs = "".join(f.read_text() for f in logs_of)
            if "timed out during startup" in logs:  # Ray's fixed 30 s for a raylet to register
                pytest.skip("ray start could not start a node here (a saturated machine)")
            pytest.fail("ray start exited early: " + " | ".join(logs.strip().splitlines()[-3:]))
        if time.monotonic() > deadline:
            pytest.fail(f"ray start not ready within {timeout} s")
        time.sleep(0.5)


@pytest.mark.slow
def test_two_node_loopback_cluster_gives_the_local_results(local_run, tiny_checkpoint, tmp_path):
    """The local run's recordings again, on a head and a worker node: the same fractions, both nodes working."""
    pytest.importorskip("ray")
    from enet.deploy.batch.recordings import expand

    out = tmp_path / "cluster"
    env = dict(os.environ, ENET_CACHE_DIR=str(local_run["cache"]))
    with loopback_cluster(tmp_path) as (address, cluster_env):
        r = _batch([local_run["clip"], local_run["folder"], "-o", out, "--model", tiny_checkpoint, "--backend", "ort",
                    "--batch", "2", "--address", address, "-q"], env=dict(cluster_env, **env))
    assert r.returncode == 0, r.stderr
    assert "on 2 ort worker(s)" in r.stdout
    workers = set()
    for key in ("clip", "folder"):
        rec = expand([str(local_run[key])])[0]
        a, b = _fractions(local_run["out"], rec.id), _fractions(out, rec.id)
        cols = [k for k in a[0] if k.startswith("frac_")] + ["frame", "pts"]
        assert [{k: row[k] for k in cols} for row in a] == [{k: row[k] for k in cols} for row in b]
        workers |= {row["worker"].split("/")[0] for row in b}
    assert len(workers) == 2, workers  # both nodes segmented frames


# --------------------------------------------------------------------------- Ray's output (issue 29 item 13)


def test_ray_noise_stays_out_of_the_terminal(tmp_path, capfd):
    """What the child writes to descriptor 2 (Ray's C++ log lines) goes to a file; its own lines come through."""
    from enet.deploy.batch.cli import supervise

    child = ("import os, sys\n"
             "fd, status = os.environ['ENET_BATCH_CHILD'].split(',')\n"
             "os.write(2, b'[2026-01-01 core_worker.cc:512 E 1 2] Failed to push error to driver\\n')\n"
             "os.write(int(fd), b'enet-batch: wrote out/summary.parquet\\n')\n"
             "open(status, 'w').write('done')\n")
    assert supervise([sys.executable, "-c", child]) == 0
    err = capfd.readouterr().err
    assert err == "enet-batch: wrote out/summary.parquet\n"


def test_a_run_that_dies_ends_in_one_line(tmp_path, capfd):
    """Ray ending the process (a signal, or an exit without a word) still ends in one line and exit 1."""
    from enet.deploy.batch.cli import supervise

    child = "import os\nos.write(2, b'core_worker.cc:99 E state dump\\n' * 60)\nos.abort()\n"
    assert supervise([sys.executable, "-c", child]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("enet-batch: error: the run ended without a result (signal 6")
    log = Path(err[0].split("output is in ")[1].split(";")[0])
    assert log.read_text().count("state dump") == 60
    log.unlink()


def test_the_command_line_runs_supervised(tmp_path):
    """A real enet-batch failing after its checks: one line, the same exit status through the supervisor."""
    r = _batch([tmp_path / "nope.mp4", "-o", tmp_path / "o"], timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("enet-batch: error:") and "nope.mp4" in r.stderr


def test_the_cluster_recipe_sets_the_token_as_the_cluster_test_does():
    """Issue 29 item 12: docs/batch.md's multi-node recipe sets what loopback_cluster sets for `ray start`
    (Ray 2.60's `ray start --head` turns token authentication on: a node without the token is refused)."""
    import inspect
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "batch.md").read_text()
    recipe = doc.split("## Cluster use", 1)[1].split("```", 2)[1]
    lines = [ln for ln in recipe.splitlines() if not ln.startswith("#")]
    head = next(i for i, ln in enumerate(lines) if ln.startswith("ray start --head"))
    exports = " ".join(ln for ln in lines[:head] if ln.startswith("export "))
    assert re.search(r"\bRAY_AUTH_MODE=token\b", exports) and re.search(r"\bRAY_AUTH_TOKEN=\S+", exports)
    source = inspect.getsource(loopback_cluster)
    assert 'RAY_AUTH_MODE="token"' in source and "RAY_AUTH_TOKEN=" in source  # the same two, as the test runs it


def test_an_auth_refusal_says_how_to_join():
    from enet.deploy.batch.ray_run import _connect_hint

    hint = _connect_hint("AuthenticationError: InvalidAuthToken", "10.0.0.1:6379")
    assert "RAY_AUTH_MODE=token" in hint and "RAY_AUTH_TOKEN" in hint
    assert "ray start --head" in _connect_hint("connection refused", "10.0.0.1:6379")
