"""CPU graph forms (enet.export.cpu_graph): same numbers as the exported graph, other ops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from enet.export.cpu_graph import (FORMS, cpu_form, decompose_prelu, labels_head, max_prelu, nchwc_prelu, pad_conv,
                                   rank4_prelu_slopes, row_pair_pool, select_unpool)
from enet.export.onnx import export_onnx
from enet.model import unpool_with_mask, window_first_max_mask

ort = pytest.importorskip("onnxruntime")


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def _tied_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random values with flat 2x2 blocks: max-pool windows of the input and deeper maps tie exactly."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    x = rng.standard_normal(shape).astype(np.float32)
    blocks = rng.standard_normal((n, c, h // 4, w // 4)).astype(np.float32)
    x[:, :, : h // 2, : w // 2] = blocks.repeat(2, axis=2).repeat(2, axis=3)
    x[:, :, h // 2:, w // 2:] = 0.0
    return x


@pytest.fixture(scope="module")
def exports(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, onnx.ModelProto]:
    d = tmp_path_factory.mktemp("cpu_graph")
    mask = export_onnx(tiny_checkpoint, d / "mask.onnx", labels=True).path
    batch2 = export_onnx(tiny_checkpoint, d / "b2.onnx", dynamic_batch=True).path
    native = export_onnx(tiny_checkpoint, d / "native.onnx", unpool="native").path
    return {k: onnx.load(str(p)) for k, p in (("mask", mask), ("batch2", batch2), ("native", native))}


@pytest.mark.parametrize("runtime", sorted(FORMS))
def test_forms_are_bit_identical_in_onnxruntime(exports, runtime: str) -> None:
    src = exports["mask"]
    form, done = cpu_form(src, runtime)
    onnx.checker.check_model(form, full_check=True)
    assert done["select_unpool"] == 2  # both encoder masks (down1, down2) and their decoders
    for x in (np.random.default_rng(1).standard_normal((1, 3, 64, 96)).astype(np.float32),
              _tied_input((1, 3, 64, 96)), np.zeros((1, 3, 64, 96), np.float32)):
        ref, got = _run(src, x), _run(form, x)
        assert [r.shape for r in ref] == [g.shape for g in got]
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(g, r)  # logits and in-graph labels, bit for bit
    assert [o.name for o in form.graph.output] == [o.name for o in src.graph.output]
    assert {p.key: p.value for p in form.metadata_props} == {p.key: p.value for p in src.metadata_props}


def test_forms_change_the_ops_they_name(exports) -> None:
    src = exports["mask"]
    ov, _ = cpu_form(src, "openvino")
    fast, _ = cpu_form(src, "ort-fast")
    for m in (ov, fast):
        ops = [n.op_type for n in m.graph.node if not n.name.startswith("cpu_graph/labels")]
        assert "Transpose" not in ops and "ReduceMax" not in ops
        assert ops.count("Resize") == 6  # max and score per encoder, one per decoder
    slopes = {n.input[1] for n in ov.graph.node if n.op_type == "PRelu"}
    assert all(len(i.dims) == 4 for i in ov.graph.initializer if i.name in slopes)
    assert "PRelu" not in {n.op_type for n in fast.graph.node}
    assert sum(n.op_type == "Where" for n in ov.graph.node) == 2 + 2 + 1  # encoder scores, placements, labels
    assert "Where" not in {n.op_type for n in fast.graph.node}  # encoder scores and placements are Mul
    assert "ArgMax" in {n.op_type for n in fast.graph.node}         # ONNX Runtime keeps the graph's ArgMax
    assert "Pad" not in {n.op_type for n in fast.graph.node}        # channel pads are 1x1 Convs (NCHWc)
    assert sum(n.op_type == "Relu" for n in fast.graph.node) >= 2 * 100  # PReLUs on blocked tensors: two Relus each
    assert "ArgMax" not in {n.op_type for n in ov.graph.node}       # OpenVINO: the MaxPool head, uint8
    assert ov.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert any(n.name.startswith("cpu_graph/row_pool") for n in ov.graph.node)  # the image's pooling
    assert sum(n.op_type == "Where" for n in ov.graph.node if n.name.startswith("cpu_graph/labels")) == 1


def _logits_model(classes: int, opset: int, labels: str | None) -> onnx.ModelProto:
    """x -> Identity -> logits (and ``labels``: ArgMax of it, through a Cast to int64 or not)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity", ["x"], ["logits"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, classes, 5, 7])]
    if labels == "argmax":
        nodes.append(helper.make_node("ArgMax", ["logits"], ["labels"], axis=1, keepdims=1))
        outputs.append(helper.make_tensor_value_info("labels", TensorProto.INT64, [None, 1, 5, 7]))
    elif labels == "cast":
        nodes += [helper.make_node("ArgMax", ["logits"], ["am"], axis=1, keepdims=0),
                  helper.make_node("Cast", ["am"], ["labels"], to=TensorProto.INT32)]
        outputs.append(helper.make_tensor_value_info("labels", TensorProto.INT32, [None, 5, 7]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, classes, 5, 7])],
                              outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("how", ["reduce", "pool", "split"])
@pytest.mark.parametrize("classes, opset, labels", [(11, 17, "argmax"), (11, 18, "cast"), (3, 17, None),
                                                    (255, 18, None)])
def test_labels_head_is_argmax_ties_first(classes: int, opset: int, labels: str | None, how: str) -> None:
    model = _logits_model(classes, opset, labels)
    pool = how == "pool"
    form, done = labels_head(model, pool=pool, split=how == "split")
    ops = {n.op_type for n in form.graph.node}
    assert ("MaxPool" in ops) == pool and ("Split" in ops) == (how == "split")
    assert done == 1
    onnx.checker.check_model(form, full_check=True)
    assert "ArgMax" not in {n.op_type for n in form.graph.node}
    rng = np.random.default_rng(classes)
    tied = rng.integers(-2, 3, (4, classes, 5, 7)).astype(np.float32)   # many exact ties
    tied[1] = 0.0                                                         # all classes tie: class 0
    tied[2, -1] = 1e30                                                    # the last class wins alone
    x = np.concatenate([tied, rng.standard_normal((2, classes, 5, 7)).astype(np.float32),
                        # all -inf: ONNX Runtime's MaxPool starts from -FLT_MAX (real logits are finite)
                        np.full((1, classes, 5, 7), -3.4e38 if pool else -np.inf, np.float32)])
    out = _run(form, x)
    np.testing.assert_array_equal(out[0], x)
    want = x.argmax(1)
    assert out[1].dtype == np.uint8
    np.testing.assert_array_equal(out[1][:, 0] if labels == "argmax" else out[1], want)
    if labels:  # the original graph's ArgMax agrees (ONNX: first index on ties)
        ref = _run(model, x)[1]
        np.testing.assert_array_equal(ref[:, 0] if labels == "argmax" else ref, want)


def test_labels_head_leaves_other_graphs_alone() -> None:
    model = _logits_model(300, 17, None)  # too many classes for uint8
    assert labels_head(model)[1] == 0


def test_dynamic_batch_keeps_images_apart(exports) -> None:
    src = exports["batch2"]
    form, done = select_unpool(src)
    assert done == 2
    x = np.concatenate([_tied_input((1, 3, 64, 96), 2), np.random.default_rng(3).standard_normal(
        (1, 3, 64, 96)).astype(np.float32)])
    np.testing.assert_array_equal(_run(form, x)[0], _run(src, x)[0])
    fast, done = cpu_form(src, "ort-fast")  # the NCHWc rewrites with a dynamic batch dimension
    assert done["pad_conv"] == 2 and done["nchwc_prelu"] >= 100
    np.testing.assert_array_equal(_run(fast, x)[0], _run(src, x)[0])


def test_graphs_without_the_mask_form_are_left_alone(exports) -> None:
    native = exports["native"]
    form, done = select_unpool(native)
    assert done == 0
    assert [n.op_type for n in form.graph.node] == [n.op_type for n in native.graph.node]


class _PoolUnpool(nn.Module):
    """The mask pool/unpool pair alone, with a scale in between (as a bottleneck changes values)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, mask = window_first_max_mask(x)
        return unpool_with_mask(pooled * 2.0 - 1.0, mask)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's TorchScript exporter notice
def test_select_unpool_puts_ties_first_like_pytorch(tmp_path: Path) -> None:
    x = np.array([[[[5, 5, 1, 3, 0, 0],
                    [5, 5, 3, 2, 0, 0],
                    [7, 1, 4, 4, -1, -2],
                    [1, 7, 2, 4, -2, -1]]]], dtype=np.float32)
    path = tmp_path / "pair.onnx"
    torch.onnx.export(_PoolUnpool(), (torch.from_numpy(x),), str(path), opset_version=17, dynamo=False,
                      input_names=["input"], output_names=["out"])
    src = onnx.load(str(path))
    form, done = select_unpool(src)
    assert done == 1
    pooled, idx = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    want = torch.nn.functional.max_unpool2d(pooled * 2.0 - 1.0, idx, 2, output_size=x.shape[-2:]).numpy()
    np.testing.assert_array_equal(_run(form, x)[0], want)
    np.testing.assert_array_equal(_run(src, x)[0], want)


@pytest.mark.parametrize("slopes, two_op", [
    ([0.25, -0.5, 0.0, 1.0], "Max"),      # every slope <= 1 (the shipped model has 111 such layers)
    ([1.0, 1.08, 3.0, 1.0], "Min"),       # every slope >= 1
    ([0.25, 1.08, -0.5, 0.9], None),      # both sides of 1: the four-op form
])
def test_prelu_rewrites_are_exact_at_zero_and_signs(slopes: list[float], two_op: str | None) -> None:
    from onnx import TensorProto, helper, numpy_helper

    slope = np.array(slopes, np.float32).reshape(4, 1, 1)
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "s"], ["y"], name="p")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 4])],
                              [numpy_helper.from_array(slope, "s")])
    src = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    values = [-3.0, -0.0, 0.0, 1e-40, -1e-40, 2.5, -7.75, 1e30, -1e30, 3.4e38, -3.4e38, -1.1754944e-38]
    rng = np.random.default_rng(0)
    x = np.concatenate([np.array(values * 4, np.float32),
                        (rng.standard_normal(4 * 12 * 50) * 10.0 ** rng.integers(-30, 30, 4 * 12 * 50)).astype(np.float32)])
    for chunk in x.reshape(-1, 1, 4, 3, 4):
        ref = _run(src, chunk)[0]
        for rewrite in (decompose_prelu, rank4_prelu_slopes, max_prelu):
            form, count = rewrite(src)
            assert count == 1
            np.testing.assert_array_equal(_run(form, chunk)[0], ref)
    ops = {n.op_type for n in max_prelu(src)[0].graph.node}
    assert ops == ({"Mul", two_op} if two_op else {"Relu", "Min", "Mul", "Add"})


def test_int8_qdq_graph_keeps_its_numbers(exports) -> None:
    from enet.engine.quant.quantize import quantize_int8

    model = exports["mask"]
    rng = np.random.default_rng(5)
    batches = [rng.standard_normal((1, 3, 64, 96)).astype(np.float32) for _ in range(3)]
    q, _ = quantize_int8(model, lambda: iter(batches), method="max")
    x = np.random.default_rng(4).standard_normal((1, 3, 64, 96)).astype(np.float32)
    for runtime in FORMS:
        form, done = cpu_form(q, runtime)
        assert done["select_unpool"] == 2
        np.testing.assert_array_equal(_run(form, x)[0], _run(q, x)[0])


@pytest.mark.camvid
def test_shipped_model_forms_on_camvid_val(camvid_root: Path, tmp_path: Path) -> None:
    from enet.bench.frames import val_pairs
    from enet.data import read_image
    from enet.defaults import default_model_path
    from enet.transforms import Preprocess

    res = export_onnx(default_model_path(), tmp_path / "enet.onnx", labels=True)
    src = onnx.load(str(res.path))
    pre = Preprocess.from_meta(res.meta, (360, 480))
    frames = [pre.batch([read_image(p)]) for p, _ in val_pairs(camvid_root, 2)]
    for runtime in FORMS:
        form, _ = cpu_form(src, runtime)
        for x in frames:
            for r, g in zip(_run(src, x), _run(form, x)):
                np.testing.assert_array_equal(g, r)


def _pool_model(shape: list, pool_attrs: dict) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MaxPool", ["x"], ["y"], **pool_attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("batch", [1, None])
def test_row_pair_pool_takes_each_windows_own_maximum(batch) -> None:
    model = _pool_model([batch, 3, 6, 8], {"kernel_shape": [2, 2], "strides": [2, 2]})
    form, done = row_pair_pool(model)
    assert done == 1 and "Reshape" in {n.op_type for n in form.graph.node}
    rng = np.random.default_rng(7)
    for x in (rng.standard_normal((1 if batch else 2, 3, 6, 8)).astype(np.float32),
              np.arange(3 * 6 * 8, dtype=np.float32).reshape(1, 3, 6, 8)[:, ::-1].copy(),  # channel edges
              np.full((1, 3, 6, 8), -0.0, np.float32)):
        np.testing.assert_array_equal(_run(form, x)[0], _run(model, x)[0])


@pytest.mark.parametrize("shape, attrs", [
    ([1, 16, 6, 8], {"kernel_shape": [2, 2], "strides": [2, 2]}),            # enough channels already
    ([1, 3, 5, 8], {"kernel_shape": [2, 2], "strides": [2, 2]}),             # odd height
    ([1, 3, 6, 8], {"kernel_shape": [3, 3], "strides": [2, 2]}),             # another window
    ([1, 3, 6, 8], {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ([1, 3, 6, 8], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
])
def test_row_pair_pool_leaves_other_pools_alone(shape, attrs) -> None:
    assert row_pair_pool(_pool_model(shape, attrs))[1] == 0


_SPECIAL = [-3.0, -0.0, 0.0, 1e-40, -1e-40, 2.5, -7.75, 1e30, -1e30, 3.4e38, -3.4e38, -1.1754944e-38]


def _prelu_after_depthwise(slope: np.ndarray) -> onnx.ModelProto:
    """x -> depthwise Conv by 1 (a tensor ONNX Runtime keeps in NCHWc; 1 * x is x, infinities too) -> PRelu."""
    from onnx import TensorProto, helper, numpy_helper

    c = slope.size
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "one"], ["t"], group=c, kernel_shape=[1, 1]),
         helper.make_node("PRelu", ["t", "s"], ["y"], name="p")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 3, 4])],
        [numpy_helper.from_array(np.ones((c, 1, 1, 1), np.float32), "one"), numpy_helper.from_array(slope, "s")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("slopes", [
    [0.25, -0.5, 0.0, 1.0] * 4,           # every slope <= 1 (max_prelu's Max layers)
    [0.25, 1.08, -0.5, 0.9, 3.0, -2.0, 1e-3, 0.5] * 2,   # both sides of 1
])
def test_nchwc_prelu_is_exact_at_zero_signs_and_extremes(slopes: list[float]) -> None:
    src = _prelu_after_depthwise(np.array(slopes, np.float32).reshape(16, 1, 1))
    form, count = nchwc_prelu(src)
    assert count == 1
    onnx.checker.check_model(form, full_check=True)
    assert sorted(n.op_type for n in form.graph.node) == ["Add", "Conv", "Mul", "Mul", "Relu", "Relu"]
    rng = np.random.default_rng(0)
    wide = rng.standard_normal(16 * 12 * 50) * 10.0 ** rng.integers(-40, 38, 16 * 12 * 50)  # subnormals to 1e38
    x = np.concatenate([np.array(_SPECIAL * 16, np.float32), np.array([np.inf, -np.inf] * 96, np.float32),
                        wide.astype(np.float32)])
    for chunk in x.reshape(-1, 1, 16, 3, 4):
        np.testing.assert_array_equal(_run(form, chunk)[0], _run(src, chunk)[0])


def test_nchwc_prelu_leaves_unblocked_inputs_to_max_prelu() -> None:
    from onnx import TensorProto, helper, numpy_helper

    slope = np.full((16, 1, 1), 0.25, np.float32)
    plain = helper.make_model(helper.make_graph(   # a graph input: ONNX Runtime keeps it in NCHW
        [helper.make_node("PRelu", ["x", "s"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 3, 4])],
        [numpy_helper.from_array(slope, "s")]), opset_imports=[helper.make_opsetid("", 17)])
    assert nchwc_prelu(plain)[1] == 0
    odd = _prelu_after_depthwise(np.full((4, 1, 1), 0.25, np.float32))  # 4 channels: not block-aligned
    assert nchwc_prelu(odd)[1] == 0


def _pool_pad(pads: list[int]) -> onnx.ModelProto:
    """x (16 channels) -> MaxPool 2x2 -> Pad(pads) with zeros."""
    from onnx import TensorProto, helper, numpy_helper

    out = [1, 16 + pads[1] + pads[5], 2 + pads[2] + pads[6], 3 + pads[3] + pads[7]]
    graph = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Pad", ["p", "pads"], ["y"], mode="constant")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        [numpy_helper.from_array(np.array(pads, np.int64), "pads")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_pad_conv_pads_channels_exactly() -> None:
    src = _pool_pad([0, 0, 0, 0, 0, 48, 0, 0])
    form, count = pad_conv(src)
    assert count == 1
    onnx.checker.check_model(form, full_check=True)
    assert [n.op_type for n in form.graph.node] == ["MaxPool", "Conv"]
    rng = np.random.default_rng(1)
    finite = [v for v in _SPECIAL]  # infinities excepted: 0 * inf would spread NaN (docstring)
    x = np.concatenate([np.array(finite * 32, np.float32),
                        (rng.standard_normal(384 * 20) * 10.0 ** rng.integers(-40, 38, 384 * 20)).astype(np.float32)])
    for chunk in x.reshape(-1, 1, 16, 4, 6):
        np.testing.assert_array_equal(_run(form, chunk)[0], _run(src, chunk)[0])
    for pads in ([0, 0, 0, 0, 0, 48, 1, 0], [0, 8, 0, 0, 0, 8, 0, 0]):  # spatial or leading pads: left alone
        assert pad_conv(_pool_pad(pads))[1] == 0


def test_shipped_onnx_in_the_ort_fast_form_is_bit_identical() -> None:
    from enet.weights import pretrained_dir

    src = onnx.load(str(pretrained_dir() / "enet_camvid.onnx"))
    form, done = cpu_form(src, "ort-fast")
    assert done["pad_conv"] == 2 and done["nchwc_prelu"] >= 100  # the rest stay max_prelu's (not blocked there)
    assert done["nchwc_prelu"] + done["max_prelu"] == sum(n.op_type == "PRelu" for n in src.graph.node)
    rng = np.random.default_rng(7)
    for x in (rng.standard_normal((1, 3, 360, 480)).astype(np.float32), _tied_input((1, 3, 360, 480)),
              np.zeros((1, 3, 360, 480), np.float32)):
        ref, got = _run(src, x), _run(form, x)
        assert len(ref) == 2
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(g, r)  # logits and labels, bit for bit
