"""An engine compared with ONNX Runtime on CamVid val frames: the last step of every engine build.

:func:`verify_engine` runs the engine and the ONNX it was compiled from
(ONNX Runtime, CPU) on the same frames and reports the per-pixel argmax
agreement, and the val mIoU of both on the frames that have a label
(counted at label resolution, void excluded, as ``enet-eval``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from enet._lazy import require
from enet.engine.calibration import iter_batches, select_calibration_images


def engine_frames(count: int, camvid_root: str | os.PathLike[str] | None) -> list[Path]:
    """``count`` CamVid val frames, evenly spaced over the name-sorted split; none without CamVid."""
    if camvid_root is None or count < 1:
        return []
    val = Path(camvid_root) / "val"
    if not val.is_dir():
        return []
    return select_calibration_images(val, count)


def verify_engine(engine_path: str | os.PathLike[str], onnx_path: str | os.PathLike[str],
                  frames: Sequence[Path], *, labels_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Compare an engine with ONNX Runtime (CPU) on ``frames``.

    Returns:
        ``{"frames": n, "agreement": fraction of pixels whose argmax agrees,
        "miou_engine": ..., "miou_onnx": ..., "labelled": frames with a label}``;
        the mIoU values (0..1, void excluded, at label resolution) are None
        when no frame has a label in ``labels_dir``.
    """
    from enet.engine.ort_backend import OrtBackend
    from enet.engine.trt_backend import TrtBackend

    with TrtBackend(engine_path) as eng, OrtBackend(onnx_path, providers="cpu") as ref:
        preds = _labels_per_frame(eng, frames), _labels_per_frame(ref, frames)
        classes = len(eng.meta["classes"])
    agree = sum(int((a == b).sum()) for a, b in zip(*preds))
    total = sum(a.size for a in preds[0])
    out: dict[str, Any] = {"frames": len(frames), "agreement": agree / max(total, 1),
                           "miou_engine": None, "miou_onnx": None, "labelled": 0}
    if labels_dir is not None:
        scores = _miou(frames, preds, Path(labels_dir), classes)
        if scores is not None:
            out.update(miou_engine=scores[0], miou_onnx=scores[1], labelled=scores[2])
    return out


def _labels_per_frame(backend: Any, frames: Sequence[Path]) -> list[np.ndarray]:
    n = backend.input_shape[0]
    out: list[np.ndarray] = []
    for i, x in enumerate(iter_batches(list(frames), backend.meta, backend.input_shape)):
        out += list(backend.infer_labels(x)[:len(frames) - i * n])
    return out


def _miou(frames: Sequence[Path], preds: tuple[list[np.ndarray], list[np.ndarray]], labels_dir: Path,
          classes: int) -> tuple[float, float, int] | None:
    cv2 = require("cv2")
    from enet.data import read_label
    from enet.metrics import ConfusionMatrix

    cms = ConfusionMatrix(classes), ConfusionMatrix(classes)
    labelled = 0
    for i, frame in enumerate(frames):
        lab_path = labels_dir / frame.name
        if not lab_path.is_file():
            continue
        lab = read_label(lab_path, classes)
        labelled += 1
        for cm, pred in zip(cms, (preds[0][i], preds[1][i])):
            p = pred.astype(np.uint8)
            if p.shape != lab.shape:  # metrics at label resolution, as enet-eval
                p = cv2.resize(p, (lab.shape[1], lab.shape[0]), interpolation=cv2.INTER_NEAREST)
            cm.update(p, lab)
    if not labelled:
        return None
    return cms[0].summary()["miou"], cms[1].summary()["miou"], labelled
