"""INT8 quantization of an ONNX model: calibrate, insert Q/DQ, check the rules.

TensorRT 11 reads precision from the network itself (strong typing, explicit
Q/DQ) and has no INT8 calibrators; TensorRT 8.5-10 accept the same Q/DQ ONNX
(explicit quantization). So precision is produced here, as ONNX that ONNX
Runtime also runs, and INT8 accuracy is measured on the CPU before any engine
is built. The pieces: :mod:`enet.engine.quant.calib_stats` (activation ranges),
:mod:`enet.engine.quant.qdq` (Q/DQ insertion and TensorRT's placement rules);
FP16 is :mod:`enet.engine.quant.fp16`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx

from enet.engine.quant.calib_stats import DEFAULT_PERCENTILE, collect_amax
from enet.engine.quant.qdq import check_qdq, ensure_node_names, insert_qdq, quantizable_nodes
from enet.errors import EnetError


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


def int8_activation_tensors(model: onnx.ModelProto) -> list[str]:
    """Activation tensors INT8 needs ranges for: input 0 of every quantizable Conv/ConvTranspose, in graph order."""
    return list(dict.fromkeys(n.input[0] for n in quantizable_nodes(model)))


def quantize_int8(model: onnx.ModelProto, batches: Callable[[], Iterable[np.ndarray]], *, method: str = "entropy",
                  percentile: float = DEFAULT_PERCENTILE, keep_float: Iterable[str] = (),
                  amax: dict[str, float] | None = None) -> tuple[onnx.ModelProto, QuantizeReport]:
    """Calibrate and insert Q/DQ; the TensorRT-ready INT8 ONNX.

    Args:
        model: float32 ONNX (static input shape).
        batches: callable returning a fresh iterable of float32 NCHW batches
            (see :func:`enet.engine.quant.calibration.iter_batches`).
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
