"""Training losses and weight averaging for :mod:`enet.train`.

* :func:`lovasz_softmax`: the Lovasz-softmax loss (Berman, Rannen Triki,
  Blaschko, CVPR 2018, arXiv 1705.08790), a convex surrogate of the Jaccard
  index per class. Used after cross-entropy in a fine-tuning stage it
  optimises mIoU itself, which weighs a thin class (Pole, SignSymbol) as much
  as a large one, where pixel-wise cross-entropy weighs pixels.
* :func:`ohem_cross_entropy`: cross-entropy on the hard pixels only (online
  hard example mining, Shrivastava et al. 2016 as used for segmentation by
  PSPNet/BiSeNet): pixels whose true class already has probability >= 0.7
  drop out, so thin objects' edges and rare classes carry the loss.
* :class:`SegmentationLoss`: class-weighted cross-entropy (all pixels or the
  hard ones), Lovasz-softmax, or a sum (``"ce+lovasz"``, ``"ohem+lovasz"``).
* :class:`EMA`: an exponential moving average of the weights (and batch-norm
  statistics), evaluated and saved instead of the raw weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

#: ``--loss`` choices of enet-train.
LOSSES = ("ce", "ce+lovasz", "lovasz", "ohem", "ohem+lovasz")

#: OHEM: a pixel is hard while its true class has probability below this.
OHEM_THRESHOLD = 0.7
#: OHEM keeps at least this share of the labelled pixels (the hardest ones).
OHEM_MIN_KEPT = 1 / 16


def _lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss at errors sorted in decreasing order."""
    gts = fg_sorted.sum()
    intersection = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if fg_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def lovasz_softmax(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Lovasz-softmax over all pixels of a batch, averaged over the classes present in ``labels``.

    Args:
        logits: ``(N, C, H, W)`` scores.
        labels: ``(N, H, W)`` class indices; ``ignore_index`` pixels do not count.
    """
    c = logits.shape[1]
    probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, c)
    labels = labels.reshape(-1)
    if ignore_index is not None:
        keep = labels != ignore_index
        probs, labels = probs[keep], labels[keep]
    losses = []
    for k in labels.unique().tolist():
        fg = (labels == k).to(probs.dtype)
        errors = (fg - probs[:, k]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[perm])))
    if not losses:
        return logits.sum() * 0.0
    return torch.stack(losses).mean()


def ohem_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
                       ignore_index: int = -100, threshold: float = OHEM_THRESHOLD,
                       min_kept: float = OHEM_MIN_KEPT) -> torch.Tensor:
    """Class-weighted cross-entropy over the hard pixels of a batch.

    A labelled pixel is hard when the probability of its true class is below
    ``threshold``; when fewer than ``min_kept`` (a share of the labelled
    pixels) are hard, the ``min_kept`` hardest count instead. The result is
    the weighted mean over the kept pixels, as ``F.cross_entropy``'s.
    """
    per_pixel = F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index, reduction="none").reshape(-1)
    flat = labels.reshape(-1)
    valid = flat != ignore_index
    n_valid = int(valid.sum())
    if n_valid == 0:
        return logits.sum() * 0.0
    w = weight[flat.clamp(0, logits.shape[1] - 1)] if weight is not None else torch.ones_like(per_pixel)
    w = torch.where(valid, w, torch.zeros_like(w))
    # unweighted per-pixel CE is -log p(true); hard means p(true) < threshold
    nll = torch.where(valid, per_pixel / w.clamp_min(1e-12), torch.full_like(per_pixel, -1.0))
    hard = nll.detach() > -torch.log(torch.tensor(threshold, dtype=nll.dtype))
    k = max(1, int(round(min_kept * n_valid)))
    if int(hard.sum()) < k:
        hard = torch.zeros_like(hard)
        hard[torch.topk(nll.detach(), k).indices] = True
    keep_w = w * hard
    return (per_pixel * hard).sum() / keep_w.sum().clamp_min(1e-12)


class SegmentationLoss(nn.Module):
    """``"ce"``: class-weighted cross-entropy; ``"ohem"``: the same over the hard pixels only
    (:func:`ohem_cross_entropy`); ``"lovasz"``: Lovasz-softmax; ``"ce+lovasz"``, ``"ohem+lovasz"``: sums."""

    def __init__(self, kind: str, weight: torch.Tensor | None, ignore_index: int) -> None:
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")
        self.kind, self.ignore_index = kind, ignore_index
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = logits.new_zeros(())
        if self.kind in ("ce", "ce+lovasz"):
            loss = loss + F.cross_entropy(logits, labels, weight=self.weight, ignore_index=self.ignore_index)
        if self.kind in ("ohem", "ohem+lovasz"):
            loss = loss + ohem_cross_entropy(logits, labels, self.weight, self.ignore_index)
        if self.kind in ("lovasz", "ce+lovasz", "ohem+lovasz"):
            loss = loss + lovasz_softmax(logits, labels, self.ignore_index)
        return loss


class EMA:
    """Exponential moving average of a model's state (weights and batch-norm statistics).

    ``update()`` after each optimizer step: ``avg = d * avg + (1 - d) * w``
    with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates (a short
    warm-up so that early averages are not dominated by the start).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for name, avg in self.model.state_dict().items():
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(current[name].detach(), alpha=1.0 - d)
            else:
                avg.copy_(current[name])

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "state_dict": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["state_dict"])
