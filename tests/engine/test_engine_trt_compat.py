"""Build planning by TensorRT features, with stand-ins for 8.5, 8.6, 10.3 and 11."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from packaging.version import Version

from enet.engine.trt_compat import plan_build, trt_features
from enet.errors import EnetError


def fake_trt(version: str, *, flags: bool, calibrators: bool, strongly_typed: bool, tensor_api: bool = True):
    ns = SimpleNamespace(__version__=version)
    ns.BuilderFlag = SimpleNamespace(**({"FP16": 1, "INT8": 2} if flags else {}), TF32=3)
    ns.NetworkDefinitionCreationFlag = SimpleNamespace(**({"STRONGLY_TYPED": 1} if strongly_typed else {}))
    if calibrators:
        ns.IInt8EntropyCalibrator2 = object
    ns.ICudaEngine = SimpleNamespace(**({"get_tensor_name": 1} if tensor_api else {}), num_bindings=1)
    ns.IExecutionContext = SimpleNamespace(**({"execute_async_v3": 1} if tensor_api else {}))
    ns.IBuilderConfig = SimpleNamespace(set_memory_pool_limit=1)
    return ns


TRT85 = fake_trt("8.5.2.2", flags=True, calibrators=True, strongly_typed=False)
TRT103 = fake_trt("10.3.0", flags=True, calibrators=True, strongly_typed=True)
TRT11 = fake_trt("11.0.0", flags=False, calibrators=False, strongly_typed=True)
TRT84 = fake_trt("8.4.1", flags=True, calibrators=True, strongly_typed=False, tensor_api=False)


def test_features_are_probed_not_parsed() -> None:
    f = trt_features(TRT11)
    assert f.version == Version("11.0.0") > Version("10.3")  # never string comparison
    assert (f.fp16_flag, f.calibrators, f.strongly_typed) == (False, False, True)
    assert trt_features(TRT85).strongly_typed is False


def test_trt11_precision_comes_from_the_onnx() -> None:
    f = trt_features(TRT11)
    p = plan_build(f, "int8")
    assert (p.onnx_precision, p.strongly_typed, p.flags, p.calibrator) == ("int8", True, (), False)
    p = plan_build(f, "fp16")
    assert (p.onnx_precision, p.strongly_typed, p.flags) == ("fp16", True, ())
    with pytest.raises(EnetError, match="no INT8 calibrator"):
        plan_build(f, "int8", int8_mode="calibrator")


def test_a_release_without_weak_typing_counts_as_strongly_typed() -> None:
    future = fake_trt("12.0.0", flags=False, calibrators=False, strongly_typed=False)
    f = trt_features(future)
    assert f.strongly_typed and not f.strongly_typed_flag
    assert plan_build(f, "int8").strongly_typed


def test_trt10_uses_calibrator_for_fp32_onnx_and_strong_typing_for_qdq() -> None:
    f = trt_features(TRT103)
    p = plan_build(f, "int8")  # plain FP32 ONNX: legacy entropy calibrator
    assert p.calibrator and "INT8" in p.flags and p.onnx_precision == "fp32" and not p.strongly_typed
    p = plan_build(f, "int8", onnx_precision="int8")  # Q/DQ ONNX given
    assert (p.strongly_typed, p.flags, p.calibrator) == (True, (), False)
    p = plan_build(f, "int8", int8_mode="qdq")
    assert p.onnx_precision == "int8" and p.strongly_typed


def test_trt85_flag_paths() -> None:
    f = trt_features(TRT85)
    p = plan_build(f, "fp16")
    assert (p.onnx_precision, p.strongly_typed, p.flags) == ("fp32", False, ("FP16",))
    p = plan_build(f, "int8", int8_mode="qdq")
    assert (p.onnx_precision, p.strongly_typed) == ("int8", False) and "INT8" in p.flags
    assert plan_build(f, "int8").calibrator


def test_refusals() -> None:
    with pytest.raises(EnetError, match="8.5 or newer"):
        plan_build(trt_features(TRT84), "fp16")
    with pytest.raises(EnetError, match="DLA"):
        plan_build(trt_features(TRT103), "fp32", dla=True)
    with pytest.raises(EnetError, match="already int8"):
        plan_build(trt_features(TRT103), "fp16", onnx_precision="int8")
    with pytest.raises(EnetError, match="unknown precision"):
        plan_build(trt_features(TRT103), "fp8")
