"""INT8 Q/DQ rules (TensorRT explicit quantization), calibration, FP16 conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from enet.engine.quant.calibration import iter_batches, select_calibration_images
from enet.engine.runtime.onnx_info import read_meta
from enet.engine.quant.calib_stats import collect_amax, entropy_amax, percentile_amax
from enet.engine.quant.fp16 import convert_fp16
from enet.engine.quant.qdq import check_qdq, insert_qdq, quantizable_nodes
from enet.engine.quant.quantize import quantize_int8
from enet.errors import EnetError

ort = pytest.importorskip("onnxruntime")


def _batches(onnx_path: Path, root: Path, n: int = 4):
    model = onnx.load(str(onnx_path))
    meta = read_meta(model)
    paths = select_calibration_images(root, n)
    return model, (lambda: iter_batches(paths, meta, (1, 3, *meta["input_size"])))


def _consts(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


@pytest.fixture(scope="module")
def int8_model(tiny_onnx: Path, calib_root: Path) -> tuple[onnx.ModelProto, object]:
    model, batches = _batches(tiny_onnx, calib_root)
    return quantize_int8(model, batches, method="max")


def test_qdq_structure_follows_tensorrt_rules(int8_model, tiny_onnx: Path) -> None:
    q, report = int8_model
    assert check_qdq(q) == []
    float_model = onnx.load(str(tiny_onnx))
    weighted = quantizable_nodes(float_model)
    assert len(report.quantized) == len(weighted) > 0 and report.kept == {}
    consts = _consts(q)
    producer = {o: n for n in q.graph.node for o in n.output}
    for node in q.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = consts[node.input[2]]
            assert zp.dtype == np.int8 and not zp.any()  # symmetric: zero points 0
            assert (consts[node.input[1]] > 0).all()
        if node.op_type in ("Conv", "ConvTranspose"):
            x_dq, w_dq = producer[node.input[0]], producer[node.input[1]]
            assert x_dq.op_type == w_dq.op_type == "DequantizeLinear"
            assert consts[x_dq.input[1]].ndim == 0  # activations per tensor
            w_scale = consts[w_dq.input[1]]
            w = consts[producer[w_dq.input[0]].input[0]]
            if node.op_type == "Conv":  # per output channel, axis 0
                assert w_scale.shape == (w.shape[0],)
                assert [a.i for a in w_dq.attribute if a.name == "axis"] == [0]
            else:  # ConvTranspose: per tensor
                assert w_scale.ndim == 0
    # no Q/DQ on a weighted layer's output (keeps Conv+bias+PReLU fused)
    for node in q.graph.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            assert all(c.op_type != "QuantizeLinear" for c in q.graph.node if node.output[0] in c.input)
    onnx.checker.check_model(q)


def test_int8_runs_in_onnxruntime_close_to_fp32(int8_model, tiny_onnx: Path, calib_root: Path) -> None:
    q, _ = int8_model
    _, batches = _batches(tiny_onnx, calib_root)
    x = next(iter(batches()))
    ref = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert got.shape == ref.shape
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert rel < 0.2
    assert (got.argmax(1) == ref.argmax(1)).mean() > 0.9


@pytest.mark.parametrize("method", ["max", "percentile", "entropy"])
def test_calibration_is_deterministic_and_order_free(tiny_onnx: Path, calib_root: Path, method: str) -> None:
    model, batches = _batches(tiny_onnx, calib_root, 3)
    tensors = [n.input[0] for n in quantizable_nodes(model)][:6]
    a, n = collect_amax(model, tensors, batches, method=method)
    b, _ = collect_amax(model, tensors, lambda: reversed(list(batches())), method=method)
    assert n == 3 and a == b
    assert all(v > 0 for v in a.values())
    if method != "max":
        m, _ = collect_amax(model, tensors, batches, method="max")
        assert all(a[t] <= m[t] + 1e-6 for t in tensors)


def test_entropy_and_percentile_on_known_distributions() -> None:
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(200_000))
    x[:5] = 40.0  # rare outliers stretch the max far beyond the bulk
    amax = x.max()
    hist = np.histogram(x, bins=2048, range=(0, amax))[0]
    width = amax / 2048
    e = entropy_amax(hist, width)
    assert 2.0 < e < 10.0  # clips the outliers, keeps the Gaussian bulk
    p = percentile_amax(hist, width, 99.0)
    assert abs(p - 2.576) < 0.1  # 99th percentile of |N(0,1)|


def test_keep_fp32_is_reported_and_unknown_names_rejected(tiny_onnx: Path, calib_root: Path) -> None:
    model, batches = _batches(tiny_onnx, calib_root, 2)
    nodes = quantizable_nodes(model)
    last = nodes[-1].name
    q, rep = quantize_int8(model, batches, method="max", keep_float=[last])
    assert last in rep.kept and last not in rep.quantized
    node = next(n for n in q.graph.node if n.name == last)
    producers = {o: n.op_type for n in q.graph.node for o in n.output}
    assert all(producers.get(i) != "DequantizeLinear" for i in node.input)
    assert check_qdq(q) == []
    with pytest.raises(EnetError, match="no quantizable layer"):
        quantize_int8(model, batches, method="max", keep_float=["nope"])


def test_bad_inputs(tiny_onnx: Path, calib_root: Path) -> None:
    model, batches = _batches(tiny_onnx, calib_root, 1)
    with pytest.raises(EnetError, match="unknown calibration method"):
        quantize_int8(model, batches, method="mse")
    with pytest.raises(EnetError, match="no frames"):
        quantize_int8(model, lambda: iter(()), method="max")
    old = onnx.ModelProto()
    old.CopyFrom(model)
    old.opset_import[0].version = 11
    with pytest.raises(EnetError, match="opset"):
        insert_qdq(old, {})


def test_check_qdq_catches_violations(int8_model) -> None:
    q, _ = int8_model
    bad = onnx.ModelProto()
    bad.CopyFrom(q)
    zp = next(i for i in bad.graph.initializer if i.name.endswith("_act_zp"))
    zp.CopyFrom(numpy_helper.from_array(np.array(3, np.int8), zp.name))
    assert any("zero point" in p for p in check_qdq(bad))
    # per-channel weights on a ConvTranspose
    bad = onnx.ModelProto()
    bad.CopyFrom(q)
    convt = next(n for n in bad.graph.node if n.op_type == "ConvTranspose")
    producer = {o: n for n in bad.graph.node for o in n.output}
    s_name = producer[convt.input[1]].input[1]
    s = next(i for i in bad.graph.initializer if i.name == s_name)
    s.CopyFrom(numpy_helper.from_array(np.full(4, 0.1, np.float32), s_name))
    assert any("per tensor" in p for p in check_qdq(bad))
    # a Q right after a conv output
    bad = onnx.ModelProto()
    bad.CopyFrom(q)
    conv = next(n for n in bad.graph.node if n.op_type == "Conv")
    bad.graph.node.append(helper.make_node("QuantizeLinear", [conv.output[0], s_name, "x"], ["y"], name="bad_q"))
    assert any("conv fusions" in p for p in check_qdq(bad))


def test_fp16_keeps_float32_io_and_metadata(tiny_onnx: Path, calib_root: Path) -> None:
    model, batches = _batches(tiny_onnx, calib_root, 1)
    m16 = convert_fp16(model)
    assert m16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m16.graph.initializer)
    assert read_meta(m16)["classes"] == read_meta(model)["classes"]
    x = next(iter(batches()))
    ref = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(m16.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert got.dtype == np.float32
    assert (got.argmax(1) == ref.argmax(1)).mean() > 0.97
