"""Precision conversion, as plain functions (any machine, no TensorRT).

* :func:`calibrate_ranges`: INT8 activation ranges from calibration frames
  (or a range cache), the one set of ranges behind both INT8 engine paths.
* :func:`convert_onnx`: FP32 ONNX -> FP16 ONNX or INT8 Q/DQ ONNX.
* :func:`compare_val`: FP32 vs converted val mIoU with ONNX Runtime.

TensorRT engines are built from these files by :mod:`enet.engine.trt.build`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from enet.engine.quant.calibration import DEFAULT_CALIB_IMAGES, iter_batches, select_calibration_images
from enet.engine.runtime.onnx_info import PRECISION_KEY, load_onnx, precision_of, read_meta, static_input_shape
from enet.engine.quant.calib_stats import DEFAULT_PERCENTILE, collect_amax
from enet.engine.quant.fp16 import convert_fp16
from enet.engine.quant.quantize import QuantizeReport, int8_activation_tensors, quantize_int8
from enet.errors import EnetError
from enet.export.metadata import set_prop
from enet.fileio import atomic_path, write_text

log = logging.getLogger(__name__)

CACHE_FORMAT = "enet-rt-int8-ranges"


@dataclass
class CalibrationSpec:
    """Where calibration frames come from and how ranges are computed."""

    data: str | os.PathLike[str]
    images: int = DEFAULT_CALIB_IMAGES
    method: str = "max"
    percentile: float = DEFAULT_PERCENTILE
    cache: str | os.PathLike[str] | None = None


@dataclass
class ConvertResult:
    path: Path
    precision: str
    meta: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    report: QuantizeReport | None = None
    calib_images: list[Path] = field(default_factory=list)


def _batches_factory(paths: Sequence[Path], meta: dict[str, Any],
                     input_shape: Sequence[int]) -> Callable[[], Iterable[np.ndarray]]:
    return lambda: iter_batches(paths, meta, input_shape)


def _range_key(calib: CalibrationSpec, meta: dict[str, Any]) -> dict[str, Any]:
    # the checkpoint's sha256 (from the export metadata), not the ONNX's: ranges
    # carry over between exports of one checkpoint at other input sizes
    return {"method": calib.method, "percentile": calib.percentile if calib.method == "percentile" else None,
            "source_sha256": meta.get("source_sha256")}


def _read_range_cache(path: Path, key: dict[str, Any]) -> dict[str, float] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise EnetError(
            f"{path} is not an enet-rt calibration cache (a TensorRT calibrator cache?); "
            "pass another --calib-cache or delete it"
        ) from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise EnetError(f"{path} is not an enet-rt calibration cache; pass another --calib-cache or delete it")
    stale = [k for k, v in key.items() if data.get(k) != v]
    if stale:
        log.warning("calibration cache %s differs in %s; recalibrating", path, ", ".join(stale))
        return None
    return {k: float(v) for k, v in data["amax"].items()}


def calibrate_ranges(model: onnx.ModelProto, calib: CalibrationSpec, meta: dict[str, Any],
                     input_shape: Sequence[int]) -> tuple[dict[str, float], list[Path]]:
    """INT8 activation ranges of ``model``: read from ``calib.cache``, else calibrated (and cached).

    Ranges cover the input of every quantizable Conv/ConvTranspose
    (:func:`enet.engine.quant.quantize.int8_activation_tensors`), whatever
    ``--keep-fp32`` leaves in float, so one cache serves every variant. The
    Q/DQ ONNX takes its scales from these ranges.

    Returns:
        ``(tensor -> amax, calibration frames used)``; no frames when the cache answered.
    """
    cache = Path(calib.cache) if calib.cache else None
    amax = _read_range_cache(cache, _range_key(calib, meta)) if cache else None
    if amax is not None:
        return amax, []
    paths = select_calibration_images(calib.data, calib.images)
    log.info("calibrating on %d frames from %s (%s)", len(paths), paths[0].parent, calib.method)
    amax, _ = collect_amax(model, int8_activation_tensors(model), _batches_factory(paths, meta, input_shape),
                           method=calib.method, percentile=calib.percentile)
    if cache:
        write_text(cache, json.dumps({"format": CACHE_FORMAT, **_range_key(calib, meta),
                                      "images": [p.name for p in paths], "amax": amax},
                                     indent=1, sort_keys=True) + "\n")
    return amax, paths


def convert_onnx(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], *, precision: str,
                 calib: CalibrationSpec | None = None, keep_fp32: Iterable[str] = (),
                 reasons: dict[str, str] | None = None, ranges: dict[str, float] | None = None) -> ConvertResult:
    """Write the FP16 or INT8 Q/DQ version of a float32 ONNX model.

    The output keeps the model metadata and gains ``enet.precision`` (and, for
    INT8, ``enet.int8`` with the calibration facts). Written atomically.

    Args:
        onnx_path: float32 ONNX from ``enet-export``.
        output: ``.onnx`` path to write.
        precision: ``fp16`` or ``int8``.
        calib: calibration spec, required for ``int8`` (default method ``max``:
            entropy's clipping costs more mIoU on CamVid, docs/engines.md).
        keep_fp32: INT8 only: node names left in float32.
        reasons: why each of ``keep_fp32`` is kept (reported); default "on request".
        ranges: activation ranges from an earlier calibration of this model (skips calibrating).

    Raises:
        EnetError: bad model, missing calibration data, unwritable output.
    """
    model = load_onnx(onnx_path)
    meta = read_meta(model, str(onnx_path))
    shape = static_input_shape(model, None, meta)
    have = precision_of(model)
    if have != "fp32":
        raise EnetError(f"{onnx_path} is already {have}; convert the float32 ONNX from enet-export")
    report = None
    paths: list[Path] = []
    if precision == "fp16":
        out = convert_fp16(model)
    elif precision == "int8":
        if calib is None:
            raise EnetError("INT8 needs calibration frames: pass --calib-data (CamVid root or a folder of frames)")
        amax, paths = (dict(ranges), []) if ranges else calibrate_ranges(model, calib, meta, shape)
        out, report = quantize_int8(model, lambda: iter(()), method=calib.method, percentile=calib.percentile,
                                    keep_float=keep_fp32, amax=amax)
        report.num_batches = len(paths)
        report.kept.update({k: v for k, v in (reasons or {}).items() if k in report.kept})
        set_prop(out, "enet.int8", {
            "method": calib.method, "calib_images": len(paths) or None,
            "kept_fp32": report.kept, "symmetric": True, "weights": "per-channel Conv, per-tensor ConvTranspose",
        })
    else:
        raise EnetError(f"cannot convert to {precision!r}; choose fp16 or int8")
    set_prop(out, PRECISION_KEY, precision)
    with atomic_path(output) as tmp:
        onnx.save(out, str(tmp))
    return ConvertResult(Path(output), precision, meta, shape, report, paths)


def edge_layers(onnx_path: str | os.PathLike[str]) -> list[str]:
    """Names of the first and the last weighted layer (input conv, output deconvolution)."""
    from enet.engine.quant.qdq import ensure_node_names, quantizable_nodes

    model = load_onnx(onnx_path)
    ensure_node_names(model)
    nodes = quantizable_nodes(model)
    return list(dict.fromkeys([nodes[0].name, nodes[-1].name])) if nodes else []


def compare_val(reference: str | os.PathLike[str], candidate: str | os.PathLike[str],
                data_root: str | os.PathLike[str], *, limit: int | None = None,
                threads: int | None = None, progress: bool = False,
                names: tuple[str, str] | None = None) -> dict[str, Any]:
    """Val mIoU of two ONNX models with ONNX Runtime on the CPU (``progress``: a bar per model).

    ``names``: what messages call the two models (the candidate may be a temp file that becomes the output).

    Returns:
        ``{"reference": summary, "candidate": summary, "drop": pts, "frames": n}``
        (mIoU in percent points).
    """
    from enet.engine.runtime.backend import evaluate_backend
    from enet.engine.runtime.ort_backend import OrtBackend

    out: dict[str, Any] = {}
    shown = names or (str(reference), str(candidate))
    for key, path, name in (("reference", reference, shown[0]), ("candidate", candidate, shown[1])):
        with OrtBackend(path, providers="cpu", threads=threads, display_name=Path(name).name) as b:
            out[key] = evaluate_backend(b, data_root, "val", limit=limit, spaced=True, progress=progress,
                                        model_name=name)
    ref, cand = _miou(out["reference"]), _miou(out["candidate"])
    out["drop"] = (ref - cand) if ref is not None and cand is not None else None
    out["frames"] = out["reference"].get("frames")
    return out


def _miou(summary: dict[str, Any]) -> float | None:
    for key in ("miou", "mIoU", "mean_iou"):
        if key in summary and summary[key] is not None:
            v = float(summary[key])
            return v * 100.0 if v <= 1.0 else v
    return None


__all__ = ["CalibrationSpec", "ConvertResult", "calibrate_ranges", "convert_onnx", "compare_val",
           "edge_layers"]
