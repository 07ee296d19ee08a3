"""Precision conversion in ONNX: INT8 Q/DQ with CamVid calibration, and FP16.

TensorRT 11 reads precision from the network itself (strong typing, explicit
Q/DQ) and has no INT8 calibrators; TensorRT 8.5-10 accept the same Q/DQ ONNX
(explicit quantization). So precision is produced here, as ONNX that ONNX
Runtime also runs, and INT8 accuracy is measured on the CPU before any engine
is built.

Q/DQ placement follows TensorRT's explicit-quantization rules
(docs: "Explicit Quantization", "Q/DQ Layer-Placement Recommendations"):

* Only the inputs of weighted layers are quantized: the activation input and
  the weights of every ``Conv`` and ``ConvTranspose``. Outputs are not, so
  ``Conv -> (bias) -> PRelu -> Q`` stays one fused int8 kernel in TensorRT
  (the Q of the next layer's input is fused into this conv's epilogue).
* Symmetric int8, every zero point 0 (TensorRT supports nothing else).
* Weights: float32 initializer -> QuantizeLinear -> DequantizeLinear; TensorRT
  folds the Q into int8 weights (accepted by 8.5 .. 11; pre-quantized int8
  initializers are newer). ``Conv`` weights per output channel (``axis=0``);
  ``ConvTranspose`` weights per tensor, because TensorRT does not take
  per-output-channel scales on deconvolution weights (axis 1 of ``(Cin,
  Cout/g, kh, kw)``).
* Activation scales come from calibration on real frames: ``entropy``
  (TensorRT's KL-divergence method on a 2048-bin histogram of ``|x|``, as
  ``IInt8EntropyCalibrator2``), ``percentile`` or ``max``.

FP16: every float initializer and op in float16 with float32 graph inputs and
outputs (a Cast at each end), for strongly typed TensorRT networks.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from enet._lazy import require
from enet.errors import EnetError

log = logging.getLogger(__name__)

METHODS = ("entropy", "percentile", "max")
QUANT_OPS = ("Conv", "ConvTranspose")
#: Per-channel weight axis by op; an op absent here is quantized per tensor.
PER_CHANNEL_AXIS = {"Conv": 0}
DEFAULT_PERCENTILE = 99.99
NUM_BINS = 2048
#: int8 grid half-width: weights use [-127, 127]; activations saturate to [-128, 127].
QMAX = 127.0
MIN_OPSET = 13  # per-channel QuantizeLinear (axis attribute)


@dataclass
class QuantizeReport:
    """What :func:`quantize_int8` did.

    Attributes:
        method: calibration method.
        num_batches: calibration batches seen.
        amax: activation tensor name -> calibrated absolute range.
        quantized: names of the Conv/ConvTranspose nodes given Q/DQ.
        kept: node name -> why it stays in float (higher precision).
    """

    method: str
    num_batches: int
    amax: dict[str, float]
    quantized: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- graph helpers


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give every unnamed node a stable name ``<OpType>_<index>`` (in place)."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    consts = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return consts


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def quantizable_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Conv/ConvTranspose nodes with constant float32 weights, in graph order."""
    consts = _constants(model)
    out = []
    for node in model.graph.node:
        if node.op_type in QUANT_OPS and len(node.input) > 1:
            w = consts.get(node.input[1])
            if w is not None and w.dtype == np.float32:
                out.append(node)
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)


# --------------------------------------------------------------------------- calibration


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
        raise EnetError("calibration saw no frames; check --calib-data and --calib-images")
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


# --------------------------------------------------------------------------- Q/DQ insertion


def _scale(amax: np.ndarray | float) -> np.ndarray:
    a = np.asarray(amax, dtype=np.float32)
    # a dead channel or an all-zero tensor: any positive scale is exact for zeros
    a = np.where(a > 0, a, np.float32(1.0))
    return (a / np.float32(QMAX)).astype(np.float32)


def insert_qdq(model: onnx.ModelProto, amax: dict[str, float], *, exclude: Iterable[str] = ()) -> tuple[onnx.ModelProto, list[str]]:
    """Return a copy of ``model`` with Q/DQ on the inputs of Conv/ConvTranspose.

    Args:
        model: float32 model (node names made unique by :func:`ensure_node_names`).
        amax: calibrated absolute range per activation tensor (conv input 0).
        exclude: node names left in float.

    Returns:
        ``(new model, names of quantized nodes)``.
    """
    if _opset(model) < MIN_OPSET:
        raise EnetError(
            f"INT8 Q/DQ needs ONNX opset >= {MIN_OPSET} (per-channel QuantizeLinear), the model has "
            f"opset {_opset(model)}; re-export with enet-export --opset 17"
        )
    m = onnx.ModelProto()
    m.CopyFrom(model)
    ensure_node_names(m)
    exclude = set(exclude)
    consts = _constants(m)
    inits = {i.name for i in m.graph.initializer}
    new_inits: list[TensorProto] = []
    act_dq: dict[str, str] = {}  # activation tensor -> its DQ output (shared by consumers)
    quantized: list[str] = []
    new_nodes: list[onnx.NodeProto] = []
    for node in m.graph.node:
        if node.op_type not in QUANT_OPS or node.name in exclude or len(node.input) < 2:
            new_nodes.append(node)
            continue
        w = consts.get(node.input[1])
        x_name = node.input[0]
        if w is None or w.dtype != np.float32 or x_name not in amax:
            new_nodes.append(node)
            continue
        base = _safe(node.name)
        # activation
        if x_name not in act_dq:
            s_name, z_name = f"{_safe(x_name)}_act_scale", f"{_safe(x_name)}_act_zp"
            new_inits += [numpy_helper.from_array(_scale(amax[x_name]).reshape(()), s_name),
                          numpy_helper.from_array(np.zeros((), np.int8), z_name)]
            q_out, dq_out = f"{_safe(x_name)}_act_q", f"{_safe(x_name)}_act_dq"
            new_nodes.append(helper.make_node("QuantizeLinear", [x_name, s_name, z_name], [q_out],
                                              name=f"{_safe(x_name)}_QuantizeLinear"))
            new_nodes.append(helper.make_node("DequantizeLinear", [q_out, s_name, z_name], [dq_out],
                                              name=f"{_safe(x_name)}_DequantizeLinear"))
            act_dq[x_name] = dq_out
        # weights
        axis = PER_CHANNEL_AXIS.get(node.op_type)
        if axis is None:
            w_amax = np.float32(np.max(np.abs(w)))
            ws, wz = _scale(w_amax).reshape(()), np.zeros((), np.int8)
            attrs: dict[str, Any] = {}
        else:
            w_amax = np.max(np.abs(w), axis=tuple(d for d in range(w.ndim) if d != axis))
            ws, wz = _scale(w_amax), np.zeros(w.shape[axis], np.int8)
            attrs = {"axis": axis}
        w_name = node.input[1]
        if w_name not in inits:  # from a Constant node: make it an initializer of our own
            w_name = f"{base}_weight"
            new_inits.append(numpy_helper.from_array(w, w_name))
        ws_name, wz_name = f"{base}_w_scale", f"{base}_w_zp"
        new_inits += [numpy_helper.from_array(ws, ws_name), numpy_helper.from_array(wz, wz_name)]
        wq, wdq = f"{base}_w_q", f"{base}_w_dq"
        new_nodes.append(helper.make_node("QuantizeLinear", [w_name, ws_name, wz_name], [wq],
                                          name=f"{base}_w_QuantizeLinear", **attrs))
        new_nodes.append(helper.make_node("DequantizeLinear", [wq, ws_name, wz_name], [wdq],
                                          name=f"{base}_w_DequantizeLinear", **attrs))
        node.input[0] = act_dq[x_name]
        node.input[1] = wdq
        new_nodes.append(node)
        quantized.append(node.name)
    del m.graph.node[:]
    m.graph.node.extend(new_nodes)
    m.graph.initializer.extend(new_inits)
    # the graph stays topologically sorted: every Q/DQ is placed right before its first consumer
    return m, quantized


def check_qdq(model: onnx.ModelProto) -> list[str]:
    """TensorRT explicit-quantization rules this toolkit promises; returns the violations.

    Checks: int8 zero points equal to 0; positive scales; per-channel axis only
    on Conv weights (axis 0); ConvTranspose weights per tensor; every quantized
    weighted layer has Q/DQ on both its activation and its weights; no Q/DQ on
    a weighted layer's output (which would split TensorRT's conv fusions).
    """
    problems: list[str] = []
    consts = _constants(model)
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            scale = consts.get(n.input[1])
            zp = consts.get(n.input[2]) if len(n.input) > 2 else None
            if scale is None or np.any(scale <= 0):
                problems.append(f"{n.name}: scale missing or not positive")
            if zp is None or zp.dtype != np.int8:
                problems.append(f"{n.name}: zero point must be an int8 constant")
            elif np.any(zp != 0):
                problems.append(f"{n.name}: zero point {zp.ravel()[:4]} is not 0 (TensorRT is symmetric only)")
        if n.op_type in QUANT_OPS:
            src = [producer.get(i) for i in n.input[:2]]
            dq = [s is not None and s.op_type == "DequantizeLinear" for s in src]
            if any(dq) and not all(dq):
                problems.append(f"{n.name}: Q/DQ on only one of activation and weights")
            if dq[1]:
                axis_attr = [a.i for a in src[1].attribute if a.name == "axis"]
                wscale = consts.get(src[1].input[1])
                per_channel = wscale is not None and wscale.ndim == 1 and wscale.size > 1
                if n.op_type == "ConvTranspose" and per_channel:
                    problems.append(f"{n.name}: ConvTranspose weights must be quantized per tensor for TensorRT")
                if n.op_type == "Conv" and per_channel and axis_attr and axis_attr[0] != 0:
                    problems.append(f"{n.name}: Conv weight scales must be along axis 0 (output channels)")
            for c in consumers.get(n.output[0], []):
                if c.op_type == "QuantizeLinear":
                    problems.append(f"{n.name}: output quantized directly; this breaks TensorRT's conv fusions")
    return problems


def quantize_int8(model: onnx.ModelProto, batches: Callable[[], Iterable[np.ndarray]], *, method: str = "entropy",
                  percentile: float = DEFAULT_PERCENTILE, keep_float: Iterable[str] = (),
                  amax: dict[str, float] | None = None) -> tuple[onnx.ModelProto, QuantizeReport]:
    """Calibrate and insert Q/DQ; the TensorRT-ready INT8 ONNX.

    Args:
        model: float32 ONNX (static input shape).
        batches: callable returning a fresh iterable of float32 NCHW batches
            (see :func:`enet.engine.calibration.iter_batches`).
        method: ``entropy | percentile | max``.
        keep_float: node names kept in float32 (reported as user-requested).
        amax: precomputed ranges (e.g. from a calibration cache); skips calibration.

    Raises:
        EnetError: bad method, opset too old, no frames, or a model without
            any Conv to quantize.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    ensure_node_names(m)
    nodes = quantizable_nodes(m)
    if not nodes:
        raise EnetError("the ONNX model has no Conv/ConvTranspose with constant weights to quantize")
    keep = set(keep_float)
    unknown = keep - {n.name for n in nodes}
    if unknown:
        raise EnetError(
            f"--keep-fp32 names no quantizable layer: {', '.join(sorted(unknown))}; "
            f"layers are e.g. {', '.join(n.name for n in nodes[:3])}"
        )
    tensors = list(dict.fromkeys(n.input[0] for n in nodes if n.name not in keep))
    n_batches = 0
    if amax is None:
        amax, n_batches = collect_amax(m, tensors, batches, method=method, percentile=percentile)
    else:
        missing = [t for t in tensors if t not in amax]
        if missing:
            raise EnetError(
                f"the calibration cache lacks {len(missing)} tensors of this model (e.g. {missing[0]}); "
                "delete it to recalibrate"
            )
    qmodel, quantized = insert_qdq(m, amax, exclude=keep)
    report = QuantizeReport(method=method, num_batches=n_batches, amax=dict(amax), quantized=quantized,
                            kept={k: "kept in float32 on request (--keep-fp32)" for k in sorted(keep)})
    problems = check_qdq(qmodel)
    if problems:  # a bug in insert_qdq, not a user error
        raise AssertionError("Q/DQ rules violated: " + "; ".join(problems[:5]))
    return qmodel, report


# --------------------------------------------------------------------------- FP16


def convert_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 copy of a float32 model; graph inputs and outputs stay float32.

    Uses ONNX Runtime's converter (``onnxruntime.transformers.float16``, the
    onnxconverter-common code) with ``keep_io_types=True``: a Cast after the
    input and before each output, everything between in float16, as strongly
    typed TensorRT expects. ENet's ops are all float16-capable in TensorRT, so
    no op is blocked; ONNX Runtime's CPU kernels run it too, which is how its
    accuracy is checked here.
    """
    require("onnxruntime")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise EnetError("the model already holds INT8 Q/DQ; convert the float32 ONNX to FP16 instead")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    # keep ONNX metadata_props (the model's classes, palette, ...)
    out = convert_float_to_float16(m, keep_io_types=True, disable_shape_infer=False)
    return out
