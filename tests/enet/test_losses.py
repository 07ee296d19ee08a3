"""Training losses and weight averaging (enet.losses), and their place in enet-train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from enet.checkpoint import load_checkpoint
from enet.losses import EMA, SegmentationLoss, lovasz_softmax, ohem_cross_entropy
from enet.train import Trainer, TrainConfig


def _jaccard_loss(pred: torch.Tensor, labels: torch.Tensor, ignore: int) -> float:
    keep = labels != ignore
    pred, labels = pred[keep], labels[keep]
    losses = []
    for c in labels.unique().tolist():
        inter = ((pred == c) & (labels == c)).sum().item()
        union = ((pred == c) | (labels == c)).sum().item()
        losses.append(1 - inter / union)
    return sum(losses) / len(losses)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_equals_jaccard_loss_on_hard_predictions(seed: int):
    # the Lovasz extension agrees with the set function on {0, 1} errors: 1 - IoU per present class
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (2, 9, 7), generator=g)
    pred = torch.randint(0, 4, (2, 9, 7), generator=g)
    logits = nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float() * 60.0
    got = lovasz_softmax(logits, labels, ignore_index=4).item()
    assert got == pytest.approx(_jaccard_loss(pred, labels, 4), abs=1e-6)


def test_lovasz_is_zero_when_perfect_and_has_gradients():
    labels = torch.randint(0, 3, (1, 6, 6))
    perfect = nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float() * 60.0
    assert lovasz_softmax(perfect, labels).item() == pytest.approx(0.0, abs=1e-6)
    logits = torch.randn(1, 3, 6, 6, requires_grad=True)
    SegmentationLoss("ce+lovasz", torch.ones(3), ignore_index=255)(logits, labels).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_lovasz_with_only_ignored_pixels_is_zero():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = lovasz_softmax(logits, torch.full((1, 2, 2), 3), ignore_index=3)
    loss.backward()
    assert loss.item() == 0.0


def test_ohem_keeps_only_hard_pixels_with_class_weights():
    # pixel 0, 1: confident and right (p > 0.7, easy); 2: wrong; 3: void
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [4.0, 0.0], [0.0, 0.0]]).T.reshape(1, 2, 1, 4)
    labels = torch.tensor([[[0, 1, 1, 9]]])
    weight = torch.tensor([1.0, 3.0])
    got = ohem_cross_entropy(logits, labels, weight, ignore_index=9, min_kept=0.0)
    # only pixel 2 is hard: its weighted mean is its plain negative log-likelihood
    assert got.item() == pytest.approx(-torch.log_softmax(torch.tensor([4.0, 0.0]), 0)[1].item(), rel=1e-6)


def test_ohem_keeps_at_least_min_kept_and_equals_ce_when_all_are_kept():
    logits = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)) * 4
    labels = torch.randint(0, 3, (2, 4, 5), generator=torch.Generator().manual_seed(1))
    weight = torch.tensor([1.0, 2.0, 0.5])
    everything = ohem_cross_entropy(logits, labels, weight, ignore_index=7, threshold=1.1)
    assert everything.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels, weight=weight).item(), rel=1e-5)
    # nothing is hard below probability 0: the hardest half still counts, so the loss is at least the mean
    half = ohem_cross_entropy(logits, labels, None, ignore_index=7, threshold=0.0, min_kept=0.5)
    assert half.item() >= torch.nn.functional.cross_entropy(logits, labels).item()
    SegmentationLoss("ohem+lovasz", weight, ignore_index=7)(logits.requires_grad_(), labels).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_ohem_with_only_ignored_pixels_is_zero():
    logits = torch.randn(1, 2, 2, 2, requires_grad=True)
    assert ohem_cross_entropy(logits, torch.full((1, 2, 2), 3), ignore_index=3).item() == 0.0


def test_ema_averages_weights_and_copies_integer_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model[1].num_batches_tracked += 3
    before = ema.model[0].weight.clone()
    ema.update(model)  # first update: d = min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.model[0].weight, d * before + (1 - d) * model[0].weight)
    assert ema.model[1].num_batches_tracked.item() == 3
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_lovasz_ema_run_resumes_exactly_and_saves_the_average(tiny_camvid: Path, tmp_path: Path):
    def cfg(out: Path) -> TrainConfig:
        return TrainConfig(data_root=str(tiny_camvid), output=str(out), epochs=2, batch_size=2, size=(32, 48),
                           val_size=(48, 64), lr=1e-3, threads=1, loss="ce+lovasz", ema=0.9)

    straight = Trainer(cfg(tmp_path / "a"), progress=False)
    straight.fit()
    interrupted = Trainer(cfg(tmp_path / "b"), progress=False)
    calls = {"n": 0}
    real = interrupted.criterion.forward

    def stop_after_three(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            interrupted._stop = True
        return real(*a, **k)

    interrupted.criterion.forward = stop_after_three
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    resumed = Trainer(resume=str(tmp_path / "b" / "last.pth"), progress=False,
                      overrides={"data_root": str(tiny_camvid), "output": str(tmp_path / "b")})
    resumed.fit()
    a, b = (load_checkpoint(tmp_path / r / "last.pth") for r in "ab")
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k])
    ema_a, ema_b = a["train_state"]["ema"], b["train_state"]["ema"]
    assert ema_a["updates"] == ema_b["updates"] > 0
    assert all(torch.equal(ema_a["state_dict"][k], ema_b["state_dict"][k]) for k in ema_a["state_dict"])
    # best.pth holds the average, not the raw weights
    best = load_checkpoint(tmp_path / "a" / "best.pth")
    assert best["meta"]["train_config"]["loss"] == "ce+lovasz"
    raw, avg = a["state_dict"], ema_a["state_dict"]
    assert any(not torch.equal(raw[k], avg[k]) for k in raw)
    best_epoch = best["meta"]["metrics"]["epoch"]
    if best_epoch == 2:
        assert all(torch.equal(best["state_dict"][k], avg[k]) for k in avg)


def test_init_from_takes_a_shipped_name(tiny_camvid: Path, tmp_path: Path):
    """`--init-from camvid-v1` (make reference-model's stage C) starts from the packaged file, by name."""
    from enet.weights import get_weights

    cfg = TrainConfig(data_root=str(tiny_camvid), output=str(tmp_path / "c"), epochs=1, batch_size=2, size=(32, 48),
                      val_size=(48, 64), lr=0.0, threads=1, loss="ohem+lovasz", init_from="camvid-v1")
    trainer = Trainer(cfg, progress=False)
    shipped = load_checkpoint(get_weights("camvid-v1").path())["state_dict"]
    assert all(torch.equal(v, shipped[k]) for k, v in trainer.model.state_dict().items())
    trainer.fit()
    assert load_checkpoint(tmp_path / "c" / "best.pth")["meta"]["train_config"]["init_from"] == "camvid-v1"
