"""Confusion-matrix metrics against a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest

from enet.metrics import ConfusionMatrix, format_table


def test_against_hand_computed_confusion_matrix():
    # 3 classes, void = 3
    target = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 0, 1, 2])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # rows = truth, cols = prediction; void pixels dropped
    assert cm.matrix.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    s = cm.summary(["a", "b", "c"])
    # IoU: a 2/(3+3-2)=0.5, b 1/(2+2-1)=1/3, c 2/(3+3-2)=0.5
    assert s["per_class"]["a"]["iou"] == pytest.approx(0.5)
    assert s["per_class"]["b"]["iou"] == pytest.approx(1 / 3)
    assert s["per_class"]["c"]["iou"] == pytest.approx(0.5)
    assert s["miou"] == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    assert s["class_avg_acc"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert s["global_acc"] == pytest.approx(5 / 8)
    assert s["pixels"] == 8
    assert "mIoU" in format_table(s)


def test_absent_class_is_left_out_of_the_mean():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    s = cm.summary()
    assert s["per_class"]["2"]["iou"] is None
    assert s["miou"] == 1.0


def test_accumulates_batches_and_rejects_bad_predictions():
    cm = ConfusionMatrix(2)
    cm.update(np.zeros((2, 4, 4), int), np.zeros((2, 4, 4), int))
    cm.update(np.ones((4, 4), int), np.zeros((4, 4), int))
    assert cm.matrix.tolist() == [[32, 16], [0, 0]]
    with pytest.raises(ValueError):
        cm.update(np.array([5]), np.array([0]))
    with pytest.raises(ValueError):
        cm.update(np.array([0, 1]), np.array([0]))
