"""Training: one epoch on generated data, exact resume, checkpoints, CLIs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enet.checkpoint import load_checkpoint, load_model
from enet.cli import train_main
from enet.engine.eval_cli import main as eval_main
from enet.errors import CheckpointError, EnetError
from enet.train import Trainer, TrainConfig


def _cfg(root: Path, out: Path, epochs: int = 2) -> TrainConfig:
    return TrainConfig(data_root=str(root), output=str(out), epochs=epochs, batch_size=2, size=(32, 48),
                       val_size=(48, 64), lr=1e-3, threads=1)


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a)["state_dict"], load_checkpoint(b)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_one_epoch_writes_checkpoints_and_log(tiny_camvid: Path, tmp_path: Path):
    t = Trainer(_cfg(tiny_camvid, tmp_path / "run", epochs=1), progress=False)
    metrics = t.fit()
    assert 0.0 <= metrics["miou"] <= 1.0
    run = tmp_path / "run"
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1] and "val_miou" in recs[0]
    last = torch.load(run / "last.pth", weights_only=True)
    assert {"optimizer", "torch_rng", "epoch"} <= set(last["train_state"])
    best = load_checkpoint(run / "best.pth")
    assert "train_state" not in best
    assert best["meta"]["train_config"]["lr"] == 1e-3
    assert best["meta"]["metrics"]["miou"] == metrics["miou"]
    model, meta = load_model(run / "best.pth")
    assert meta["classes"][3] == "Road" and model.num_classes == 11
    assert not list(run.glob("*.tmp"))


def test_resume_mid_epoch_is_exact(tiny_camvid: Path, tmp_path: Path):
    straight = Trainer(_cfg(tiny_camvid, tmp_path / "a"), progress=False)
    straight.fit()

    interrupted = Trainer(_cfg(tiny_camvid, tmp_path / "b"), progress=False)
    calls = {"n": 0}
    real = interrupted.criterion.forward

    def stop_after_four(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # second batch of epoch 2
            interrupted._stop = True
        return real(*a, **k)

    interrupted.criterion.forward = stop_after_four
    with pytest.raises(KeyboardInterrupt, match="resumable"):
        interrupted.fit()
    st = torch.load(tmp_path / "b" / "last.pth", weights_only=True)["train_state"]
    assert (st["epoch"], st["step_in_epoch"]) == (1, 1)

    resumed = Trainer(resume=str(tmp_path / "b" / "last.pth"), progress=False,
                      overrides={"data_root": str(tiny_camvid), "output": str(tmp_path / "b")})
    resumed.fit()
    assert _same_weights(tmp_path / "a" / "last.pth", tmp_path / "b" / "last.pth")


def test_resume_needs_training_state(tiny_camvid: Path, tmp_path: Path, tiny_checkpoint: Path):
    with pytest.raises(EnetError, match="no training state"):
        Trainer(resume=str(tiny_checkpoint))


def test_train_and_eval_cli(tiny_camvid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "cli"
    rc = train_main(["--data-root", str(tiny_camvid), "-o", str(out), "--epochs", "1", "--batch", "3",
                     "--size", "48x32", "--val-size", "64x48", "--threads", "1", "-q"])
    assert rc == 0
    assert "best val mIoU" in capsys.readouterr().out
    preds = tmp_path / "preds"
    rc = eval_main([str(out / "best.pth"), "--data-root", str(tiny_camvid), "--split", "val",
                    "--json", str(tmp_path / "m.json"), "--save-predictions", str(preds), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Pedestrian" in text and "mIoU" in text
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["frames"] == 3 and set(m["per_class"]) >= {"Road", "Car"}
    import cv2

    for lab in (tiny_camvid / "valannot").iterdir():
        p = cv2.imread(str(preds / lab.name), cv2.IMREAD_UNCHANGED)
        assert p.dtype.name == "uint8" and p.shape == (48, 64) and p.max() < 11


def test_train_over_an_earlier_run(tiny_camvid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Re-running enet-train -o DIR is refused (one line naming --resume and --overwrite); --overwrite starts over."""
    argv = ["--data-root", str(tiny_camvid), "-o", str(tmp_path), "--epochs", "1", "--batch", "3",
            "--size", "48x32", "--val-size", "48x32", "--threads", "1", "-q"]
    (tmp_path / "log.jsonl").write_text('{"epoch": 1, "train_loss": 9.0}\n{"epoch": 2, "train_loss": 9.0}\n')
    assert train_main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "--overwrite" in err[0]
    assert train_main([*argv, "--overwrite"]) == 0
    records = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1] and records[0]["train_loss"] != 9.0
    assert records[0]["dataset"] == "camvid"


@pytest.mark.parametrize("content,match", [
    (None, "does not exist"),
    (b"garbage bytes, definitely not a zip or pickle", "not a readable checkpoint"),
    ("dict", "not an enet-rt checkpoint"),
])
def test_bad_checkpoints_are_refused_in_one_line(tmp_path: Path, content, match, capsys):
    p = tmp_path / "model.pth"
    if content == "dict":
        torch.save({"state_dict": {}}, p)
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(p)
    rc = eval_main([str(p), "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err


def test_mismatched_classes_refused(tmp_path: Path, tiny_checkpoint: Path):
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    ckpt["meta"]["classes"] = ckpt["meta"]["classes"][:5]
    torch.save(ckpt, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="5 class names for a 11-class model"):
        load_checkpoint(tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="expected 19"):
        load_model(tiny_checkpoint, num_classes=19)


def test_train_cli_bad_size_is_one_line(tiny_camvid: Path, tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "enet.cli_entry", "enet-train", "--data-root", str(tiny_camvid),
                        "--size", "50x30", "-o", str(tmp_path / "r")], capture_output=True, text=True)
    assert r.returncode == 2  # a size is wrong by itself: README "Exit codes"
    assert "multiples of 8" in r.stderr and "Traceback" not in r.stderr


def test_encoder_first_stage_trains_encoder_then_whole_net(tiny_camvid: Path, tmp_path: Path):
    cfg = _cfg(tiny_camvid, tmp_path / "enc", epochs=2)
    cfg.encoder_epochs = 1
    t = Trainer(cfg, progress=False)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.epoch = 0
    t.cfg.epochs = 1
    t.fit()
    after = t.model.state_dict()
    assert torch.equal(before["fullconv.weight"], after["fullconv.weight"])  # decoder untouched
    assert not torch.equal(before["initial.conv.weight"], after["initial.conv.weight"])
    st = torch.load(tmp_path / "enc" / "last.pth", weights_only=True)["train_state"]
    assert st["encoder_head"] is not None
