"""Training on several processes: sharding, a 2-process gloo run with torchrun, exact resume."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enet.checkpoint import load_checkpoint
from enet.engine.eval_cli import main as eval_main
from enet.train import EpochSampler, Trainer, TrainConfig


def test_sampler_shards_cover_the_epoch_and_one_rank_is_unchanged():
    one = EpochSampler(10, seed=3)
    one.set_epoch(2)
    order = list(one)
    g = torch.Generator().manual_seed(3 * 100003 + 2)
    assert order == torch.randperm(10, generator=g).tolist()  # the single-process order of before
    shards = []
    for rank in range(3):
        s = EpochSampler(10, seed=3, rank=rank, world_size=3)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(s) == 4
    assert set(sum(shards, [])) == set(range(10))  # 12 slots: two items are repeated, none left out
    assert shards[0] == order[0::3]
    s = EpochSampler(10, seed=3, rank=1, world_size=3)
    s.set_epoch(2, start=2)
    assert list(s) == shards[1][2:] and len(s) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg: dict, out: str) -> None:
    """One process of a gloo group, as torchrun would start it: a straight run, an interrupted one, its resume."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    Trainer(TrainConfig(**{**cfg, "output": f"{out}/a"}), progress=False).fit()
    t = Trainer(TrainConfig(**{**cfg, "output": f"{out}/b"}), progress=False)
    calls = {"n": 0}
    real = t.criterion.forward

    def stop_after_one_batch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1 and rank == 1:  # first batch of two, on one rank only
            t._stop = True
        return real(*a, **k)

    t.criterion.forward = stop_after_one_batch
    with pytest.raises(KeyboardInterrupt, match="resumable"):
        t.fit()
    t = Trainer(resume=f"{out}/b/last.pth", progress=False)
    t.fit()
    t.close()


@pytest.mark.slow
def test_two_process_resume_mid_epoch_is_exact(tiny_custom: Path, tmp_path: Path):
    import torch.multiprocessing as mp

    cfg = TrainConfig(data_root=str(tiny_custom), output="", epochs=1, batch_size=4, size=(32, 48),
                      val_size=(32, 48), threads=1, train_limit=16, val_limit=2)
    mp.spawn(_worker, args=(2, _free_port(), dataclasses.asdict(cfg), str(tmp_path)), nprocs=2, join=True)
    a, b = (load_checkpoint(tmp_path / x / "last.pth") for x in "ab")
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    st = b["train_state"]
    assert (st["epoch"], st["world_size"]) == (1, 2) and len(st["rank_rng"]) == 2
    logs = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in logs] == [1]


@pytest.mark.slow
def test_torchrun_two_processes_on_the_cpu(tiny_custom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bindir = Path(sys.executable).parent
    run = tmp_path / "RUN2"
    r = subprocess.run([str(bindir / "torchrun"), "--nproc-per-node", "2", "--no-python", str(bindir / "enet-train"),
                        "--data-root", str(tiny_custom), "-o", str(run), "--epochs", "1", "--size", "48x32",
                        "--val-size", "64x48", "--batch", "4", "--device", "cpu", "-q",
                        "--train-frames", "8", "--val-frames", "4"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("best val mIoU") == 1  # rank 0 reports, rank 1 is silent
    ckpt = load_checkpoint(run / "last.pth")
    assert ckpt["train_state"]["world_size"] == 2 and ckpt["meta"]["classes"] == ["road", "lane", "obstacle"]
    assert len((run / "log.jsonl").read_text().splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == ["best.pth", "last.pth", "log.jsonl"]
    assert eval_main([str(run / "best.pth"), "--data-root", str(tiny_custom), "--split", "val", "-q"]) == 0
    assert "mIoU" in capsys.readouterr().out
