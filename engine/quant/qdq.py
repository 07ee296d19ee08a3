"""INT8 Q/DQ insertion in ONNX, and the TensorRT placement rules it promises.

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
* Activation scales come from the calibrated ranges of
  :mod:`enet.engine.quant.calib_stats`.

:func:`check_qdq` checks a model against these rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from enet.errors import EnetError

QUANT_OPS = ("Conv", "ConvTranspose")
#: Per-channel weight axis by op; an op absent here is quantized per tensor.
PER_CHANNEL_AXIS = {"Conv": 0}
#: int8 grid half-width: weights use [-127, 127]; activations saturate to [-128, 127].
QMAX = 127.0
MIN_OPSET = 13  # per-channel QuantizeLinear (axis attribute)


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


def scale_from_amax(amax: np.ndarray | float) -> np.ndarray:
    """float32 int8 scale ``amax / 127`` (symmetric); the one amax -> scale rule of the toolkit.

    Every Q/DQ scale of the INT8 ONNX (the one INT8 path, which TensorRT
    8.5 to 11 compile) comes from here.
    """
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
            new_inits += [numpy_helper.from_array(scale_from_amax(amax[x_name]).reshape(()), s_name),
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
            ws, wz = scale_from_amax(w_amax).reshape(()), np.zeros((), np.int8)
            attrs: dict[str, Any] = {}
        else:
            w_amax = np.max(np.abs(w), axis=tuple(d for d in range(w.ndim) if d != axis))
            ws, wz = scale_from_amax(w_amax), np.zeros(w.shape[axis], np.int8)
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
