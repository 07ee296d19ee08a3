"""Every command against every class of bad input (README "Exit codes").

Each case runs one ``enet-*`` command in a fresh working folder and asserts
what the README promises for bad input:

- the documented exit code: 2 for a command line that is wrong by itself
  (a value out of range, a malformed size), 1 for everything the command
  finds wrong while checking files and the machine (missing, corrupt or
  unwritable paths, a model that does not fit the data, a device that is
  not there);
- exactly one line on stderr, starting ``enet-xxx: error:``, and no traceback;
- nothing new in the working folder or beside the inputs: the check comes
  before the work, and nothing half-written is left.

Add a case with one line in ``CASES``: ``(id, command line, exit code)`` or
``(id, command line, exit code, regex the stderr line must match)``.
Placeholders: ``{ws}`` the working folder (cwd, empty), ``{ro}`` a folder
nobody can write to, ``{bad}`` a folder of broken files (see ``bad_files``),
``{pth}``/``{onnx}`` a tiny valid checkpoint/ONNX (64x96), ``{pth5}``/``{onnx5}`` a
5-class checkpoint/ONNX, ``{earlier}`` the run folder of an earlier training, ``{data}`` a tiny CamVid-layout data set, ``{frames}`` a
folder of valid PNG frames, ``{clip}`` a valid short MP4.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import unwritable_folder, write_camvid_like

BIN = Path(sys.executable).parent

# a cheap training run (tiny frames, one epoch), so a case that wrongly starts work ends soon
TRAIN = "enet-train --data-root {data} -o {ws}/run --size 96x64 --val-size 96x64"

CASES: list[tuple] = [
    # ---- enet-train
    ("train-unwritable-output", "enet-train --data-root {data} -o {ro}/run --epochs 1", 1),
    ("train-over-an-earlier-run", "enet-train --data-root {data} -o {earlier} --epochs 1", 1, "--resume .*--overwrite"),
    ("train-missing-data", "enet-train --data-root {ws}/nope -o {ws}/run --epochs 1", 1),
    ("train-batch-0", TRAIN + " --epochs 1 --batch 0", 2, "--batch"),
    ("train-lr-negative", TRAIN + " --epochs 1 --lr -1", 2, "--lr"),
    ("train-workers-negative", TRAIN + " --epochs 1 --workers -1", 2, "--workers"),
    ("train-scale-reversed", TRAIN + " --epochs 1 --scale 2 1", 2, "--scale"),
    ("train-epochs-0", TRAIN + " --epochs 0", 2, "--epochs"),
    ("train-epochs-negative", TRAIN + " --epochs -1", 2, "--epochs"),
    ("train-val-every-0", TRAIN + " --epochs 1 --val-every 0", 2, "--val-every"),
    ("train-size-malformed", "enet-train --data-root {data} -o {ws}/run --epochs 1 --size 12x", 2, "--size"),
    ("train-size-not-multiple", "enet-train --data-root {data} -o {ws}/run --epochs 1 --size 481x360", 2, "481x360"),
    ("train-size-huge", "enet-train --data-root {data} -o {ws}/run --epochs 1 --size 100000x100000", 2, "--size"),
    ("train-resume-random", "enet-train --data-root {data} -o {ws}/run --resume {bad}/random.pth", 1),
    ("train-init-truncated", "enet-train --data-root {data} -o {ws}/run --init-from {bad}/truncated.pth", 1),
    # ---- enet-eval
    ("eval-random-pth", "enet-eval {bad}/random.pth --data-root {data}", 1, r"^(?!.*weights_only)"),
    ("eval-truncated-pth", "enet-eval {bad}/truncated.pth --data-root {data}", 1, r"^(?!.*miniz)"),
    ("eval-random-onnx", "enet-eval {bad}/random.onnx --data-root {data}", 1),
    ("eval-truncated-onnx", "enet-eval {bad}/truncated.onnx --data-root {data}", 1),
    ("eval-random-engine", "enet-eval {bad}/random.engine --data-root {data}", 1),
    ("eval-engine-bad-sidecar", "enet-eval {bad}/sidecar.engine --data-root {data}", 1),
    ("eval-missing-model", "enet-eval {ws}/nope.pth --data-root {data}", 1),
    ("eval-frames-0", "enet-eval {pth} --data-root {data} --frames 0", 2, "--frames"),
    ("eval-json-unwritable", "enet-eval {pth} --data-root {data} --json {ro}/m.json", 1),
    ("eval-predictions-unwritable", "enet-eval {pth} --data-root {data} --save-predictions {ro}/pred", 1),
    ("eval-wrong-classes", "enet-eval {pth5} --data-root {data}", 1, "class"),
    ("eval-missing-split", "enet-eval {pth} --data-root {data} --split test", 1),
    # ---- enet-summary, enet-plot
    ("summary-classes-0", "enet-summary --classes 0", 2, "--classes"),
    ("summary-classes-negative", "enet-summary --classes -1", 2, "--classes"),
    ("summary-size-0", "enet-summary --size 0x0", 2, "--size"),
    ("plot-random-log", "enet-plot {bad}/random.pth -o {ws}/p.png", 1),
    ("plot-missing-log", "enet-plot {ws}/nope.jsonl -o {ws}/p.png", 1),
    # ---- enet-average
    ("average-one", "enet-average {pth} -o {ws}/s.pth", 2, "at least two"),
    ("average-random-pth", "enet-average {pth} {bad}/random.pth -o {ws}/s.pth", 1),
    ("average-missing", "enet-average {pth} {ws}/nope.pth -o {ws}/s.pth", 1, "does not exist"),
    ("average-other-classes", "enet-average {pth} {pth5} -o {ws}/s.pth", 1, "other classes"),
    ("average-not-pth", "enet-average {pth} {pth} -o {ws}/s.onnx", 2, ".pth"),
    ("average-unwritable", "enet-average {pth} {pth} -o {ro}/s.pth", 1),
    ("average-missing-data", "enet-average {pth} {pth} -o {ws}/s.pth --data-root {ws}/nodata", 1, "does not exist"),
    ("average-data-other-classes", "enet-average {pth5} {pth5} -o {ws}/s.pth --data-root {data}", 1, "classes"),
    # ---- enet-export
    ("export-random-pth", "enet-export {bad}/random.pth -o {ws}/x.onnx --verify-frames 0", 1),
    ("export-truncated-pth", "enet-export {bad}/truncated.pth -o {ws}/x.onnx --verify-frames 0", 1),
    ("export-onnx-as-pth", "enet-export {onnx} -o {ws}/x.onnx --verify-frames 0", 1),
    ("export-verify-negative", "enet-export {pth} -o {ws}/x.onnx --verify-frames -1", 2, "--verify-frames"),
    ("export-unwritable", "enet-export {pth} -o {ro}/x.onnx --verify-frames 0", 1),
    ("export-file-in-the-way", "enet-export {pth} -o {bad}/random.pth/x.onnx --verify-frames 0", 1, "not a folder"),
    ("export-size-odd", "enet-export {pth} -o {ws}/x.onnx --size 96x61 --verify-frames 0", 2, "--size"),
    ("export-two-models", "enet-export {pth} --model {pth5} -o {ws}/x.onnx", 2, "two models"),
    # ---- enet-build-engine
    ("build-random-onnx", "enet-build-engine {bad}/random.onnx --fp16 -o {ws}/x.onnx", 1),
    ("build-truncated-onnx", "enet-build-engine {bad}/truncated.onnx --fp16 -o {ws}/x.onnx", 1),
    ("build-pth-as-onnx", "enet-build-engine {pth} --fp16 -o {ws}/x.onnx", 1),
    ("build-int8-file-in-the-way", "enet-build-engine {onnx} --int8 -o {bad}/random.onnx/x.onnx --data-root {data}",
     1, "not a folder"),
    ("build-int8-other-classes", "enet-build-engine {onnx5} --int8 -o {ws}/no/x.onnx --data-root {data}", 1,
     r"^(?!.*\.tmp\.onnx).*pass --data-root with the dataset the model was trained on"),
    ("build-fp32-onnx-default-output", "enet-build-engine {onnx}", 1, "no -o and no TensorRT here"),
    ("build-trt-version-banana", "enet-build-engine {onnx} --fp16 -o {ws}/x.engine --dry-run --trt-version banana", 2,
     "--trt-version"),
    ("build-int8-unwritable", "enet-build-engine {onnx} --int8 -o {ro}/x.onnx --data-root {data}", 1),
    ("build-engine-without-trt", "enet-build-engine {onnx} --int8 -o {ws}/x.engine --data-root {data}", 1,
     "TensorRT"),
    ("build-calib-cache-random", "enet-build-engine {onnx} --int8 -o {ws}/x.onnx --data-root {data} "
     "--calib-cache {bad}/calib.json", 1),
    ("build-calib-images-0", "enet-build-engine {onnx} --int8 -o {ws}/x.onnx --calib-frames 0", 2),
    ("build-percentile-over-100", "enet-build-engine {onnx} --int8 -o {ws}/x.onnx --calib-method percentile "
     "--percentile 150", 2, "--percentile"),
    ("build-calib-cache-unwritable", "enet-build-engine {onnx} --int8 -o {ws}/x.onnx --data-root {data} "
     "--calib-cache {ro}/ranges.json", 1, "--calib-cache"),
    ("build-calib-cache-file-in-the-way", "enet-build-engine {onnx} --int8 -o {ws}/x.onnx --data-root {data} "
     "--calib-cache {bad}/random.pth/ranges.json", 1, "--calib-cache"),
    ("build-timing-cache-unwritable", "enet-build-engine {onnx} --fp16 -o {ws}/x.engine --dry-run --trt-version 10.3 "
     "--timing-cache {ro}/t.cache", 1, "--timing-cache"),
    # ---- enet-export, enet-eval, enet-average (issue 29 items 6, 14, 19, 22, 23)
    ("export-opset-99", "enet-export {pth} -o {ws}/x.onnx --opset 99", 2, "--opset"),
    ("eval-data-root-is-a-file", "enet-eval {onnx} --data-root {clip}", 1, "is a file, not a folder"),
    ("eval-data-before-the-model", "enet-eval {bad}/random.onnx --data-root {ws}/nope", 1, "^(?!.*random).*data root"),
    ("eval-predictions-into-the-labels", "enet-eval {onnx} --data-root {data} --save-predictions {data}/valannot", 1,
     "folder of the dataset"),
    ("eval-predictions-over-the-dataset", "enet-eval {onnx} --data-root {data} --save-predictions {data}", 1,
     "folder of the dataset"),
    ("eval-model-is-a-folder", "enet-eval {bad} --data-root {data}", 1, "is a folder, not a file"),
    ("average-output-is-an-input", "enet-average {pth} {pthshape} -o {pth}", 2, "one of the checkpoints"),
    ("average-other-shapes", "enet-average {pth} {pthshape} -o {ws}/soup.pth", 1, "another network"),
    # ---- enet-bench
    ("bench-onnx-as-model", "enet-bench --device cpu --model {bad}/random.onnx -o {ws}/b", 1),
    ("bench-random-pth", "enet-bench --device cpu --model {bad}/random.pth -o {ws}/b", 1),
    ("bench-duration-0", "enet-bench --device cpu --model {pth} --duration-s 0 -o {ws}/b", 2, "--duration-s"),
    ("bench-threads-0", "enet-bench --device cpu --model {pth} --threads 0 -o {ws}/b", 2, "--threads"),
    ("bench-resolution-malformed", "enet-bench --device cpu --model {pth} --size 12x -o {ws}/b", 2),
    ("bench-unwritable", "enet-bench --device cpu --model {pth} --backend ort -o {ro}/b", 1),
    ("bench-jetson-elsewhere", "enet-bench --machine jetson --model {pth} -o {ws}/b", 1, "Jetson"),
    ("bench-desktop-without-gpu", "enet-bench --machine desktop --model {pth} -o {ws}/b", 1, "GPU"),
    # ---- enet-run
    ("run-missing-input", "enet-run {ws}/nope.mp4 --model {onnx} --no-display", 1),
    ("run-random-mp4", "enet-run {bad}/random.mp4 --model {onnx} --no-display", 1, r"^(?!.*moov)"),
    ("run-random-png", "enet-run {bad}/random.png --model {onnx} --no-display", 1),
    ("run-corrupt-folder", "enet-run {bad}/corrupt_frames --model {onnx} --no-display --stats {ws}/s.jsonl", 1),
    ("run-random-pth", "enet-run {frames} --model {bad}/random.pth --no-display", 1),
    ("run-random-engine", "enet-run {frames} --model {bad}/random.engine --no-display", 1),
    ("run-output-rate-negative", "enet-run {frames} --model {onnx} --no-display --output-rate -5", 2),
    ("run-threads-0", "enet-run {frames} --model {onnx} --no-display --threads 0", 2, "--threads"),
    ("run-input-rate-0", "enet-run {frames} --model {onnx} --no-display --input-rate 0", 2, "--input-rate"),
    ("run-size-malformed", "enet-run {frames} --model {onnx} --no-display --size 12x", 2, "--size"),
    ("run-size-huge", "enet-run {frames} --model {onnx} --no-display --size 100000x100000", 2, "--size"),
    ("run-alpha-2", "enet-run {frames} --model {onnx} --no-display --alpha 2", 2, "--alpha"),
    ("run-frames-0", "enet-run {frames} --model {onnx} --no-display --frames 0", 2, "--frames"),
    ("run-display-without-display", "enet-run {frames} display://0 --model {onnx}", 1, "no display"),
    ("run-video-file-in-the-way", "enet-run {frames} {bad}/random.png/seg.mp4 --model {onnx} --no-display", 1),
    ("run-unwritable-video", "enet-run {frames} {ro}/out.mp4 --model {onnx} --no-display", 1),
    ("run-unwritable-stats", "enet-run {frames} --model {onnx} --no-display --stats {ro}/s.jsonl", 1),
    # ---- enet-demo
    ("demo-unwritable", "enet-demo --model {onnx} -o {ro}/demo", 1),
    ("demo-frames-0", "enet-demo --model {onnx} -o {ws}/demo --frames 0", 2, "--frames"),
    ("demo-size-malformed", "enet-demo --model {onnx} -o {ws}/demo --size 12x", 2, "--size"),
    ("demo-random-pth", "enet-demo --model {bad}/random.pth -o {ws}/demo", 1),
    # ---- enet-batch (all fail before Ray starts)
    ("batch-missing-input", "enet-batch {ws}/nope.mp4 -o {ws}/out --model {onnx}", 1, "does not exist"),
    ("batch-unwritable-output", "enet-batch {clip} -o {ro}/out --model {onnx}", 1),
    ("batch-random-model", "enet-batch {clip} -o {ws}/out --model {bad}/random.onnx", 1),
    ("batch-compare-other-classes", "enet-batch {clip} -o {ws}/out --model {pth} --compare {pth5} --backend torch", 1),
    ("batch-workers-0", "enet-batch {clip} -o {ws}/out --model {onnx} --workers 0", 2, "--workers"),
    ("batch-size-malformed", "enet-batch {clip} -o {ws}/out --model {onnx} --size 12x", 2, "--size"),
    ("demo-backend-fails-after-the-clip", "enet-demo --model {onnx} --backend trt -o {ws}/demo -q --data-root {data}",
     1, "engine"),
]


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    """Broken and valid inputs shared by every case (read-only use)."""
    import cv2
    import torch

    from enet.camvid import default_metadata
    from enet.checkpoint import make_checkpoint, save_checkpoint
    from enet.export.onnx import export_onnx
    from enet.model import ENet

    root = tmp_path_factory.mktemp("badinput")
    bad = root / "bad"
    bad.mkdir()
    rng = np.random.default_rng(0)
    onnx = root / "tiny.onnx"
    export_onnx(tiny_checkpoint, onnx)
    for name in ("random.pth", "random.onnx", "random.engine", "random.png", "random.mp4"):
        (bad / name).write_bytes(rng.bytes(4096))
    for src, name in ((tiny_checkpoint, "truncated.pth"), (onnx, "truncated.onnx")):
        data = src.read_bytes()
        (bad / name).write_bytes(data[: len(data) // 2])
    (bad / "sidecar.engine").write_bytes(rng.bytes(4096))
    (bad / "sidecar.engine.json").write_text("{not json")
    (bad / "calib.json").write_bytes(rng.bytes(512))
    (bad / "corrupt_frames").mkdir()
    (bad / "corrupt_frames" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(100))

    torch.manual_seed(0)
    meta = default_metadata()
    meta.update(input_size=[64, 96], classes=meta["classes"][:5], palette=meta["palette"][:5])
    pth5 = root / "five.pth"
    save_checkpoint(pth5, make_checkpoint(ENet(5).eval(), meta))
    onnx5 = root / "five.onnx"
    export_onnx(pth5, onnx5)
    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)  # same names, one other shape
    key = next(k for k, v in ckpt["state_dict"].items() if v.ndim == 4)
    ckpt["state_dict"][key] = torch.zeros(ckpt["state_dict"][key].shape[0] + 2, *ckpt["state_dict"][key].shape[1:])
    pthshape = root / "othershape.pth"
    torch.save(ckpt, pthshape)
    earlier = root / "earlier_run"  # what enet-train leaves: a log (and checkpoints)
    earlier.mkdir()
    (earlier / "log.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n')

    data = write_camvid_like(root / "data", splits={"train": 2, "val": 2}, size=(64, 96))
    frames = root / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i:04d}.png"), rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    clip = root / "clip.mp4"
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for _ in range(5):
        vw.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    vw.release()
    return {"bad": bad, "pth": tiny_checkpoint, "onnx": onnx, "pth5": pth5, "pthshape": pthshape, "onnx5": onnx5, "earlier": earlier, "data": data,
            "frames": frames, "clip": clip, "root": root}


def _listing(*folders: Path) -> set[str]:
    return {str(p) for f in folders if f.exists() for p in f.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case: tuple, bad_files: dict[str, Path], tmp_path: Path) -> None:
    _, command, code, *pattern = case
    ws = tmp_path / "ws"
    ws.mkdir()
    places = {k: str(v) for k, v in bad_files.items()} | {"ws": str(ws), "ro": str(unwritable_folder(tmp_path))}
    argv = shlex.split(command.format(**places))
    exe = shutil.which(argv[0], path=str(BIN))
    assert exe, f"{argv[0]} is not installed in {BIN}"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), ENET_CAMVID=str(bad_files["data"]),
               PYTHONWARNINGS="ignore::DeprecationWarning")
    env.pop("DISPLAY", None)
    before = _listing(ws, bad_files["root"])
    r = subprocess.run([exe, *argv[1:]], cwd=ws, env=env, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    lines = r.stderr.strip().splitlines()
    report = f"exit {r.returncode}, stderr:\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, report
    assert r.returncode == code, report
    assert len(lines) == 1, report
    assert re.match(rf"{argv[0]}: error: ", lines[0]), report
    if pattern:
        assert re.search(pattern[0], lines[0]), report
    assert _listing(ws, bad_files["root"]) == before, "left behind: " + ", ".join(
        sorted(_listing(ws, bad_files["root"]) - before))
