"""FP16 conversion in ONNX: float16 inside, float32 graph inputs and outputs."""

from __future__ import annotations

import onnx

from enet._lazy import require
from enet.errors import EnetError


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
