"""Training losses and weight averaging for :mod:`enet.train`.

* :func:`lovasz_softmax`: the Lovasz-softmax loss (Berman, Rannen Triki,
  Blaschko, CVPR 2018, arXiv 1705.08790), a convex surrogate of the Jaccard
  index per class. Used after cross-entropy in a fine-tuning stage it
  optimises mIoU itself, which weighs a thin class (Pole, SignSymbol) as much
  as a large one, where pixel-wise cross-entropy weighs pixels.
* :class:`SegmentationLoss`: class-weighted cross-entropy, Lovasz-softmax,
  or their sum (``"ce+lovasz"``).
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
LOSSES = ("ce", "ce+lovasz", "lovasz")


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


class SegmentationLoss(nn.Module):
    """``"ce"``: class-weighted cross-entropy; ``"lovasz"``: Lovasz-softmax; ``"ce+lovasz"``: their sum."""

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
        if self.kind in ("lovasz", "ce+lovasz"):
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
