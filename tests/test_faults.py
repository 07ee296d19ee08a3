"""When the machine misbehaves during real work (README "Exit codes", issue 22).

Every case runs a real ``enet-*`` command in a subprocess and asserts what
the README promises when the world, not the command line, goes wrong:

- the documented exit code (1 for a fault; -9 for a process we SIGKILLed);
- for a fault, exactly one line on stderr, ``enet-xxx: error: ...``, naming
  what failed, and no traceback;
- what is (not) left behind: no file at an output path that is not whole,
  no temp file of the failed write, no earlier good result overwritten.

Classes covered (one table, ``CASES``, with a check function per case):

- storage: a full disk (a 256 KiB tmpfs; without root, ``RLIMIT_FSIZE``
  with SIGXFSZ ignored, so writes fail with EFBIG), a read-only cache folder;
- interrupted processes: SIGKILL right before an output is renamed into
  place (the worst moment: the temp file is complete, the output is not
  there yet; done by an ``os.replace`` hook in the child that kills itself,
  so the moment is exact), and one SIGKILL sent from outside to a training
  run at whatever point it has reached; training then resumes exactly;
- a corrupt (truncated or foreign) cache entry, rebuilt with a line saying so;
- two processes filling one cache entry at once;
- a diverging training (``--lr 1e8``);
- unusual frames: grey, BGRA, 16-bit, mixed and odd sizes, a tiny JPEG,
  paths with spaces and non-ASCII letters, a huge image; an odd-sized video;
- environment variables named in the error they cause.

Runs are kept small (generated 64x96 frames, one-epoch trainings).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import unwritable_folder, write_camvid_like

BIN = Path(sys.executable).parent
TRAIN = ["enet-train", "--size", "96x64", "--val-size", "96x64", "--batch", "2", "--threads", "1", "-q"]

#: Runs a console script in this interpreter with ``os.replace`` wrapped: the ``FAULT_KILL_NTH``-th
#: rename onto a file named ``FAULT_KILL_AT`` SIGKILLs the process first (power lost at the worst moment:
#: the temp file is whole, the output not yet in place).
KILLER = r"""
import os, signal, sys
from importlib.metadata import entry_points
target, nth = os.environ["FAULT_KILL_AT"], int(os.environ.get("FAULT_KILL_NTH", "1"))
real, seen = os.replace, [0]
def replace(src, dst, *a, **k):
    if os.path.basename(os.fspath(dst)) == target:
        seen[0] += 1
        if seen[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
prog = sys.argv[1]
sys.argv = sys.argv[1:]
main = next(ep for ep in entry_points(group="console_scripts") if ep.name == prog).load()
sys.exit(main())
"""


# --------------------------------------------------------------------------- shared inputs
def _frame_kinds(folder: Path) -> Path:
    """One frame of each unusual kind, in a folder whose name has a space and non-ASCII letters."""
    import cv2

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "0001 grey.png"), rng.integers(0, 255, (64, 96), dtype=np.uint8))
    cv2.imwrite(str(folder / "0002 bgra.png"), rng.integers(0, 255, (61, 97, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "0003 16bit.png"), rng.integers(0, 65535, (80, 120, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "0004 tiny.jpg"), rng.integers(0, 255, (33, 47, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "0005 16bit grey.png"), rng.integers(0, 65535, (50, 70), dtype=np.uint16))
    return folder


def _huge_png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height``: refused from the header, never decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    """Valid inputs shared by every case (read-only use)."""
    import cv2

    from enet.export.onnx import export_onnx

    root = tmp_path_factory.mktemp("faults")
    onnx = root / "tiny.onnx"
    export_onnx(tiny_checkpoint, onnx)
    data = write_camvid_like(root / "data", splits={"train": 4, "val": 2}, size=(64, 96))
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(1)
    for i in range(120):  # noise compresses badly: about 1 MB of video, more than the small disk holds
        cv2.imwrite(str(frames / f"{i:04d}.png"), rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    kinds = _frame_kinds(root / "främes mit Leerzeichen")
    # a data set whose images are of every kind (labels stay 8-bit grey), under an unusual name
    odd = write_camvid_like(root / "dätä set", splits={"train": 2, "val": 5}, size=(64, 96))
    for img, lab in zip(sorted((odd / "val").iterdir()), sorted((odd / "valannot").iterdir())):
        bgr = cv2.imread(str(img))
        kind = int(img.stem[-1])
        if kind == 0:
            out = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        elif kind == 1:
            out = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        elif kind == 2:
            out = bgr.astype(np.uint16) * 257
        elif kind == 3:  # another size: image and label scaled alike
            out = cv2.resize(bgr, (72, 48))
            cv2.imwrite(str(lab), cv2.resize(cv2.imread(str(lab), cv2.IMREAD_UNCHANGED), (72, 48),
                                             interpolation=cv2.INTER_NEAREST))
        else:
            out = bgr
        cv2.imwrite(str(img), out)
    huge = write_camvid_like(root / "huge", splits={"train": 2, "val": 2}, size=(64, 96))
    _huge_png_header(sorted((huge / "val").iterdir())[0], 40000, 40000)
    clip = root / "odd size.mp4"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (97, 61))
    for _ in range(4):
        vw.write(rng.integers(0, 255, (61, 97, 3), dtype=np.uint8))
    vw.release()
    return {"root": root, "pth": tiny_checkpoint, "onnx": onnx, "data": data, "frames": frames, "kinds": kinds,
            "odd": odd, "huge": huge, "clip": clip}


@dataclass
class Ctx:
    """One case's world: its working folder, inputs, environment and (after the run) the result."""

    ws: Path
    inputs: dict[str, Path]
    env: dict[str, str]
    small: Path | None = None          # a full-able folder (tmpfs or RLIMIT_FSIZE), when the case asks
    preexec: Callable[[], None] | None = None
    r: subprocess.CompletedProcess | None = None
    extra: dict = field(default_factory=dict)


@contextlib.contextmanager
def small_disk(tmp: Path, size_kib: int, *, full: bool = False):
    """A folder on a tiny disk, and a preexec for the child: a tmpfs of ``size_kib`` when mount works
    (root, as in CI), else the folder as is plus ``RLIMIT_FSIZE`` in the child (writes past the limit
    fail with EFBIG instead of ENOSPC; SIGXFSZ ignored so the write fails rather than the process)."""
    folder = tmp / "small"
    folder.mkdir()
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    preexec = None
    if mounted and full:  # nothing left: a filler takes every free block
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        with contextlib.suppress(OSError), open(folder / ".filler", "wb") as f:
            f.write(b"\0" * free)
    if not mounted:
        import resource

        limit = 0 if full else size_kib * 1024

        def preexec() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        yield folder, preexec
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def run(ctx: Ctx, argv: list[str], *, kill_at: str | None = None, kill_nth: int = 1,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(ctx.env, **(env or {}))
    if kill_at:
        cmd = [sys.executable, "-c", KILLER, *argv]
        env.update(FAULT_KILL_AT=kill_at, FAULT_KILL_NTH=str(kill_nth))
    else:
        exe = shutil.which(argv[0], path=str(BIN))
        assert exe, f"{argv[0]} is not installed in {BIN}"
        cmd = [exe, *argv[1:]]
    return subprocess.run(cmd, cwd=ctx.ws, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, preexec_fn=ctx.preexec)


def one_error_line(r: subprocess.CompletedProcess, prog: str, pattern: str = "") -> str:
    """The contract for a fault: exit 1, one stderr line ``prog: error: ...``, no traceback."""
    report = f"exit {r.returncode}, stderr:\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, report
    assert r.returncode == 1, report
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, report
    assert lines[0].startswith(f"{prog}: error: "), report
    if pattern:
        assert re.search(pattern, lines[0]), report
    return lines[0]


def ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0 and "Traceback" not in r.stderr, f"exit {r.returncode}:\n{r.stderr[-3000:]}"


def killed(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == -signal.SIGKILL, f"exit {r.returncode}:\n{r.stderr[-3000:]}"


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if ".tmp" in p.name or ".partial" in p.name)


def whole_onnx(path: Path) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))


def same_weights(a: Path, b: Path) -> bool:
    import torch

    from enet.checkpoint import load_checkpoint

    sa, sb = load_checkpoint(a)["state_dict"], load_checkpoint(b)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def cache_entries(ctx: Ctx) -> list[Path]:
    return sorted((Path(ctx.env["ENET_CACHE_DIR"]) / "models").glob("*.onnx"))


def age(path: Path, seconds: float = 7200) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


# --------------------------------------------------------------------------- storage
def full_disk_run_video(ctx: Ctx) -> None:
    out = ctx.small
    r = run(ctx, ["enet-run", str(ctx.inputs["frames"]), str(out / "out.mp4"), "--model", str(ctx.inputs["onnx"]),
                  "--no-display", "-q"])
    one_error_line(r, "enet-run", r"out\.mp4.*(removed|space|write)")
    assert not (out / "out.mp4").exists() and temps(out) == []


def full_disk_run_avi_opencv(ctx: Ctx) -> None:
    out = ctx.small
    r = run(ctx, ["enet-run", str(ctx.inputs["frames"]), str(out / "out.avi"), "--model", str(ctx.inputs["onnx"]),
                  "--no-display", "-q", "--writer", "opencv"])
    one_error_line(r, "enet-run", r"out\.avi")
    assert not (out / "out.avi").exists() and temps(out) == []


def full_disk_run_stats(ctx: Ctx) -> None:
    out = ctx.small
    r = run(ctx, ["enet-run", str(ctx.inputs["frames"]), "--model", str(ctx.inputs["onnx"]), "--no-display", "-q",
                  "--stats", str(out / "s.jsonl")])
    one_error_line(r, "enet-run", r"s\.jsonl.*removed")
    assert not (out / "s.jsonl").exists()


def full_disk_export(ctx: Ctx) -> None:
    r = run(ctx, ["enet-export", str(ctx.inputs["pth"]), "-o", str(ctx.small / "x.onnx"), "--verify-frames", "0", "-q"])
    one_error_line(r, "enet-export", r"x\.onnx")
    assert list(ctx.small.iterdir()) == []


def full_disk_train(ctx: Ctx) -> None:
    r = run(ctx, [*TRAIN, "--data-root", str(ctx.inputs["data"]), "-o", str(ctx.small / "run"), "--epochs", "1"])
    one_error_line(r, "enet-train", r"\.pth")
    assert not list(ctx.small.rglob("*.pth")) and temps(ctx.small) == []


def full_disk_eval_predictions(ctx: Ctx) -> None:
    r = run(ctx, ["enet-eval", str(ctx.inputs["pth"]), "--data-root", str(ctx.inputs["data"]), "-q",
                  "--save-predictions", str(ctx.small / "pred")])
    one_error_line(r, "enet-eval", r"pred")
    assert [p.name for p in ctx.small.iterdir() if p.name != ".filler"] == []


def readonly_cache(ctx: Ctx) -> None:
    """``auto`` runs a checkpoint on PyTorch when it cannot cache its ONNX, and says why; a backend that
    needs the ONNX fails in one line; both name the variable that chose the folder."""
    argv = ["enet-run", str(ctx.inputs["kinds"]), "--model", str(ctx.inputs["pth"]), "--no-display", "-q"]
    env = {"ENET_CACHE_DIR": str(unwritable_folder(ctx.ws.parent))}
    r = run(ctx, argv, env=env)
    ok(r)
    assert "ENET_CACHE_DIR" in r.stderr and "using PyTorch" in r.stderr
    one_error_line(run(ctx, [*argv, "--backend", "ort"], env=env), "enet-run", "ENET_CACHE_DIR")


# --------------------------------------------------------------------------- interrupted processes
def kill_export(ctx: Ctx) -> None:
    argv = ["enet-export", str(ctx.inputs["pth"]), "-o", str(ctx.ws / "x.onnx"), "--verify-frames", "0", "-q"]
    killed(run(ctx, argv, kill_at="x.onnx"))
    assert not (ctx.ws / "x.onnx").exists()
    stale = [ctx.ws / n for n in temps(ctx.ws)]
    assert len(stale) == 1  # the whole temp file the kill left: hidden, never read
    age(stale[0])
    ok(run(ctx, argv))
    whole_onnx(ctx.ws / "x.onnx")
    assert temps(ctx.ws) == []  # the next write of x.onnx removed the stale temp


def kill_calibration(ctx: Ctx) -> None:
    argv = ["enet-build-engine", str(ctx.inputs["onnx"]), "--int8", "-o", str(ctx.ws / "q.int8.onnx"),
            "--data-root", str(ctx.inputs["data"]), "--calib-frames", "2", "-q"]
    killed(run(ctx, argv, kill_at="q.int8.onnx"))
    assert not (ctx.ws / "q.int8.onnx").exists()
    ok(run(ctx, argv))
    whole_onnx(ctx.ws / "q.int8.onnx")


def kill_cache_fill(ctx: Ctx) -> None:
    argv = ["enet-run", str(ctx.inputs["kinds"]), "--model", str(ctx.inputs["pth"]), "--no-display", "-q",
            "--backend", "ort"]
    killed(run(ctx, argv, kill_at=_cache_name(ctx)))
    assert cache_entries(ctx) == []  # nothing under an entry's name
    ok(run(ctx, argv))
    (entry,) = cache_entries(ctx)
    whole_onnx(entry)


def _cache_name(ctx: Ctx) -> str:
    from enet.export.cache import cached_onnx_path

    return cached_onnx_path(ctx.inputs["pth"], 64, 96, labels=True, folder=ctx.ws).name


def kill_training_at_checkpoint(ctx: Ctx) -> None:
    """Killed while writing epoch 2's last.pth: epoch 1's stays whole and the resume is exact."""
    data = str(ctx.inputs["data"])
    ok(run(ctx, [*TRAIN, "--data-root", data, "-o", "straight", "--epochs", "2"]))
    killed(run(ctx, [*TRAIN, "--data-root", data, "-o", "cut", "--epochs", "2"], kill_at="last.pth", kill_nth=2))
    from enet.checkpoint import load_checkpoint

    assert load_checkpoint(ctx.ws / "cut" / "last.pth")["train_state"]["epoch"] == 1
    ok(run(ctx, ["enet-train", "--resume", "cut/last.pth", "-q"]))
    assert same_weights(ctx.ws / "straight" / "last.pth", ctx.ws / "cut" / "last.pth")
    assert same_weights(ctx.ws / "straight" / "best.pth", ctx.ws / "cut" / "best.pth")


def kill_training_from_outside(ctx: Ctx) -> None:
    """SIGKILL sent whenever the first checkpoint exists; the resume reaches the uninterrupted weights."""
    data = str(ctx.inputs["data"])
    argv = [*TRAIN, "--data-root", data, "--epochs", "3"]
    ok(run(ctx, [*argv, "-o", "straight"]))
    exe = shutil.which("enet-train", path=str(BIN))
    proc = subprocess.Popen([exe, *argv[1:], "-o", "cut"], cwd=ctx.ws, env=ctx.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (ctx.ws / "cut" / "last.pth").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    for p in (ctx.ws / "cut").glob("*.pth"):  # whatever was there is whole
        from enet.checkpoint import load_checkpoint

        load_checkpoint(p)
    ok(run(ctx, ["enet-train", "--resume", "cut/last.pth", "-q"]))
    assert same_weights(ctx.ws / "straight" / "last.pth", ctx.ws / "cut" / "last.pth")


# --------------------------------------------------------------------------- caches
def _fill_cache(ctx: Ctx) -> Path:
    argv = ["enet-run", str(ctx.inputs["kinds"]), "--model", str(ctx.inputs["pth"]), "--no-display", "-q",
            "--backend", "ort"]
    ok(run(ctx, argv))
    (entry,) = cache_entries(ctx)
    ctx.extra["argv"] = argv
    return entry


def corrupt_cache_truncated(ctx: Ctx) -> None:
    entry = _fill_cache(ctx)
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])
    r = run(ctx, ctx.extra["argv"])
    ok(r)
    assert re.search(r"cached ONNX .* damaged .* exporting it again", r.stderr), r.stderr
    assert entry.read_bytes() == data


def corrupt_cache_foreign(ctx: Ctx) -> None:
    entry = _fill_cache(ctx)
    data = entry.read_bytes()
    entry.write_bytes(np.random.default_rng(0).bytes(len(data)))
    r = run(ctx, ctx.extra["argv"])
    ok(r)
    assert "damaged" in r.stderr
    assert entry.read_bytes() == data


def stale_cache_temp(ctx: Ctx) -> None:
    """A temp file of a fill killed long ago is cleaned by the next fill of that folder."""
    folder = Path(ctx.env["ENET_CACHE_DIR"]) / "models"
    folder.mkdir(parents=True)
    stale = folder / f".{_cache_name(ctx)}.abc123.tmp"
    stale.write_bytes(b"half an export")
    age(stale)
    _fill_cache(ctx)
    assert not stale.exists()


CONCURRENT = ("import sys; from enet.cli import configure_logging; configure_logging(20); "
              "from enet.export.cache import cached_onnx; print(cached_onnx(sys.argv[1], labels=True))")


def concurrent_fill(ctx: Ctx) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(ctx.inputs["pth"])], cwd=ctx.ws, env=ctx.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "Traceback" not in err, err
    paths = {out.strip() for out, _ in outs}
    assert len(paths) == 1  # one shared result
    exports = sum(err.count("(once; cached)") for _, err in outs)
    assert exports == 1, [err for _, err in outs]  # the second waited and reused the first's file
    whole_onnx(Path(paths.pop()))
    assert temps(Path(ctx.env["ENET_CACHE_DIR"])) == []


# --------------------------------------------------------------------------- numerical faults
def diverging_training(ctx: Ctx) -> None:
    r = run(ctx, [*TRAIN, "--data-root", str(ctx.inputs["data"]), "-o", "run", "--epochs", "2", "--lr", "1e8"])
    one_error_line(r, "enet-train", r"diverged.*(nan|inf|finite).*lower --lr")
    assert not (ctx.ws / "run" / "best.pth").exists()


def diverging_after_good_run(ctx: Ctx) -> None:
    data = str(ctx.inputs["data"])
    ok(run(ctx, [*TRAIN, "--data-root", data, "-o", "run", "--epochs", "1"]))
    before = {p.name: p.read_bytes() for p in (ctx.ws / "run").glob("*.pth")}
    # fine-tuning the good run's weights diverges (an earlier run's folder is refused without --overwrite,
    # so the new run has its own folder)
    r = run(ctx, [*TRAIN, "--data-root", data, "-o", "run2", "--epochs", "2", "--lr", "1e8",
                  "--init-from", "run/best.pth"])
    one_error_line(r, "enet-train", "diverged")
    assert {p.name: p.read_bytes() for p in (ctx.ws / "run").glob("*.pth")} == before  # nothing overwritten
    assert not (ctx.ws / "run2" / "best.pth").exists()


# --------------------------------------------------------------------------- unusual frames
def run_frame_kinds(ctx: Ctx) -> None:
    import cv2

    out = ctx.ws / "vidéo out.mp4"
    r = run(ctx, ["enet-run", str(ctx.inputs["kinds"]), str(out), "--model", str(ctx.inputs["onnx"]),
                  "--no-display", "-q", "--stats", str(ctx.ws / "stäts.jsonl")])
    ok(r)
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()
    assert len((ctx.ws / "stäts.jsonl").read_text().splitlines()) == 5


def run_odd_video(ctx: Ctx) -> None:
    ok(run(ctx, ["enet-run", str(ctx.inputs["clip"]), str(ctx.ws / "o.mp4"), "--model", str(ctx.inputs["onnx"]),
                 "--no-display", "-q"]))
    assert (ctx.ws / "o.mp4").is_file()


def eval_frame_kinds(ctx: Ctx) -> None:
    r = run(ctx, ["enet-eval", str(ctx.inputs["pth"]), "--data-root", str(ctx.inputs["odd"]), "-q",
                  "--json", str(ctx.ws / "m ü.json")])
    ok(r)
    assert (ctx.ws / "m ü.json").is_file()


def eval_huge_image(ctx: Ctx) -> None:
    r = run(ctx, ["enet-eval", str(ctx.inputs["pth"]), "--data-root", str(ctx.inputs["huge"]), "-q",
                  "--json", str(ctx.ws / "m.json")])
    one_error_line(r, "enet-eval", r"40000x40000.*downscale")
    assert not (ctx.ws / "m.json").exists()


def run_huge_image(ctx: Ctx) -> None:
    folder = ctx.ws / "frames"
    folder.mkdir()
    _huge_png_header(folder / "0001.png", 100000, 100000)  # even 1/8 is over the limit: refused
    r = run(ctx, ["enet-run", str(folder), str(ctx.ws / "o.mp4"), "--model", str(ctx.inputs["onnx"]),
                  "--no-display", "-q"])
    one_error_line(r, "enet-run", r"100000x100000")
    assert not (ctx.ws / "o.mp4").exists()


# --------------------------------------------------------------------------- environment variables
def env_model(ctx: Ctx) -> None:
    r = run(ctx, ["enet-run", str(ctx.inputs["kinds"]), "--no-display", "-q"],
            env={"ENET_MODEL": "gone/nothing.pth"})
    one_error_line(r, "enet-run", r"ENET_MODEL=gone/nothing\.pth")


def env_camvid(ctx: Ctx) -> None:
    r = run(ctx, ["enet-eval", str(ctx.inputs["pth"]), "-q"], env={"ENET_CAMVID": str(ctx.ws / "no camvid")})
    one_error_line(r, "enet-eval", r"ENET_CAMVID")


def env_cache_dir(ctx: Ctx) -> None:
    (ctx.ws / "a file").write_text("not a folder")
    r = run(ctx, ["enet-run", str(ctx.inputs["kinds"]), "--model", str(ctx.inputs["pth"]), "--no-display", "-q",
                  "--backend", "ort"], env={"ENET_CACHE_DIR": str(ctx.ws / "a file" / "cache")})
    one_error_line(r, "enet-run", r"ENET_CACHE_DIR")


#: (id, check, size in KiB of the small disk it writes to, 0 for none)
CASES: list[tuple[str, Callable[[Ctx], None], int]] = [
    ("storage-full-run-video", full_disk_run_video, 256),
    ("storage-full-run-avi-opencv", full_disk_run_avi_opencv, 256),
    ("storage-full-run-stats", full_disk_run_stats, 16),
    ("storage-full-export", full_disk_export, 256),
    ("storage-full-train", full_disk_train, 256),
    ("storage-full-eval-predictions", full_disk_eval_predictions, -1),
    ("storage-readonly-cache", readonly_cache, 0),
    ("kill-export", kill_export, 0),
    ("kill-calibration", kill_calibration, 0),
    ("kill-cache-fill", kill_cache_fill, 0),
    ("kill-training-at-checkpoint", kill_training_at_checkpoint, 0),
    ("kill-training-from-outside", kill_training_from_outside, 0),
    ("cache-truncated", corrupt_cache_truncated, 0),
    ("cache-foreign", corrupt_cache_foreign, 0),
    ("cache-stale-temp", stale_cache_temp, 0),
    ("cache-concurrent-fill", concurrent_fill, 0),
    ("numeric-diverging", diverging_training, 0),
    ("numeric-diverging-keeps-best", diverging_after_good_run, 0),
    ("frames-run-kinds", run_frame_kinds, 0),
    ("frames-run-odd-video", run_odd_video, 0),
    ("frames-eval-kinds", eval_frame_kinds, 0),
    ("frames-eval-huge", eval_huge_image, 0),
    ("frames-run-huge", run_huge_image, 0),
    ("env-model", env_model, 0),
    ("env-camvid", env_camvid, 0),
    ("env-cache-dir", env_cache_dir, 0),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fault(case: tuple, inputs: dict[str, Path], tmp_path: Path) -> None:
    _, check, needs_small = case
    ws = tmp_path / "ws"
    ws.mkdir()
    env = dict(os.environ, ENET_CACHE_DIR=str(tmp_path / "cache"), ENET_CAMVID=str(inputs["data"]),
               PYTHONWARNINGS="ignore::DeprecationWarning")
    env.pop("DISPLAY", None)
    env.pop("ENET_MODEL", None)
    ctx = Ctx(ws=ws, inputs=inputs, env=env)
    disk = (small_disk(tmp_path, needs_small if needs_small > 0 else 64, full=needs_small < 0) if needs_small
            else contextlib.nullcontext((None, None)))
    with disk as (small, preexec):
        ctx.small, ctx.preexec = small, preexec
        check(ctx)


# --------------------------------------------------------------------------- the same rules, in-process
FRAMES = [  # (id, frame, order, expected RGB uint8 of the top-left pixel, or the error)
    ("grey", np.full((4, 6), 7, np.uint8), "bgr", (7, 7, 7)),
    ("grey-1ch", np.full((4, 6, 1), 7, np.uint8), "bgr", (7, 7, 7)),
    ("bgr", np.tile(np.array([1, 2, 3], np.uint8), (4, 6, 1)), "bgr", (3, 2, 1)),
    ("rgb", np.tile(np.array([1, 2, 3], np.uint8), (4, 6, 1)), "rgb", (1, 2, 3)),
    ("bgra", np.tile(np.array([1, 2, 3, 9], np.uint8), (4, 6, 1)), "bgr", (3, 2, 1)),
    ("16bit", np.tile(np.array([256, 512, 65535], np.uint16), (4, 6, 1)), "bgr", (255, 2, 1)),
    ("float", np.tile(np.array([0.0, 0.5, 1.0], np.float32), (4, 6, 1)), "rgb", (0, 128, 255)),
    ("odd-size", np.zeros((3, 5, 3), np.uint8), "bgr", (0, 0, 0)),
    ("5-channels", np.zeros((4, 6, 5), np.uint8), "bgr", "shape"),
    ("empty", np.zeros((0, 6, 3), np.uint8), "bgr", "empty"),
    ("int32", np.zeros((4, 6, 3), np.int32), "bgr", "dtype"),
    ("nan", np.full((4, 6, 3), np.nan, np.float32), "bgr", "NaN"),
]


@pytest.mark.parametrize("frame,order,want", [f[1:] for f in FRAMES], ids=[f[0] for f in FRAMES])
def test_to_rgb8(frame: np.ndarray, order: str, want) -> None:
    from enet.errors import ShapeError
    from enet.transforms import to_rgb8

    if isinstance(want, str):
        with pytest.raises(ShapeError, match=want):
            to_rgb8(frame, order=order)
        return
    before = frame.copy()
    out = to_rgb8(frame, order=order)
    assert out.dtype == np.uint8 and out.shape == (*frame.shape[:2], 3) and out.flags.c_contiguous
    assert tuple(int(v) for v in out[0, 0]) == want
    np.testing.assert_array_equal(frame, before)  # the input is never modified


def test_huge_frames_are_refused_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    from enet import transforms
    from enet.data import image_size, read_image
    from enet.errors import ShapeError
    from enet.transforms import to_rgb8

    png = tmp_path / "big.png"
    cv2.imwrite(str(png), np.zeros((64, 96, 3), np.uint8))
    jpg = tmp_path / "big.jpg"
    cv2.imwrite(str(jpg), np.zeros((64, 96, 3), np.uint8))
    assert image_size(png.read_bytes()) == image_size(jpg.read_bytes()) == (96, 64)
    monkeypatch.setattr(transforms, "MAX_FRAME_PIXELS", 48 * 32)
    with pytest.raises(ShapeError, match="96x64"):
        read_image(png)
    assert read_image(png, reduce_large=True).shape == (32, 48, 3)  # enet-run: decoded at 1/2
    assert read_image(jpg, reduce_large=True).shape == (32, 48, 3)
    with pytest.raises(ShapeError, match="96x64"):
        to_rgb8(np.zeros((64, 96, 3), np.uint8))


@pytest.mark.parametrize("err", ["ENOSPC", "EROFS", "EIO", "EDQUOT"])
def test_atomic_write_storage_faults_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: str) -> None:
    import errno

    from enet import fileio
    from enet.errors import EnetError

    def fail(*a, **k):
        raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))

    (tmp_path / "x.bin").write_bytes(b"old, good")
    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(EnetError, match=r"cannot write .*x\.bin: .*; nothing was written there"):
        fileio.write_bytes(tmp_path / "x.bin", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]  # no temp left
    assert (tmp_path / "x.bin").read_bytes() == b"old, good"  # the earlier result survives


def test_guard_reports_storage_oserrors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from enet.cli import guard

    def body() -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/x/y.bin")

    assert guard("enet-x", body) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("enet-x: error: storage failed (/x/y.bin): No space left")

    def bug() -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")

    with pytest.raises(OSError):  # anything else is a bug and keeps its traceback
        guard("enet-x", bug)


def test_env_variables_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from enet.datasets import open_dataset
    from enet.defaults import default_camvid_root, env_note
    from enet.errors import DataError, EnetError
    from enet.weights import resolve_model

    monkeypatch.setenv("ENET_MODEL", "gone/nothing.pth")
    with pytest.raises(EnetError, match=r"ENET_MODEL=gone/nothing\.pth"):
        resolve_model(None)
    monkeypatch.setenv("ENET_CAMVID", str(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"\$ENET_CAMVID"):
        open_dataset(default_camvid_root())
    assert env_note(tmp_path / "elsewhere") == ""


def test_collapsed_or_non_finite_models_never_become_best() -> None:
    import torch

    from enet.metrics import ConfusionMatrix
    from enet.model import ENet
    from enet.train import unusable_model

    model = ENet(3)
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1, 2, 1]), np.array([0, 1, 2, 2]))
    assert unusable_model(model, cm) == ""
    one = ConfusionMatrix(3)
    one.update(np.array([0, 0, 0, 0]), np.array([0, 1, 2, 2]))
    assert "collapsed" in unusable_model(model, one)
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    assert "not finite" in unusable_model(model, cm)


def test_video_folder_made_unwritable_during_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename at the end fails (EACCES): one SinkError line, no video and no partial file left."""
    import errno

    from enet.deploy import sinks
    from enet.deploy.errors import SinkError

    sink = sinks.VideoFileSink(tmp_path / "out.avi", fps=10, writer="opencv")
    for _ in range(3):
        sink.write(np.zeros((32, 48, 3), np.uint8))

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sinks.os, "replace", denied)
    with pytest.raises(SinkError, match=r"out\.avi: Permission denied after 3 frame\(s\); the incomplete video was removed"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_files_and_frames_convert_alike(tmp_path: Path) -> None:
    """The dataset loaders (read_image, also enet-run's folders) and to_rgb8 (camera, video and API frames)
    give the same pixels for every kind of image, so commands agree on an unusual frame."""
    import cv2

    from enet.data import read_image
    from enet.transforms import to_rgb8

    folder = _frame_kinds(tmp_path / "kinds")
    for path in sorted(folder.iterdir()):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if path.suffix == ".jpg":
            raw = cv2.imread(str(path), cv2.IMREAD_COLOR)  # JPEG: one decode, then the same conversion
        np.testing.assert_array_equal(read_image(path), to_rgb8(raw, order="bgr"), err_msg=path.name)
