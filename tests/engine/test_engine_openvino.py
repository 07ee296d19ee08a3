"""OpenVINO backend: the same ONNX files as ONNX Runtime, INT8 weights on CPUs whose int8 sums saturate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from enet.engine.runtime.backend import Backend, open_backend
from enet.engine.runtime.ov_backend import compile_config, int8_sums_saturate, requantize_weights_7bit
from enet.errors import EnetError, ShapeError

ov = pytest.importorskip("openvino")


def _close_to_ort(a: np.ndarray, b: np.ndarray) -> None:
    """Two float32 runtimes: logits close almost everywhere, argmax agreeing almost everywhere.

    Not exact: convolution kernels sum in different orders, and a max-pool window whose top two
    values are that close can pick another element, which moves the logits around it.
    """
    assert a.shape == b.shape
    assert (np.abs(a - b) <= 1e-3 * (1 + np.abs(b))).mean() > 0.99
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.99


def test_openvino_runs_the_onnx_like_onnxruntime(tiny_onnx: Path) -> None:
    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    b = open_backend(tiny_onnx, "openvino", threads=1)
    assert isinstance(b, Backend) and b.input_shape == (1, 3, 64, 96)
    assert b.meta["input_size"] == [64, 96] and len(b.meta["classes"]) == 11
    with b:
        y = b.infer(x)
        assert b.name == "openvino-cpu-fp32" and y.dtype == np.float32
        np.testing.assert_array_equal(b.infer_labels(x), y.argmax(1))
        y2 = b.infer(x)
    np.testing.assert_array_equal(y, y2)  # outputs are copies, not the request's reused buffer
    b.__exit__(None, None, None)  # idempotent
    with open_backend(tiny_onnx, "ort", providers="cpu") as r:
        _close_to_ort(y, r.infer(x))
    with open_backend(tiny_onnx, "openvino", graph="as-is") as raw:
        _close_to_ort(raw.infer(x), y)


def test_openvino_labels_output(tiny_onnx_labels: Path) -> None:
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 96)).astype(np.float32)
    with open_backend(tiny_onnx_labels, "openvino") as b:
        lab = b.infer_labels(x)
        assert lab.shape == (1, 64, 96) and lab.dtype == np.int64
        np.testing.assert_array_equal(lab, b.infer(x).argmax(1))


def test_openvino_compiles_each_output_when_first_asked(tiny_onnx: Path) -> None:
    # segment() reads labels only: the logits' layout conversion and copy are not compiled in
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 96)).astype(np.float32)
    with open_backend(tiny_onnx, "openvino", threads=1) as b:
        assert b.labels_in_graph and list(b._compiled) == [b._labels_name]
        lab = b.infer_labels(x)
        assert list(b._compiled) == [b._labels_name]
        np.testing.assert_array_equal(lab, b.infer(x).argmax(1))
        assert sorted(b._compiled) == sorted([b._labels_name, b._logits_name])


def test_openvino_user_errors(tiny_onnx: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ShapeError, match="does not fit"):
        open_backend(tiny_onnx, "openvino", input_shape=(1, 3, 64, 64))
    with open_backend(tiny_onnx, "openvino") as b, pytest.raises(ShapeError, match="does not match"):
        b.infer(np.zeros((1, 3, 32, 96), np.float32))
    with pytest.raises(EnetError, match="cannot run"):
        open_backend(tiny_checkpoint, "openvino")
    with pytest.raises(EnetError, match="graph form"):
        open_backend(tiny_onnx, "openvino", graph="nhwc")


def test_compile_config_forces_f32_and_one_latency_stream() -> None:
    cfg = compile_config(3)
    assert cfg["INFERENCE_PRECISION_HINT"] == "f32" and cfg["PERFORMANCE_HINT"] == "LATENCY"
    assert cfg["NUM_STREAMS"] == "1" and cfg["INFERENCE_NUM_THREADS"] == "3"
    assert int(compile_config()["INFERENCE_NUM_THREADS"]) >= 1


def test_vnni_detection_from_cpuinfo() -> None:
    avx2 = "processor : 0\nflags : fpu sse2 avx avx2 fma\n"
    assert int8_sums_saturate(avx2)
    assert not int8_sums_saturate(avx2.replace("fma", "fma avx512_vnni"))
    assert not int8_sums_saturate(avx2.replace("fma", "fma avx_vnni"))
    vnni = avx2.replace("fma", "fma avx512_vnni")
    assert not int8_sums_saturate(vnni, {})
    assert int8_sums_saturate(vnni, {"ONEDNN_MAX_CPU_ISA": "AVX2"})   # kernels capped below VNNI
    assert int8_sums_saturate(vnni, {"DNNL_MAX_CPU_ISA": "avx512_core"})
    assert not int8_sums_saturate(vnni, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"})
    # the first variable set wins, as in oneDNN: ALL there means no cap
    assert not int8_sums_saturate(vnni, {"ONEDNN_MAX_CPU_ISA": "ALL", "DNNL_MAX_CPU_ISA": "AVX2"})


def _qdq_conv(weight_bits: int = 127) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """One Q/DQ Conv as quantize.py writes them: symmetric int8, per-channel weights."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((13, 16, 3, 3)) * 0.3).astype(np.float32)
    w_scale = (np.abs(w).reshape(13, -1).max(1) / weight_bits).astype(np.float32)
    x_scale = np.float32(2.6 / 127)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
    ]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_scale, "ws"),
             numpy_helper.from_array(np.zeros(13, np.int8), "wz"), numpy_helper.from_array(x_scale, "xs"),
             numpy_helper.from_array(np.int8(0), "xz")]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 13, 12, 12])], inits)
    x = rng.uniform(-2.6, 2.6, (1, 16, 12, 12)).astype(np.float32)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), x, w


def _fake_quant_conv(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import torch

    c = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "w")
    ws = c[q.input[1]].reshape(-1, 1, 1, 1)
    xq = np.clip(np.round(x / c["xs"]), -128, 127) * c["xs"]
    wq = np.clip(np.round(c["w"] / ws), -128, 127) * ws
    return torch.nn.functional.conv2d(torch.from_numpy(xq.astype(np.float32)),
                                      torch.from_numpy(wq.astype(np.float32)), padding=1).numpy()


def test_7bit_weights_make_openvino_compute_the_qdq_arithmetic() -> None:
    """On every CPU: with 7-bit weights no 16-bit sum saturates, so OpenVINO matches Q/DQ exactly-ish."""
    model, x, _ = _qdq_conv()
    seven, count = requantize_weights_7bit(model)
    assert count == 1
    wq = next(n for n in seven.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "w")
    consts = {i.name: numpy_helper.to_array(i) for i in seven.graph.initializer}
    assert np.abs(np.round(consts["w"] / consts[wq.input[1]].reshape(-1, 1, 1, 1))).max() <= 63
    core = ov.Core()
    compiled = core.compile_model(core.read_model(seven.SerializeToString()), "CPU", compile_config(1))
    got = compiled({"x": x})[0]
    np.testing.assert_allclose(got, _fake_quant_conv(seven, x), atol=1e-4)


@pytest.mark.slow
@pytest.mark.camvid
def test_openvino_fp32_and_int8_accuracy_on_camvid_val(camvid_root: Path, tmp_path: Path) -> None:
    """Shipped model, 20 val frames: FP32 as ONNX Runtime, INT8 (7-bit weights where needed) within 1 pt."""
    from enet.defaults import default_model_path
    from enet.engine.quant.convert import CalibrationSpec, convert_onnx
    from enet.engine.runtime.backend import evaluate_backend
    from enet.export.onnx import export_onnx

    fp32 = export_onnx(default_model_path(), tmp_path / "enet.onnx").path
    int8 = tmp_path / "enet.int8.onnx"
    convert_onnx(fp32, int8, precision="int8", calib=CalibrationSpec(data=camvid_root, images=32))
    miou = {}
    for name, path, kind in (("ort", fp32, "ort"), ("ov", fp32, "openvino"), ("ov-int8", int8, "openvino")):
        with open_backend(path, kind) as b:
            miou[name] = 100 * evaluate_backend(b, camvid_root, "val", limit=20, progress=False)["miou"]
    assert abs(miou["ov"] - miou["ort"]) <= 0.1, miou
    assert miou["ov"] - miou["ov-int8"] <= 1.0, miou


def test_op_profiles_name_the_ops(tiny_onnx: Path) -> None:
    x = np.zeros((1, 3, 64, 96), np.float32)
    with open_backend(tiny_onnx, "openvino", profile=True) as b:
        b.infer(x)
        prof = b.op_profile()
    assert "Convolution" in prof and all(v >= 0 for v in prof.values())
    with open_backend(tiny_onnx, "openvino") as b, pytest.raises(RuntimeError, match="profile=True"):
        b.op_profile()
