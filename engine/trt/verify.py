"""An engine compared with ONNX Runtime on a dataset's val frames: the last step of every engine build.

:func:`verify_engine` runs the engine and the ONNX it was compiled from
(ONNX Runtime, CPU) on the same frames, through the model's one
:class:`enet.transforms.Preprocess` and the core's
:func:`enet.evaluate.predict_labels`, and reports the per-pixel argmax
agreement, and the val mIoU of both on the frames that have a label
(counted at label resolution, void excluded, as ``enet-eval``). Labels are
found and read through the dataset's own layout (:mod:`enet.datasets`:
CamVid/SegNet ``valannot/``, Cityscapes ``gtFine/``, a custom
``classes.json`` set). The build's gate (:mod:`enet.engine.trt.build`)
decides on the agreement.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from enet.data import read_image
from enet.engine.quant.calibration import evenly_spaced
from enet.errors import DataError


def engine_frames(count: int, data_root: str | os.PathLike[str] | None) -> list[Path]:
    """``count`` val images of the dataset at ``data_root``, evenly spaced over the name-sorted split;
    none without one."""
    from enet.datasets import open_dataset

    if data_root is None or count < 1 or not Path(data_root).is_dir():
        return []
    try:
        info = open_dataset(data_root)
        if not info.has_split("val"):
            return []
        return evenly_spaced(info.image_paths("val"), count)
    except DataError:
        return []


def verify_engine(engine_path: str | os.PathLike[str], onnx_path: str | os.PathLike[str],
                  frames: Sequence[Path], *, data_root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Compare an engine with ONNX Runtime (CPU) on ``frames``.

    Args:
        data_root: the dataset the frames come from; its layout
            (:func:`enet.datasets.open_dataset`) says where each frame's label is.

    Returns:
        ``{"frames": n, "agreement": fraction of pixels whose argmax agrees,
        "miou_engine": ..., "miou_onnx": ..., "labelled": frames with a label}``;
        the mIoU values (0..1, void excluded, at label resolution) are None
        when no frame has a label in the dataset at ``data_root``.
    """
    from enet.engine.runtime.ort_backend import OrtBackend
    from enet.engine.runtime.trt_backend import TrtBackend

    images = [read_image(f) for f in frames]
    with TrtBackend(engine_path) as eng, OrtBackend(onnx_path, providers="cpu") as ref:
        preds = _labels_per_frame(eng, images), _labels_per_frame(ref, images)
        meta = eng.meta
    agree = sum(int((a == b).sum()) for a, b in zip(*preds))
    total = sum(a.size for a in preds[0])
    out: dict[str, Any] = {"frames": len(frames), "agreement": agree / max(total, 1),
                           "miou_engine": None, "miou_onnx": None, "labelled": 0}
    if data_root is not None:
        scores = _miou(frames, preds, Path(data_root), meta)
        if scores is not None:
            out.update(miou_engine=scores[0], miou_onnx=scores[1], labelled=scores[2])
    return out


def _labels_per_frame(backend: Any, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Class labels at each image's own size (the evaluation's preprocessing and resize back)."""
    from enet.evaluate import predict_labels
    from enet.transforms import Preprocess

    n, _, h, w = (int(v) for v in backend.input_shape)
    return predict_labels(backend.infer_labels, Preprocess.from_meta(backend.meta, (h, w)), n,
                          images)


def _val_labels(data_root: Path) -> tuple[dict[Path, Path], Any]:
    """``{val image: its label}`` and the label reader of the dataset at ``data_root`` (empty without labels)."""
    from enet.datasets import open_dataset

    try:
        info = open_dataset(data_root)
        samples = info.samples("val")
    except DataError:
        return {}, None
    return {Path(s.image).resolve(): Path(s.label) for s in samples}, info


def _miou(frames: Sequence[Path], preds: tuple[list[np.ndarray], list[np.ndarray]], data_root: Path,
          meta: dict[str, Any]) -> tuple[float, float, int] | None:
    from enet.metrics import ConfusionMatrix

    labels, info = _val_labels(data_root)
    if not labels:
        return None
    try:
        info.check_model(meta, "the engine")
    except DataError:  # another dataset's classes: agreement still counts, mIoU would not mean anything
        return None
    classes = len(meta["classes"])
    cms = ConfusionMatrix(classes), ConfusionMatrix(classes)
    labelled = 0
    for i, frame in enumerate(frames):
        lab_path = labels.get(Path(frame).resolve())
        if lab_path is None:
            continue
        lab = info.read_label(lab_path)
        if lab.shape != preds[0][i].shape:
            raise DataError(f"{frame} and its label {lab_path} differ in size; image and label must be the same size")
        labelled += 1
        for cm, pred in zip(cms, (preds[0][i], preds[1][i])):
            cm.update(pred, lab)
    if not labelled:
        return None
    return cms[0].summary()["miou"], cms[1].summary()["miou"], labelled
