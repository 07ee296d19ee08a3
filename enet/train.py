"""Training loop for ENet on CamVid (paper Section 5.2: Adam, lr 5e-4, wd 2e-4).

Outputs in ``--output`` (default ``runs/enet``):

* ``last.pth``: resumable checkpoint (weights, metadata, optimizer, scheduler,
  epoch, position inside the epoch, RNG state), written every epoch and on
  Ctrl-C/SIGTERM.
* ``best.pth``: weights + metadata of the best val mIoU so far (no optimizer).
* ``log.jsonl``: one JSON record per epoch.

Resume is exact: the sample order and every augmentation are pure functions
of ``(seed, epoch, index)``, and the dropout RNG state is saved, so an
interrupted run continued with ``--resume`` reaches the same weights as an
uninterrupted one (on the same machine and thread count).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from enet.camvid import default_metadata
from enet.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from enet.data import Augment, CamVid, class_weights
from enet.device import resolve_device
from enet.errors import EnetError
from enet.fileio import atomic_open
from enet.metrics import ConfusionMatrix
from enet.model import ENet, check_input_size

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in every checkpoint's metadata."""

    data_root: str
    output: str = "runs/enet"
    epochs: int = 100
    batch_size: int = 8
    size: tuple[int, int] = (360, 480)          # training crop (H, W)
    val_size: tuple[int, int] = (360, 480)      # evaluation size (H, W)
    lr: float = 5e-4
    weight_decay: float = 2e-4
    schedule: str = "poly"                      # poly | step | constant
    step_size: int = 100                        # epochs per x0.1 (step)
    poly_power: float = 0.9
    warmup_epochs: int = 0
    encoder_epochs: int = 0                     # paper Section 5.2: encoder first, on 1/8 labels
    weighting: str = "enet"                     # enet | median | none
    scale: tuple[float, float] = (0.75, 1.5)
    flip: float = 0.5
    jitter: float = 0.2
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int | None = None
    val_every: int = 1
    val_limit: int | None = None
    train_limit: int | None = None
    init_from: str | None = None                # weights to start from (fine-tuning)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["size"], d["val_size"], d["scale"] = list(self.size), list(self.val_size), list(self.scale)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        for k in ("size", "val_size", "scale"):
            if k in d:
                d[k] = tuple(d[k])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class EpochSampler(Sampler[int]):
    """Seeded permutation per epoch, optionally skipping the first ``start`` items."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


def lr_factor(cfg: TrainConfig, epoch: int) -> float:
    """Learning-rate multiplier at the start of ``epoch`` (0-based)."""
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return (epoch + 1) / cfg.warmup_epochs
    if cfg.schedule == "poly":
        return (1 - epoch / max(cfg.epochs, 1)) ** cfg.poly_power
    if cfg.schedule == "step":
        return 0.1 ** (epoch // max(cfg.step_size, 1))
    if cfg.schedule == "constant":
        return 1.0
    raise EnetError(f"unknown schedule {cfg.schedule!r}; use poly, step or constant")


class _StopRequested(Exception):
    pass


class Trainer:
    """Runs a :class:`TrainConfig`; see the module docstring for its outputs."""

    #: Settings a resumed run may change; the recipe itself stays as saved.
    RESUME_OVERRIDES = ("data_root", "output", "epochs", "device", "workers", "threads")

    def __init__(self, cfg: TrainConfig | None = None, *, resume: str | None = None,
                 overrides: dict[str, Any] | None = None, progress: bool = True) -> None:
        self.progress = progress
        if resume:
            ckpt = load_checkpoint(resume)
            if "train_state" not in ckpt:
                raise EnetError(f"{resume} has no training state (a best.pth or shipped model?); "
                                "resume from last.pth, or start a new run with --init-from")
            cfg = TrainConfig.from_json(ckpt["meta"]["train_config"])
            changes = {k: v for k, v in (overrides or {}).items() if k in self.RESUME_OVERRIDES and v is not None}
            cfg = dataclasses.replace(cfg, **changes)
        elif cfg is None:
            raise ValueError("Trainer needs a config or a checkpoint to resume")
        self.cfg = cfg
        for hw in (cfg.size, cfg.val_size):
            check_input_size(*hw)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        self.out = Path(cfg.output)
        self.out.mkdir(parents=True, exist_ok=True)
        self.meta = default_metadata()
        self.meta["input_size"] = list(cfg.val_size)
        mean, std = self.meta["mean"], self.meta["std"]
        aug = Augment(scale=cfg.scale, flip=cfg.flip, brightness=cfg.jitter, contrast=cfg.jitter,
                      saturation=cfg.jitter)
        self.train_set = CamVid(cfg.data_root, "train", size=cfg.size, mean=mean, std=std, augment=aug,
                                seed=cfg.seed, limit=cfg.train_limit)
        self.val_set = CamVid(cfg.data_root, "val", size=cfg.val_size, mean=mean, std=std,
                              limit=cfg.val_limit)
        weights = class_weights(self.train_set.labels(), 11, cfg.weighting)
        log.info("class weights (%s): %s", cfg.weighting, np.round(weights, 2).tolist())
        self.criterion = nn.CrossEntropyLoss(weight=torch.from_numpy(weights).to(self.device), ignore_index=11)

        torch.manual_seed(cfg.seed)
        self.model = ENet(11).to(self.device)
        # Encoder-first stage: a 1x1 classifier on the encoder output, trained
        # against labels subsampled by 8, then dropped.
        self.encoder_head = nn.Conv2d(128, 11, 1).to(self.device) if cfg.encoder_epochs else None
        params = list(self.model.parameters()) + (list(self.encoder_head.parameters()) if self.encoder_head else [])
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.epoch, self.step_in_epoch = 0, 0
        self.running = [0.0, 0]  # loss sum, batches in the current epoch
        self.best = -1.0
        self.history_best_epoch = -1
        if resume:
            self._restore(ckpt)
        elif cfg.init_from:
            init = load_checkpoint(cfg.init_from)
            self.model.load_state_dict(init["state_dict"])
            log.info("initialised weights from %s", cfg.init_from)
        self.sampler = EpochSampler(len(self.train_set), cfg.seed)
        self._stop = False

    # -- state ------------------------------------------------------------
    def _train_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "running": list(self.running),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_miou": self.best,
            "best_epoch": self.history_best_epoch,
            "encoder_head": self.encoder_head.state_dict() if self.encoder_head is not None else None,
        }

    def _restore(self, ckpt: dict[str, Any]) -> None:
        st = ckpt["train_state"]
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.epoch, self.step_in_epoch = int(st["epoch"]), int(st["step_in_epoch"])
        self.running = [float(st["running"][0]), int(st["running"][1])]
        torch.set_rng_state(st["torch_rng"])
        self.best, self.history_best_epoch = float(st["best_miou"]), int(st["best_epoch"])
        if self.encoder_head is not None and st.get("encoder_head") is not None:
            self.encoder_head.load_state_dict(st["encoder_head"])
        log.info("resumed at epoch %d, batch %d", self.epoch + 1, self.step_in_epoch)

    def _meta(self, metrics: dict[str, Any] | None) -> dict[str, Any]:
        meta = dict(self.meta)
        meta["train_config"] = self.cfg.to_json()
        meta["metrics"] = metrics or {}
        return meta

    def save_last(self) -> Path:
        path = self.out / "last.pth"
        save_checkpoint(path, make_checkpoint(self.model, self._meta(self._last_metrics), self._train_state()))
        return path

    # -- loop -------------------------------------------------------------
    def _set_lr(self) -> float:
        lr = self.cfg.lr * lr_factor(self.cfg, self.epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stop = True

    def fit(self) -> dict[str, Any]:
        """Train to ``cfg.epochs``; returns the last val metrics.

        Ctrl-C or SIGTERM finishes the current batch, saves ``last.pth`` and
        raises :class:`KeyboardInterrupt` for the CLI to report.
        """
        from tqdm import tqdm

        self._last_metrics: dict[str, Any] | None = None
        old_term = signal.signal(signal.SIGTERM, self._request_stop)
        try:
            while self.epoch < self.cfg.epochs:
                self._run_epoch(tqdm)
        except (KeyboardInterrupt, _StopRequested):
            path = self.save_last()
            raise KeyboardInterrupt(
                f"stopped in epoch {self.epoch + 1} at batch {self.step_in_epoch}; resumable checkpoint {path}"
            ) from None
        finally:
            signal.signal(signal.SIGTERM, old_term)
        return self._last_metrics or {}

    def _run_epoch(self, tqdm: Any) -> None:
        cfg = self.cfg
        lr = self._set_lr()
        self.train_set.set_epoch(self.epoch)
        bs = cfg.batch_size
        self.sampler.set_epoch(self.epoch, self.step_in_epoch * bs)
        loader = DataLoader(self.train_set, batch_size=bs, sampler=self.sampler, num_workers=cfg.workers,
                            drop_last=False, persistent_workers=False,
                            # own generator: creating the loader must not draw from the global RNG
                            # (dropout's), or a mid-epoch resume would diverge
                            generator=torch.Generator().manual_seed(cfg.seed + self.epoch))
        n_batches = math.ceil(len(self.train_set) / bs)
        t0 = time.time()
        self.model.train()
        bar = tqdm(loader, total=n_batches, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not self.progress, leave=False, dynamic_ncols=True)
        for x, y in bar:
            x, y = x.to(self.device), y.to(self.device)
            if self.encoder_head is not None and self.epoch < cfg.encoder_epochs:
                loss = self.criterion(self.encoder_head(self.model.encode(x)[0]), y[:, 4::8, 4::8])
            else:
                loss = self.criterion(self.model(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step_in_epoch += 1
            self.running[0] += loss.item()
            self.running[1] += 1
            bar.set_postfix(loss=f"{self.running[0] / self.running[1]:.3f}", lr=f"{lr:.2e}")
            if self._stop:
                raise _StopRequested
        bar.close()
        train_loss = self.running[0] / max(self.running[1], 1)
        train_time = time.time() - t0
        self.epoch += 1
        self.step_in_epoch, self.running = 0, [0.0, 0]
        record: dict[str, Any] = {"epoch": self.epoch, "train_loss": train_loss, "lr": lr,
                                  "train_time_s": round(train_time, 1)}
        if self.epoch % cfg.val_every == 0 or self.epoch == cfg.epochs:
            t1 = time.time()
            metrics = evaluate_model(self.model, self.val_set, device=self.device, batch_size=4,
                                     class_names=self.meta["classes"])
            metrics["epoch"] = self.epoch
            self._last_metrics = metrics
            record.update(val_size=list(cfg.val_size), val_miou=metrics["miou"], val_class_avg_acc=metrics["class_avg_acc"],
                          val_global_acc=metrics["global_acc"], val_time_s=round(time.time() - t1, 1),
                          val_iou={k: v["iou"] for k, v in metrics["per_class"].items()})
            if metrics["miou"] > self.best:
                self.best, self.history_best_epoch = metrics["miou"], self.epoch
                save_checkpoint(self.out / "best.pth", make_checkpoint(self.model, self._meta(metrics)))
            record["best_miou"] = self.best
            log.info("epoch %d/%d  loss %.4f  val mIoU %.1f%%  (best %.1f%% @ %d)  %.0fs", self.epoch, cfg.epochs,
                     train_loss, 100 * metrics["miou"], 100 * self.best, self.history_best_epoch, train_time)
        else:
            log.info("epoch %d/%d  loss %.4f  %.0fs", self.epoch, cfg.epochs, train_loss, train_time)
        self.save_last()
        self._append_log(record)

    def _append_log(self, record: dict[str, Any]) -> None:
        path = self.out / "log.jsonl"
        old = path.read_text() if path.exists() else ""
        # rewrite atomically so a crash never leaves a torn line
        kept = [ln for ln in old.splitlines() if ln.strip() and json.loads(ln).get("epoch", 0) < record["epoch"]]
        with atomic_open(path) as f:
            f.write("".join(ln + "\n" for ln in kept) + json.dumps(record) + "\n")


def evaluate_model(model: nn.Module, dataset: CamVid, *, device: torch.device | str = "cpu", batch_size: int = 4,
                   class_names: list[str] | None = None) -> dict[str, Any]:
    """Val metrics of a PyTorch model on a dataset (eval mode; restores the mode)."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(11)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with torch.inference_mode():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu().numpy()
            cm.update(pred, y.numpy())
    model.train(was_training)
    return cm.summary(class_names)
