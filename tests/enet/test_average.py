"""enet-average: the uniform weight average of checkpoints (a model soup)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enet.camvid import default_metadata
from enet.checkpoint import average_checkpoints, load_checkpoint, load_model, make_checkpoint, save_checkpoint
from enet.errors import CheckpointError
from enet.fileio import sha256_file
from enet.model import ENet

BIN = Path(sys.executable).parent


def _checkpoint(path: Path, seed: int, **meta_extra) -> Path:
    torch.manual_seed(seed)
    model = ENet(11).eval()
    with torch.no_grad():  # BatchNorm statistics differ too, so they are averaged like the weights
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(seed + 1)
    meta = default_metadata() | {"input_size": [64, 96]} | meta_extra
    save_checkpoint(path, make_checkpoint(model, meta))
    return path


def test_average_is_the_mean_of_every_float_tensor(tmp_path: Path) -> None:
    paths = [_checkpoint(tmp_path / f"{i}.pth", i, train_config={"lr": i}, metrics={"miou": i / 10})
             for i in range(3)]
    soup = average_checkpoints(paths)
    states = [load_checkpoint(p)["state_dict"] for p in paths]
    for k, v in soup["state_dict"].items():
        if v.is_floating_point():
            expect = (states[0][k].double() + states[1][k].double() + states[2][k].double()) / 3
            assert torch.allclose(v.double(), expect, atol=1e-7), k
            assert v.dtype == states[0][k].dtype
        else:  # BatchNorm's step count: the first one's
            assert torch.equal(v, states[0][k]), k
    meta = soup["meta"]
    assert "train_config" not in meta and "metrics" not in meta and "train_state" not in soup
    assert [a["sha256"] for a in meta["average_of"]] == [sha256_file(p) for p in paths]
    assert [a["train_config"] for a in meta["average_of"]] == [{"lr": 0}, {"lr": 1}, {"lr": 2}]
    assert meta["classes"] == default_metadata()["classes"]


def test_average_of_one_file_with_itself_is_that_file(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pth", 0)
    soup = average_checkpoints([a, a])
    for k, v in load_checkpoint(a)["state_dict"].items():
        assert torch.equal(soup["state_dict"][k], v), k


def test_refused_inputs(tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pth", 0)
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([a])
    other = _checkpoint(tmp_path / "b.pth", 1, classes=[f"c{i}" for i in range(11)])
    with pytest.raises(CheckpointError, match="other classes"):
        average_checkpoints([a, other])


def test_cli_writes_a_checkpoint_every_tool_loads(tmp_path: Path) -> None:
    a, b = _checkpoint(tmp_path / "a.pth", 0), _checkpoint(tmp_path / "b.pth", 1)
    out = tmp_path / "new" / "soup.pth"
    r = subprocess.run([str(BIN / "enet-average"), str(a), str(b), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "average of 2 checkpoints" in r.stdout
    model, meta = load_model(out)
    assert isinstance(model, ENet) and len(meta["average_of"]) == 2
    assert sorted(p.name for p in out.parent.iterdir()) == ["soup.pth"]  # no temp file left
    assert "metrics" not in meta  # nothing measured it


def test_cli_measures_the_average_on_val(tmp_path: Path, tiny_camvid: Path) -> None:
    a, b = _checkpoint(tmp_path / "a.pth", 0), _checkpoint(tmp_path / "b.pth", 1)
    out = tmp_path / "soup.pth"
    r = subprocess.run([str(BIN / "enet-average"), str(a), str(b), "-o", str(out), "--data-root", str(tiny_camvid)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    metrics = load_checkpoint(out)["meta"]["metrics"]
    assert "val mIoU" in r.stdout and 0.0 <= metrics["miou"] <= 1.0
    assert set(metrics["per_class"]) == set(default_metadata()["classes"])
