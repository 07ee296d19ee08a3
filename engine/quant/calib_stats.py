"""Calibration statistics for INT8: activation ranges (``amax``) from real frames.

:func:`collect_amax` runs the float32 ONNX in ONNX Runtime on calibration
batches (:mod:`enet.engine.quant.calibration`) and reduces each activation to one
absolute range by ``max``, ``percentile`` or ``entropy`` (TensorRT's
KL-divergence method on a 2048-bin histogram of ``|x|``, as
``IInt8EntropyCalibrator2``). :mod:`enet.engine.quant.qdq` turns the ranges into
scales.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from enet._lazy import require
from enet.errors import EnetError

METHODS = ("entropy", "percentile", "max")
DEFAULT_PERCENTILE = 99.99
NUM_BINS = 2048


def _abs_histogram(values: np.ndarray, amax: float, num_bins: int) -> np.ndarray:
    a = np.abs(values.ravel())
    if amax <= 0:
        hist = np.zeros(num_bins, dtype=np.int64)
        hist[0] = a.size
        return hist
    idx = np.minimum((a * (num_bins / amax)).astype(np.int64), num_bins - 1)
    return np.bincount(idx, minlength=num_bins)


def entropy_amax(hist: np.ndarray, bin_width: float, *, num_quant_bins: int = 128, start_bin: int = 128,
                 stride: int = 1) -> float:
    """TensorRT's entropy calibration: the ``|x|`` threshold with least KL divergence.

    For each candidate threshold bin ``i``, the reference distribution is the
    histogram cut at ``i`` with the clipped tail added to its last bin; the
    candidate is the same bins merged into ``num_quant_bins`` levels and
    expanded back over the bins that were non-zero. The ``i`` with the smallest
    KL(reference || candidate) gives ``amax = i * bin_width``.

    Args:
        hist: counts of ``|x|`` in equal bins starting at 0, shape ``(B,)``.
        bin_width: width of one bin.
    """
    hist = np.asarray(hist, dtype=np.float64)
    nbins = len(hist)
    if hist[1:].sum() == 0:
        return bin_width * nbins
    last_nonzero = int(np.nonzero(hist)[0][-1]) + 1
    if last_nonzero <= start_bin:
        return bin_width * last_nonzero
    best_i, best_kl = nbins, math.inf
    cumtail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # cumtail[i] = sum(hist[i:])
    for i in range(start_bin, nbins + 1, stride):
        p = hist[:i].copy()
        p[i - 1] += cumtail[i]
        nonzero = hist[:i] != 0
        # merge bins [0, i) into num_quant_bins groups
        group = (np.arange(i) * num_quant_bins) // i
        totals = np.bincount(group, weights=hist[:i], minlength=num_quant_bins)
        counts = np.bincount(group, weights=nonzero.astype(np.float64), minlength=num_quant_bins)
        per_bin = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
        q = np.where(nonzero, per_bin[group], 0.0)
        psum, qsum = p.sum(), q.sum()
        if qsum == 0:
            continue
        p /= psum
        q /= qsum
        mask = p > 0
        if np.any(q[mask] == 0):
            continue
        kl = float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
        if kl <= best_kl:  # ties: the wider range, as TensorRT
            best_kl, best_i = kl, i
    return bin_width * best_i


def percentile_amax(hist: np.ndarray, bin_width: float, percentile: float) -> float:
    """The ``|x|`` value below which ``percentile`` % of the samples lie (upper bin edge)."""
    c = np.cumsum(hist, dtype=np.float64)
    if c[-1] == 0:
        return bin_width * len(hist)
    i = int(np.searchsorted(c, c[-1] * percentile / 100.0))
    return bin_width * (min(i, len(hist) - 1) + 1)


def _session_with_outputs(model: onnx.ModelProto, tensors: Sequence[str]):
    ort = require("onnxruntime")
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    present = {o.name for o in aug.graph.output}
    for t in tensors:
        if t not in present:
            aug.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess, sess.get_inputs()[0].name


def collect_amax(model: onnx.ModelProto, tensors: Sequence[str], batches: Callable[[], Iterable[np.ndarray]], *,
                 method: str = "entropy", percentile: float = DEFAULT_PERCENTILE,
                 num_bins: int = NUM_BINS) -> tuple[dict[str, float], int]:
    """Calibrate activation ranges with ONNX Runtime on the CPU.

    Pass 1 records ``max |x|`` per tensor (the ``max`` method stops there);
    pass 2 fills a ``num_bins`` histogram of ``|x|`` on ``[0, max]`` per tensor
    and picks the threshold by ``entropy`` or ``percentile``. Two passes make
    the result independent of frame order.

    Args:
        model: float32 ONNX model.
        tensors: activation tensor names to calibrate.
        batches: a callable returning a fresh iterable of float32 NCHW inputs
            (called once per pass).

    Returns:
        ``({tensor: amax}, number of batches)``.
    """
    if method not in METHODS:
        raise EnetError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 < percentile <= 100:
        raise EnetError(f"percentile must be in (0, 100], got {percentile}")
    sess, input_name = _session_with_outputs(model, tensors)
    names = [o.name for o in sess.get_outputs()]
    want = [names.index(t) for t in tensors]
    amax = dict.fromkeys(tensors, 0.0)
    n = 0
    for x in batches():
        outs = sess.run(None, {input_name: x})
        for t, k in zip(tensors, want):
            amax[t] = max(amax[t], float(np.max(np.abs(outs[k]))))
        n += 1
    if n == 0:
        raise EnetError("calibration saw no frames; check --calib-data and --calib-frames")
    if method == "max":
        return amax, n
    hists = {t: np.zeros(num_bins, dtype=np.int64) for t in tensors}
    for x in batches():
        outs = sess.run(None, {input_name: x})
        for t, k in zip(tensors, want):
            hists[t] += _abs_histogram(outs[k], amax[t], num_bins)
    result = {}
    for t in tensors:
        width = amax[t] / num_bins if amax[t] > 0 else 1.0 / num_bins
        if method == "entropy":
            result[t] = min(entropy_amax(hists[t], width), amax[t]) if amax[t] > 0 else 0.0
        else:
            result[t] = min(percentile_amax(hists[t], width, percentile), amax[t]) if amax[t] > 0 else 0.0
    return result, n
