"""Training on your own classes and on Cityscapes: the checkpoint carries the dataset's classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from enet.checkpoint import load_checkpoint, load_model
from enet.cli import train_main
from enet.engine.eval_cli import main as eval_main
from enet.train import Trainer, TrainConfig
from tests.datagen import CLASSES, PALETTE


def test_custom_train_and_eval_cli(tiny_custom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    run = tmp_path / "run"
    rc = train_main(["--data-root", str(tiny_custom), "-o", str(run), "--epochs", "1", "--batch", "8",
                     "--size", "48x32", "--val-size", "64x48", "--threads", "1", "-q"])
    assert rc == 0
    capsys.readouterr()
    model, meta = load_model(run / "best.pth")
    assert model.num_classes == 3 and meta["classes"] == list(CLASSES)
    assert meta["palette"] == [list(c) for c in PALETTE] and meta["void_index"] == 255
    assert meta["input_size"] == [48, 64] and meta["train_config"]["dataset"] == "auto"
    assert all(0 < v < 1 for v in meta["mean"] + meta["std"])  # measured on the train images
    rc = eval_main([str(run / "best.pth"), "--data-root", str(tiny_custom), "--split", "val",
                    "--json", str(tmp_path / "m.json"), "-q"])
    assert rc == 0
    assert "obstacle" in capsys.readouterr().out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["frames"] == 8 and list(m["per_class"]) == list(CLASSES)
    # --resume without --data-root continues on the run's own dataset (not the default CamVid)
    assert train_main(["--resume", str(run / "last.pth"), "--epochs", "2", "-q"]) == 0
    assert load_checkpoint(run / "last.pth")["train_state"]["epoch"] == 2


def test_cityscapes_training_and_evaluation(tiny_cityscapes: Path, tmp_path: Path):
    from enet.engine.runtime.backend import evaluate_backend
    from enet.engine.runtime.torch_backend import TorchBackend

    cfg = TrainConfig(data_root=str(tiny_cityscapes), dataset="cityscapes", output=str(tmp_path / "cs"), epochs=1,
                      batch_size=8, size=(32, 48), val_size=(48, 64), threads=1)
    t = Trainer(cfg, progress=False)
    assert t.criterion.ignore_index == 255 and t.model.num_classes == 19
    t.fit()
    meta = load_checkpoint(tmp_path / "cs" / "best.pth")["meta"]
    assert len(meta["classes"]) == 19 and meta["palette"][0] == [128, 64, 128]
    with TorchBackend(tmp_path / "cs" / "best.pth", device="cpu") as b:
        s = evaluate_backend(b, tiny_cityscapes, "val")
    assert s["frames"] == 8 and set(s["per_class"]) >= {"road", "sidewalk", "car"}


def test_fine_tuning_from_another_class_set_keeps_all_but_the_classifier(tiny_custom: Path, tmp_path: Path,
                                                                         tiny_checkpoint: Path):
    cfg = TrainConfig(data_root=str(tiny_custom), output=str(tmp_path / "ft"), epochs=1, batch_size=8,
                      size=(32, 48), val_size=(32, 48), threads=1, init_from=str(tiny_checkpoint))
    t = Trainer(cfg, progress=False)
    src = load_checkpoint(tiny_checkpoint)["state_dict"]
    own = t.model.state_dict()
    assert torch.equal(own["initial.conv.weight"], src["initial.conv.weight"])
    assert own["fullconv.weight"].shape[1] == 3 and src["fullconv.weight"].shape[1] == 11


def test_resume_refuses_another_dataset(tiny_custom: Path, tiny_camvid: Path, tmp_path: Path):
    from enet.errors import DataError

    cfg = TrainConfig(data_root=str(tiny_custom), output=str(tmp_path / "r"), epochs=1, batch_size=8,
                      size=(32, 48), val_size=(32, 48), threads=1)
    Trainer(cfg, progress=False).fit()
    with pytest.raises(DataError, match="resume on the same dataset"):
        Trainer(resume=str(tmp_path / "r" / "last.pth"), overrides={"data_root": str(tiny_camvid), "epochs": 2})
