"""Training loop for ENet (paper Section 5.2: Adam, lr 5e-4, wd 2e-4).

Datasets: CamVid, Cityscapes, or your own classes (:mod:`enet.datasets`);
the checkpoint carries the dataset's classes, palette and normalisation.

Outputs in ``--output`` (default ``runs/enet``):

* ``last.pth``: resumable checkpoint (weights, metadata, optimizer, scheduler,
  epoch, position inside the epoch, RNG state), written every epoch and on
  Ctrl-C/SIGTERM.
* ``best.pth``: weights + metadata of the best val mIoU so far (no optimizer);
  never a model with non-finite weights or one that predicts a single class
  (:func:`unusable_model`).
* A non-finite loss or gradient stops the run before the optimizer step
  (:class:`enet.errors.NumericalError`, one line, exit 1), leaving
  ``last.pth`` at the last finished epoch (:meth:`Trainer._check_finite`).
* ``log.jsonl``: one JSON record per epoch.

Resume is exact: the sample order and every augmentation are pure functions
of ``(seed, epoch, index)``, and the dropout RNG state is saved, so an
interrupted run continued with ``--resume`` reaches the same weights as an
uninterrupted one (on the same machine and thread count).

Under torchrun (:mod:`enet.distributed`) each process trains on its shard of
every epoch's permutation with DistributedDataParallel; rank 0 writes the
checkpoints (same format) and the log, losses and val confusion matrices are
summed over all processes, and resume stays exact with the same number of
processes (every rank's dropout RNG state is saved).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, Subset

from enet import distributed
from enet.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from enet.data import Augment, SegmentationDataset, weights_from_frequencies
from enet.datasets import DatasetInfo, open_dataset
from enet.device import resolve_device
from enet.errors import DataError, EnetError, NumericalError
from enet.fileio import atomic_open
from enet.losses import EMA, SegmentationLoss
from enet.metrics import ConfusionMatrix
from enet.model import ENet, check_input_size
from enet.progress import progress
from enet.weights import resolve_model

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in every checkpoint's metadata."""

    data_root: str
    dataset: str = "auto"                       # auto | camvid | custom | cityscapes
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
    loss: str = "ce"                            # enet.losses.LOSSES
    ema: float = 0.0                            # weight-average decay per step (0: off); val and best.pth use it
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
    """Seeded permutation per epoch, this rank's shard of it, skipping its first ``start`` items.

    With ``world_size`` ranks the permutation is padded by wrapping around to
    a multiple of ``world_size`` and rank ``r`` takes items ``r, r + W, ...``,
    as torch's ``DistributedSampler`` does; unlike it, an epoch can start
    part-way (``start``) for an exact mid-epoch resume. One rank takes the
    whole permutation.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, 0, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    @property
    def per_rank(self) -> int:
        """Items of one rank in a whole epoch."""
        return math.ceil(self.n / self.world_size)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        if self.world_size > 1:
            total = self.per_rank * self.world_size
            order = (order * math.ceil(total / self.n))[:total][self.rank::self.world_size]
        return iter(order[self.start:])

    def __len__(self) -> int:
        return self.per_rank - self.start


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


class _TrainNet(nn.Module):
    """ENet and the optional encoder-stage head as one module, for DistributedDataParallel.

    DDP synchronises gradients only through its own ``forward``, so the
    encoder-first stage (``encode`` + head) has to be a path of it.
    """

    def __init__(self, model: ENet, head: nn.Module | None) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x: torch.Tensor, encoder_only: bool = False) -> torch.Tensor:
        if encoder_only:
            return self.head(self.model.encode(x)[0])
        return self.model(x)


class Trainer:
    """Runs a :class:`TrainConfig`; see the module docstring for its outputs."""

    #: Settings a resumed run may change; the recipe itself stays as saved.
    RESUME_OVERRIDES = ("data_root", "output", "epochs", "device", "workers", "threads")

    def __init__(self, cfg: TrainConfig | None = None, *, resume: str | None = None,
                 overrides: dict[str, Any] | None = None, progress: bool = True) -> None:
        self.progress = progress
        ckpt: dict[str, Any] = {}
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
        self.dist, self.device = distributed.setup(resolve_device(cfg.device))
        try:
            self._build(cfg, ckpt if resume else None)
        except BaseException:
            distributed.teardown()
            raise

    def _build(self, cfg: TrainConfig, ckpt: dict[str, Any] | None) -> None:
        self.main = self.dist.is_main
        self.progress = self.progress and self.main
        self.out = Path(cfg.output)
        # every input is checked before the run folder is made or anything is logged
        init = load_checkpoint(resolve_model(cfg.init_from)) if ckpt is None and cfg.init_from else None
        self.info = info = open_dataset(cfg.data_root, cfg.dataset)
        mean, std = info.mean, info.std
        if ckpt is not None:
            _check_same_classes(ckpt["meta"], info, cfg)
            mean, std = ckpt["meta"]["mean"], ckpt["meta"]["std"]
        aug = Augment(scale=cfg.scale, flip=cfg.flip, brightness=cfg.jitter, contrast=cfg.jitter,
                      saturation=cfg.jitter)
        self.train_set = SegmentationDataset(info, "train", size=cfg.size, mean=mean or (0.0,) * 3,
                                             std=std or (1.0,) * 3, augment=aug, seed=cfg.seed,
                                             limit=cfg.train_limit)
        if mean is None or std is None:
            mean, std = self.train_set.mean_std()
            log.info("normalisation measured on the train images: mean %s, std %s", list(mean), list(std))
            self.train_set.mean, self.train_set.std = mean, std
        self.val_set = SegmentationDataset(info, "val", size=cfg.val_size, mean=mean, std=std,
                                           limit=cfg.val_limit, spaced=True)
        self.meta = info.metadata(mean=mean, std=std, input_size=cfg.val_size)
        weights = weights_from_frequencies(*self.train_set.frequencies(), method=cfg.weighting)
        log.info("%s dataset, %d classes; class weights (%s): %s; loss %s", info.kind, info.num_classes,
                 cfg.weighting, [round(float(w), 2) for w in weights], cfg.loss)
        self.criterion = SegmentationLoss(cfg.loss, torch.from_numpy(weights).to(self.device), info.void_index)

        c = info.num_classes
        torch.manual_seed(cfg.seed)
        self.model = ENet(c).to(self.device)
        # Encoder-first stage: a 1x1 classifier on the encoder output, trained
        # against labels subsampled by 8, then dropped.
        self.encoder_head = nn.Conv2d(128, c, 1).to(self.device) if cfg.encoder_epochs else None
        params = list(self.model.parameters()) + (list(self.encoder_head.parameters()) if self.encoder_head else [])
        self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.epoch, self.step_in_epoch = 0, 0
        self.running = [0.0, 0]  # loss sum, batches in the current epoch (this rank)
        self.best = -1.0
        self.history_best_epoch = -1
        if self.dist.rank:
            # every rank its own dropout stream (rank 0 keeps the single-process one)
            torch.manual_seed(cfg.seed + 7919 * self.dist.rank)
        if init is not None:
            self._init_weights(cfg.init_from, init)
        # the average starts from the initial (or fine-tuned-from) weights; a resume restores it below
        self.ema = EMA(self.model, cfg.ema) if cfg.ema else None
        if ckpt is not None:
            self._restore(ckpt)
        self.ddp: nn.Module | None = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                _TrainNet(self.model, self.encoder_head),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                # the encoder stage leaves the decoder unused, the full net the head
                find_unused_parameters=self.encoder_head is not None)
        self.sampler = EpochSampler(len(self.train_set), cfg.seed, self.dist.rank, self.dist.world_size)
        self._stop = False
        self._made_out = not self.out.exists()
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Leave the torchrun process group (no-op in one process)."""
        distributed.teardown()

    def _init_weights(self, path: str, init: dict[str, Any]) -> None:
        """Start from a checkpoint's weights (``init``, loaded from ``path``); a different class count keeps
        all but the classifier."""
        state = init["state_dict"]
        n = init["arch"]["num_classes"]
        if n == self.info.num_classes:
            self.model.load_state_dict(state)
            log.info("initialised weights from %s", path)
            return
        state = {k: v for k, v in state.items() if not k.startswith("fullconv.")}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("fullconv.") for k in missing):
            raise EnetError(f"{path}: weights do not fit ENet beyond the classifier; expected an enet-rt checkpoint")
        log.info("initialised weights from %s except the classifier (%d classes there, %d here)",
                 path, n, self.info.num_classes)

    # -- state ------------------------------------------------------------
    def _train_state(self) -> dict[str, Any]:
        """Resumable state; collective under torchrun (every rank's RNG is gathered)."""
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        ranks = distributed.gather(rng)
        running = distributed.all_reduce_sum(self.running, self.device)
        state = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "running": [float(running[0]), int(running[1])],
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": ranks[0]["torch"],
            "best_miou": self.best,
            "best_epoch": self.history_best_epoch,
            "encoder_head": self.encoder_head.state_dict() if self.encoder_head is not None else None,
            "world_size": self.dist.world_size,
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }
        if self.dist.enabled:
            state["rank_rng"] = [r["torch"] for r in ranks]
        if self.device.type == "cuda":
            state["cuda_rng"] = [r["cuda"] for r in ranks]
        return state

    def _restore(self, ckpt: dict[str, Any]) -> None:
        st = ckpt["train_state"]
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.epoch, self.step_in_epoch = int(st["epoch"]), int(st["step_in_epoch"])
        # the saved running loss is the sum over all ranks: rank 0 carries it on
        self.running = [float(st["running"][0]), int(st["running"][1])] if self.main else [0.0, 0]
        rank, world = self.dist.rank, self.dist.world_size
        saved_world = int(st.get("world_size", 1))
        if saved_world == world:
            torch.set_rng_state(st["rank_rng"][rank] if world > 1 else st["torch_rng"])
            if self.device.type == "cuda" and st.get("cuda_rng"):
                torch.cuda.set_rng_state(st["cuda_rng"][rank], self.device)
        elif self.main:
            log.warning("%d process(es) saved this run and %d resume it: training continues, but not "
                        "bit-exactly (dropout streams and the epoch's shards differ)", saved_world, world)
        self.best, self.history_best_epoch = float(st["best_miou"]), int(st["best_epoch"])
        if self.encoder_head is not None and st.get("encoder_head") is not None:
            self.encoder_head.load_state_dict(st["encoder_head"])
        if self.ema is not None and st.get("ema") is not None:
            self.ema.load_state_dict(st["ema"])
        log.info("resumed at epoch %d, batch %d", self.epoch + 1, self.step_in_epoch)

    def _meta(self, metrics: dict[str, Any] | None) -> dict[str, Any]:
        meta = dict(self.meta)
        meta["train_config"] = self.cfg.to_json()
        meta["metrics"] = metrics or {}
        return meta

    def save_last(self) -> Path:
        """Write ``last.pth`` (rank 0); collective under torchrun."""
        path = self.out / "last.pth"
        state = self._train_state()
        if self.main:
            save_checkpoint(path, make_checkpoint(self.model, self._meta(self._last_metrics), state))
        distributed.barrier()  # nobody reads last.pth (a resume) before rank 0 has written it
        return path

    # -- loop -------------------------------------------------------------
    def _set_lr(self) -> float:
        lr = self.cfg.lr * lr_factor(self.cfg, self.epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    @property
    def eval_model(self) -> nn.Module:
        """The weights validated and saved as ``best.pth``: the running average with ``--ema``, else the model."""
        return self.ema.model if self.ema is not None else self.model

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stop = True

    def fit(self) -> dict[str, Any]:
        """Train to ``cfg.epochs``; returns the last val metrics.

        Ctrl-C or SIGTERM finishes the current batch, saves ``last.pth`` and
        raises :class:`KeyboardInterrupt` for the CLI to report.
        """
        self._last_metrics: dict[str, Any] | None = None
        old_term = signal.signal(signal.SIGTERM, self._request_stop)
        # under torchrun Ctrl-C only raises a flag: all ranks stop after the same batch
        old_int = signal.signal(signal.SIGINT, self._request_stop) if self.dist.enabled else None
        try:
            while self.epoch < self.cfg.epochs:
                self._run_epoch()
        except NumericalError:
            if self.main and self._made_out and not any(self.out.iterdir()):
                self.out.rmdir()  # diverged before the first checkpoint: leave no empty run folder
            raise
        except (KeyboardInterrupt, _StopRequested):
            path = self.save_last()
            raise KeyboardInterrupt(
                f"stopped in epoch {self.epoch + 1} at batch {self.step_in_epoch}; resumable checkpoint {path}"
            ) from None
        finally:
            signal.signal(signal.SIGTERM, old_term)
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
        return self._last_metrics or {}

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        encoder_only = self.encoder_head is not None and self.epoch < self.cfg.encoder_epochs
        if self.ddp is not None:
            out = self.ddp(x, encoder_only)
        elif encoder_only:
            out = self.encoder_head(self.model.encode(x)[0])
        else:
            out = self.model(x)
        return self.criterion(out, y[:, 4::8, 4::8] if encoder_only else y)

    def _run_epoch(self) -> None:
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
        n_batches = math.ceil(self.sampler.per_rank / bs)
        t0 = time.time()
        (self.ddp or self.model).train()
        bar = progress(loader, total=n_batches, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       unit="batch", enabled=self.progress)
        for x, y in bar:
            x, y = x.to(self.device), y.to(self.device)
            loss = self._loss(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._check_finite(loss, lr)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.step_in_epoch += 1
            self.running[0] += loss.item()
            self.running[1] += 1
            bar.set_postfix(loss=f"{self.running[0] / self.running[1]:.3f}", lr=f"{lr:.2e}")
            if distributed.any_rank(self._stop, self.device):
                raise _StopRequested
        bar.close()
        loss_sum, batches = distributed.all_reduce_sum(self.running, self.device)
        train_loss = float(loss_sum) / max(int(batches), 1)
        train_time = time.time() - t0
        self.epoch += 1
        self.step_in_epoch, self.running = 0, [0.0, 0]
        record: dict[str, Any] = {"epoch": self.epoch, "train_loss": train_loss, "lr": lr,
                                  "train_time_s": round(train_time, 1), "dataset": self.info.kind,
                                  "data_root": str(cfg.data_root)}
        if self.epoch % cfg.val_every == 0 or self.epoch == cfg.epochs:
            t1 = time.time()
            cm = confusion_matrix(self.eval_model, self.val_set, device=self.device, batch_size=4,
                                  indices=range(self.dist.rank, len(self.val_set), self.dist.world_size))
            cm.matrix = distributed.all_reduce_sum(cm.matrix, self.device)
            metrics = cm.summary(self.meta["classes"])
            metrics["epoch"] = self.epoch
            self._last_metrics = metrics
            record.update(val_size=list(cfg.val_size), val_miou=metrics["miou"], val_class_avg_acc=metrics["class_avg_acc"],
                          val_global_acc=metrics["global_acc"], val_time_s=round(time.time() - t1, 1),
                          val_iou={k: v["iou"] for k, v in metrics["per_class"].items()})
            unusable = unusable_model(self.eval_model, cm)
            if unusable:
                log.warning("epoch %d: not a candidate for best.pth: %s", self.epoch, unusable)
            elif metrics["miou"] > self.best:
                self.best, self.history_best_epoch = metrics["miou"], self.epoch
                if self.main:
                    save_checkpoint(self.out / "best.pth", make_checkpoint(self.eval_model, self._meta(metrics)))
            record["best_miou"] = self.best
            log.info("epoch %d/%d  loss %.4f  val mIoU %.1f%%  (best %.1f%% @ %d)  %.0fs", self.epoch, cfg.epochs,
                     train_loss, 100 * metrics["miou"], 100 * self.best, self.history_best_epoch, train_time)
        else:
            log.info("epoch %d/%d  loss %.4f  %.0fs", self.epoch, cfg.epochs, train_loss, train_time)
        self.save_last()
        if self.main:
            self._append_log(record)

    def _check_finite(self, loss: torch.Tensor, lr: float) -> None:
        """Stop the run when this batch's loss or gradients are not finite, before the optimizer step.

        Policy (README "Exit codes", numerical faults): the first non-finite
        loss or gradient ends training with one line and exit status 1; the
        step is not taken, ``last.pth`` is not rewritten (it keeps the last
        finished epoch) and ``best.pth`` keeps the best finite model. Skipping
        the batch instead would hide a diverging run (``--lr 1e8`` turns every
        later batch non-finite too). Collective under torchrun: every rank
        stops after the same batch.
        """
        bad = ""
        if not bool(torch.isfinite(loss.detach()).all()):
            bad = f"the loss is {loss.item()}"
        else:
            grads = [p.grad for p in self.optimizer.param_groups[0]["params"] if p.grad is not None]
            if grads and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)).all()):
                bad = "the gradients are not finite"
        if not distributed.any_rank(bool(bad), self.device):
            return
        last, best = self.out / "last.pth", self.out / "best.pth"
        kept = "the step was not taken"
        if self.epoch and last.is_file():
            kept += f", {last} keeps the end of epoch {self.epoch}"
        if best.is_file():
            kept += f"; {best} keeps the best finite model (--init-from it to keep the progress)"
        else:
            kept += "; no best.pth was written"
        raise NumericalError(
            f"training diverged in epoch {self.epoch + 1} at batch {self.step_in_epoch + 1}: "
            f"{bad or 'another process found non-finite values'} (lr {lr:.3g}); {kept}; "
            "lower --lr or check the data, then start again")

    def _append_log(self, record: dict[str, Any]) -> None:
        path = self.out / "log.jsonl"
        old = path.read_text() if path.exists() else ""
        # rewrite atomically so a crash never leaves a torn line
        kept = [ln for ln in old.splitlines() if ln.strip() and json.loads(ln).get("epoch", 0) < record["epoch"]]
        with atomic_open(path) as f:
            f.write("".join(ln + "\n" for ln in kept) + json.dumps(record) + "\n")


def _check_same_classes(meta: dict[str, Any], info: DatasetInfo, cfg: TrainConfig) -> None:
    if list(meta["classes"]) != list(info.classes):
        raise DataError(f"the run resumed was trained on {len(meta['classes'])} classes, but {cfg.data_root} "
                        f"({info.kind}) has {info.num_classes} others; resume on the same dataset")


def unusable_model(model: nn.Module, cm: ConfusionMatrix) -> str:
    """Why ``model`` must not become ``best.pth`` ("" when it may).

    Non-finite weights, or a collapsed model: one class predicted for every
    val pixel while the val labels hold several (what NaN logits give, since
    their argmax is class 0 everywhere).
    """
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return f"its weights are not finite ({name})"
    predicted = np.count_nonzero(cm.matrix.sum(0))
    present = np.count_nonzero(cm.matrix.sum(1))
    if predicted <= 1 < present:
        return f"it predicts one class for every val pixel while the labels hold {present} (collapsed)"
    return ""


def confusion_matrix(model: nn.Module, dataset: SegmentationDataset, *, device: torch.device | str = "cpu",
                     batch_size: int = 4, indices: Sequence[int] | None = None) -> ConfusionMatrix:
    """Confusion matrix of a PyTorch model on ``dataset`` (or the items ``indices`` of it).

    Runs in eval mode and restores the model's mode.
    """
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(dataset.num_classes)
    subset = dataset if indices is None else Subset(dataset, list(indices))
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False)
    with torch.inference_mode():
        for x, y in loader:
            pred = model(x.to(device)).argmax(1).cpu().numpy()
            cm.update(pred, y.numpy())
    model.train(was_training)
    return cm


def evaluate_model(model: nn.Module, dataset: SegmentationDataset, *, device: torch.device | str = "cpu",
                   batch_size: int = 4, class_names: list[str] | None = None) -> dict[str, Any]:
    """Val metrics of a PyTorch model on a dataset (eval mode; restores the mode)."""
    return confusion_matrix(model, dataset, device=device, batch_size=batch_size).summary(class_names)


def checkpoint_val_metrics(ckpt: dict[str, Any], info: DatasetInfo) -> dict[str, Any]:
    """Val metrics of a checkpoint dict at its input size, measured as enet-train measures its epochs.

    For a checkpoint no training run measured (``enet-average``'s), so its
    ``meta["metrics"]`` holds the same figures as a ``best.pth``'s.

    Args:
        info: the dataset (:func:`enet.datasets.open_dataset`).

    Raises:
        DataError: the dataset has other classes.
    """
    meta = ckpt["meta"]
    if list(meta["classes"]) != list(info.classes):
        raise DataError(f"the checkpoints have {len(meta['classes'])} classes, but {info.root} ({info.kind}) has "
                        f"{info.num_classes} others; measure on the dataset they were trained on")
    val_set = SegmentationDataset(info, "val", size=tuple(meta["input_size"]), mean=meta["mean"], std=meta["std"])
    return evaluate_model(model_from_checkpoint(ckpt), val_set, class_names=list(meta["classes"]))
