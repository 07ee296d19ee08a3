"""Confusion-matrix metrics of the paper's Table 5 (void excluded).

* IoU per class: ``TP / (TP + FP + FN)``; mIoU: mean over classes that occur
  in the ground truth or the prediction (the paper's "class IoU").
* class-average accuracy: mean over classes of ``TP / (TP + FN)``.
* global accuracy: correctly labelled pixels / all labelled pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class ConfusionMatrix:
    """Accumulates ``matrix[true, pred]`` over labelled (non-void) pixels.

    Args:
        num_classes: C; ground-truth values ``>= C`` (void) are ignored.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: integer arrays of equal shape (any layout)."""
        pred = np.asarray(pred).ravel().astype(np.int64)
        target = np.asarray(target).ravel().astype(np.int64)
        if pred.shape != target.shape:
            raise ValueError(f"prediction and target sizes differ: {pred.shape} vs {target.shape}")
        keep = (target >= 0) & (target < self.num_classes)
        pred, target = pred[keep], target[keep]
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError("prediction holds values outside 0..num_classes-1")
        self.matrix += np.bincount(target * self.num_classes + pred,
                                   minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class absent from truth and prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def class_accuracy(self) -> np.ndarray:
        tp = np.diag(self.matrix).astype(np.float64)
        total = self.matrix.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, tp / total, np.nan)

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-able metrics: ``miou``, ``class_avg_acc``, ``global_acc``, per class."""
        names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        iou, acc = self.iou(), self.class_accuracy()
        total = self.matrix.sum()
        return {
            "miou": float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan"),
            "class_avg_acc": float(np.nanmean(acc)) if np.any(~np.isnan(acc)) else float("nan"),
            "global_acc": float(np.trace(self.matrix) / total) if total else float("nan"),
            "pixels": int(total),
            "per_class": {n: {"iou": _f(i), "acc": _f(a)} for n, i, a in zip(names, iou, acc)},
        }


def _f(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def format_table(summary: dict[str, Any], title: str = "") -> str:
    """Per-class IoU/accuracy table plus the three headline numbers, as text."""
    lines = [title] if title else []
    w = max([12] + [len(name) for name in summary["per_class"]])  # Cityscapes: "traffic light"
    lines.append(f"{'class':<{w}} {'IoU %':>7} {'acc %':>7}")
    for name, m in summary["per_class"].items():
        iou = "-" if m["iou"] is None else f"{100 * m['iou']:.1f}"
        acc = "-" if m["acc"] is None else f"{100 * m['acc']:.1f}"
        lines.append(f"{name:<{w}} {iou:>7} {acc:>7}")
    lines.append(f"{'mIoU':<{w}} {100 * summary['miou']:>7.1f}")
    lines.append(f"{'class avg':<{w}} {'':>7} {100 * summary['class_avg_acc']:>7.1f}")
    lines.append(f"{'global':<{w}} {'':>7} {100 * summary['global_acc']:>7.1f}")
    return "\n".join(lines)
