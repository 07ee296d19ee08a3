"""Facts read from an ONNX file: the model's metadata, input shape, output roles.

Metadata (classes, palette, mean, std, input_size, void_index) travels in
``metadata_props`` as written by ``enet-export``; it is read through
:func:`enet.export.metadata.read_onnx_metadata` (torch-free) and nowhere
written down twice. Precision conversion adds ``enet.precision``
(``fp32|fp16|int8``) beside it, with :func:`enet.export.metadata.set_prop`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from enet.defaults import what_is_wrong
from enet.errors import EnetError, ShapeError
from enet.export.metadata import read_onnx_metadata

PRECISION_KEY = "enet.precision"
_META_KEYS = ("classes", "palette", "mean", "std", "input_size")
_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.UINT8, onnx.TensorProto.INT8}


def load_onnx(path: str | os.PathLike[str], *, check: bool = True) -> onnx.ModelProto:
    """Load and check an ONNX file; a corrupt or missing file is a user error."""
    p = Path(path)
    if not p.is_file():
        raise EnetError(f"ONNX file {p} {what_is_wrong(p)}; export one with enet-export")
    try:
        model = onnx.load(str(p))
        if check:
            onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and checker raise many types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EnetError(f"{p} is not a valid ONNX model ({first}); re-export it with enet-export") from None
    if not model.graph.input or not model.graph.output:
        raise EnetError(f"{p} has no graph input or output; re-export it with enet-export")
    return model


def read_meta(model: onnx.ModelProto, source: str = "the ONNX model") -> dict[str, Any]:
    """The model metadata stored by ``enet-export`` (:func:`enet.export.metadata.read_onnx_metadata`).

    Raises:
        EnetError: the model carries no enet-rt metadata.
    """
    try:
        meta = dict(read_onnx_metadata(model))
    except EnetError:
        meta = {}
    if any(k not in meta for k in _META_KEYS):
        raise EnetError(
            f"{source} carries no enet-rt metadata (classes, mean, std, input size); "
            "export it from a checkpoint with enet-export"
        )
    return meta


def precision_of(model: onnx.ModelProto) -> str:
    """``int8`` (Q/DQ present), ``fp16`` (float16 initializers) or ``fp32``."""
    for prop in model.metadata_props:
        if prop.key == PRECISION_KEY:
            try:
                return str(json.loads(prop.value))
            except ValueError:
                return prop.value
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return "fp16"
    return "fp32"


def input_dims(model: onnx.ModelProto) -> tuple[str, list[int | str]]:
    """Name and dims of the first graph input (strings for symbolic dims)."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise EnetError("the ONNX model has no data input")
    x = inputs[0]
    dims: list[int | str] = []
    for d in x.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return x.name, dims


def static_input_shape(model: onnx.ModelProto, requested: tuple[int, ...] | None = None,
                       meta: dict[str, Any] | None = None) -> tuple[int, int, int, int]:
    """The NCHW shape to run: the model's static dims, a symbolic batch filled in.

    Raises:
        ShapeError: ``requested`` disagrees with a static dim, or the input is not NCHW with 3 channels.
    """
    _, dims = input_dims(model)
    if len(dims) != 4 or (isinstance(dims[1], int) and dims[1] not in (0, 3)):
        raise ShapeError(f"the ONNX input has shape {dims}; expected (N, 3, H, W)")
    if requested is not None:
        requested = tuple(int(v) for v in requested)
        if len(requested) != 4:
            raise ShapeError(f"input shape {requested} is not (N, 3, H, W)")
        for want, have in zip(requested, dims):
            if isinstance(have, int) and have > 0 and have != want:
                raise ShapeError(
                    f"input shape {requested} does not fit the model's input {tuple(dims)}; "
                    "re-export with enet-export --size WxH --batch N"
                )
        return requested  # type: ignore[return-value]
    filled = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d > 0:
            filled.append(d)
        elif i == 0:
            filled.append(1)
        elif meta is not None and i in (2, 3):
            filled.append(int(meta["input_size"][i - 2]))
        else:
            raise ShapeError(f"the ONNX input dim {i} is dynamic ({d}); pass input_shape")
    return tuple(filled)  # type: ignore[return-value]


def output_roles(model: onnx.ModelProto) -> tuple[str | None, str | None]:
    """``(logits output name, labels output name)``; either may be absent.

    Logits are the float output; labels (an in-graph ArgMax) the integer one.
    """
    logits = labels = None
    for out in model.graph.output:
        et = out.type.tensor_type.elem_type
        if et in _INT_TYPES and labels is None:
            labels = out.name
        elif et in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and logits is None:
            logits = out.name
    return logits, labels


#: ONNX ops of the space-to-depth that feeds the unpooling mask's ReduceMax (enet.model.window_first_max_mask).
_MASK_CHAIN_OPS = ("Reshape", "Transpose", "Cast")


def unpool_mask_tensors(model: onnx.ModelProto) -> list[str]:
    """Output tensors of the nodes that compute the unpooling masks of an ``unpool="mask"`` export.

    :func:`enet.model.window_first_max_mask` exports as space-to-depth
    (Reshape, Transpose, Reshape), ``ReduceMax`` over the window, ``Unsqueeze``
    and ``Equal(window, max)``. Both sides of that ``Equal`` must see the same
    values: a weakly typed FP16 build that ran the ReduceMax in FP16 and fed
    the Equal float32 values would find no maximum and empty the mask. The
    TensorRT builder pins the layers that produce these tensors to float32
    (:func:`enet.engine.trt.build.pin_mask_layers`).

    Returns:
        Tensor names in graph order; empty for a model without mask unpooling.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    names: list[str] = []
    for eq in g.node:
        if eq.op_type != "Equal" or len(eq.input) != 2:
            continue
        for window, other in (eq.input, reversed(eq.input)):
            unsq = producer.get(other)
            rmax = producer.get(unsq.input[0]) if unsq is not None and unsq.op_type == "Unsqueeze" else None
            if rmax is None or rmax.op_type != "ReduceMax" or rmax.input[0] != window:
                continue
            chain, x = [], window
            while x in producer and producer[x].op_type in _MASK_CHAIN_OPS:
                chain.append(producer[x].output[0])
                x = producer[x].input[0]
            for t in [*reversed(chain), rmax.output[0], unsq.output[0], eq.output[0]]:
                if t not in names:
                    names.append(t)
            break
    return names
