"""Build planning by TensorRT features: stand-in modules for 8.4, 8.5, 10.3 and 11, and the release table."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from packaging.version import Version

from enet.engine.trt.compat import features_for_version, plan_build, trt_features
from enet.errors import EnetError


def fake_trt(version: str, *, flags: bool, strongly_typed: bool, tensor_api: bool = True, dla: bool = True):
    ns = SimpleNamespace(__version__=version)
    ns.BuilderFlag = SimpleNamespace(**({"FP16": 1, "INT8": 2} if flags else {}), TF32=3)
    ns.NetworkDefinitionCreationFlag = SimpleNamespace(**({"STRONGLY_TYPED": 1} if strongly_typed else {}))
    ns.ICudaEngine = SimpleNamespace(**({"get_tensor_name": 1} if tensor_api else {}), num_bindings=1)
    ns.IExecutionContext = SimpleNamespace(**({"execute_async_v3": 1} if tensor_api else {}))
    ns.IBuilderConfig = SimpleNamespace(set_memory_pool_limit=1)
    ns.DeviceType = SimpleNamespace(GPU=0, **({"DLA": 1} if dla else {}))
    return ns


TRT85 = fake_trt("8.5.2.2", flags=True, strongly_typed=False)
TRT103 = fake_trt("10.3.0", flags=True, strongly_typed=True)
TRT11 = fake_trt("11.0.0", flags=False, strongly_typed=True)
TRT84 = fake_trt("8.4.1", flags=True, strongly_typed=False, tensor_api=False)


def test_features_are_probed_not_parsed() -> None:
    f = trt_features(TRT11)
    assert f.version == Version("11.0.0") > Version("10.3")  # never string comparison
    assert (f.fp16_flag, f.strongly_typed) == (False, True)
    assert trt_features(TRT85).strongly_typed is False


def test_trt11_precision_comes_from_the_onnx() -> None:
    f = trt_features(TRT11)
    p = plan_build(f, "int8")
    assert (p.onnx_precision, p.strongly_typed, p.flags, p.fp32_mask) == ("int8", True, (), False)
    p = plan_build(f, "fp16")
    assert (p.onnx_precision, p.strongly_typed, p.flags, p.fp32_mask) == ("fp16", True, (), False)


def test_a_release_without_weak_typing_counts_as_strongly_typed() -> None:
    future = fake_trt("12.0.0", flags=False, strongly_typed=False)
    f = trt_features(future)
    assert f.strongly_typed and not f.strongly_typed_flag
    assert plan_build(f, "int8").strongly_typed


def test_trt10_int8_is_the_qdq_onnx() -> None:
    f = trt_features(TRT103)
    p = plan_build(f, "int8")
    assert (p.onnx_precision, p.strongly_typed, p.flags) == ("int8", True, ())
    p = plan_build(f, "int8", onnx_precision="int8")  # Q/DQ ONNX given
    assert (p.strongly_typed, p.flags, p.blocked) == (True, (), None)


def test_trt85_flag_paths_and_the_fp16_mask_protection() -> None:
    f = trt_features(TRT85)
    p = plan_build(f, "fp16")  # weakly typed FP16: the unpooling mask is pinned to float32
    assert (p.onnx_precision, p.strongly_typed, p.flags, p.fp32_mask) == ("fp32", False, ("FP16",), True)
    assert any("unpooling mask" in n for n in p.notes)
    assert plan_build(f, "fp16", onnx_precision="fp16").fp32_mask
    p = plan_build(f, "int8")  # Q/DQ + INT8 flag only: float layers stay float32, as measured
    assert (p.onnx_precision, p.strongly_typed, p.flags, p.fp32_mask) == ("int8", False, ("INT8",), False)
    assert not plan_build(trt_features(TRT103), "fp16").fp32_mask  # strongly typed: types come from the ONNX


def test_below_85_int8_is_refused_and_other_builds_are_blocked() -> None:
    with pytest.raises(EnetError, match="INT8 needs TensorRT 8.5 or newer"):
        plan_build(trt_features(TRT84), "int8")
    p = plan_build(trt_features(TRT84), "fp16")
    assert "8.5 or newer" in p.blocked and "Polygraphy" in p.blocked


def test_the_calibrator_path_is_gone() -> None:
    import importlib.util

    import enet.engine.trt.compat as compat

    assert importlib.util.find_spec("enet.engine.trt.calib_cache") is None
    assert not hasattr(compat, "INT8_MODES") and "calibrator" not in compat.BuildPlan.__dataclass_fields__
    with pytest.raises(TypeError):
        plan_build(trt_features(TRT103), "int8", int8_mode="calibrator")  # type: ignore[call-arg]


def test_dla_is_refused_where_tensorrt_has_none() -> None:
    for v in ("11.0", "11.3.1"):
        with pytest.raises(EnetError, match="no DLA support"):
            plan_build(features_for_version(v), "fp16", dla=True)
    for v in ("8.5", "8.6", "10.3"):
        assert plan_build(features_for_version(v), "fp16", dla=True).blocked is None
    assert plan_build(features_for_version("10.3"), "int8", dla=True).blocked is None
    no_dla = trt_features(fake_trt("10.3.0", flags=True, strongly_typed=True, dla=False))
    with pytest.raises(EnetError, match="no DLA support"):
        plan_build(no_dla, "fp16", dla=True)


@pytest.mark.parametrize("stand_in, version", [(TRT85, "8.5.2.2"), (TRT103, "10.3.0"), (TRT11, "11.0.0"),
                                               (TRT84, "8.4.1")])
def test_release_table_agrees_with_the_probed_modules(stand_in, version) -> None:
    assert features_for_version(version) == trt_features(stand_in)


def test_release_table() -> None:
    for v in ("8.5", "8.6.1"):
        f = features_for_version(v)
        assert f.fp16_flag and f.tensor_api and f.dla and not f.strongly_typed
    f = features_for_version("10.3")
    assert f.strongly_typed and f.strongly_typed_flag and f.fp16_flag and f.dla
    f = features_for_version("11")
    assert f.strongly_typed and not (f.fp16_flag or f.int8_flag or f.dla)
    assert not features_for_version("8.2.1").tensor_api
    with pytest.raises(EnetError, match="not a version number"):
        features_for_version("ten")


def test_refusals() -> None:
    with pytest.raises(EnetError, match="DLA"):
        plan_build(trt_features(TRT103), "fp32", dla=True)
    with pytest.raises(EnetError, match="already int8"):
        plan_build(trt_features(TRT103), "fp16", onnx_precision="int8")
    with pytest.raises(EnetError, match="unknown precision"):
        plan_build(trt_features(TRT103), "fp8")


def test_dla_int8_on_trt8_is_refused_and_says_where_it_would_run() -> None:
    """Issue 28.9: TensorRT 8.5/8.6's DLA runs no explicit (Q/DQ) quantization; with GPU fallback the engine
    would silently run on the GPU. The plan is blocked and says so; 10.x plans Q/DQ on the DLA."""
    for v in ("8.5", "8.6.1"):
        p = plan_build(features_for_version(v), "int8", dla=True)
        assert p.blocked and "Q/DQ" in p.blocked and "--fp16" in p.blocked
        assert any("every layer would run on the GPU" in line for line in p.placement)
    p = plan_build(features_for_version("10.3"), "int8", dla=True)
    assert p.placement[0].startswith("DLA: the INT8 Q/DQ")
    p = plan_build(features_for_version("8.6"), "fp16", dla=True)
    assert any("pinned to float32" in line for line in p.placement)
