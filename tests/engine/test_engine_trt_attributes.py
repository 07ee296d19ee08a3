"""Every TensorRT attribute the planner, the builder and the runner touch, against the installed ``tensorrt``.

Opt-in by nature: it runs where a ``tensorrt`` module imports (``trt``
marker; a Jetson, ``make gpu-check``, a desktop with ``enet-rt[tensorrt]``),
and needs no GPU. It could not run on the machines this project was built
on: PyPI's ``tensorrt-cu12-bindings`` wheel imports only with the
``libnvinfer`` libraries of ``tensorrt-cu12-libs``, a placeholder package
that downloads the real wheel from pypi.nvidia.com at install time, which
those machines cannot reach (docs/engines.md, "Checking against the real module").
"""

from __future__ import annotations

import pytest

from enet.engine.trt.compat import features_for_version, trt_features

pytestmark = pytest.mark.trt

#: (attribute chain, needed from / until): what enet.engine.trt.build, trt_backend and trt_compat use.
ALWAYS = [
    "__version__", "Logger", "Logger.WARNING", "Runtime", "Runtime.DLA_core", "Runtime.num_DLA_cores",
    "Runtime.deserialize_cuda_engine", "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name",
    "ICudaEngine.get_tensor_mode", "ICudaEngine.get_tensor_shape", "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.create_execution_context", "TensorIOMode.INPUT", "IExecutionContext.execute_async_v3",
    "IExecutionContext.set_input_shape", "IExecutionContext.set_tensor_address",
    "IExecutionContext.get_tensor_shape", "nptype", "float32", "float16", "MemoryPoolType.WORKSPACE",
    "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.DLA_core", "Builder.num_DLA_cores",
    "INetworkDefinition.num_layers", "INetworkDefinition.get_layer", "ILayer.name", "ILayer.precision",
    "ILayer.num_outputs", "ILayer.get_output", "ILayer.set_output_type", "ITensor.name", "ITensor.dtype",
]
WEAKLY_TYPED = ["BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS"]


def _missing(trt, chains):
    out = []
    for chain in chains:
        obj = trt
        for name in chain.split("."):
            if not hasattr(obj, name):
                out.append(chain)
                break
            obj = getattr(obj, name)
    return out


def test_every_attribute_enet_rt_uses_exists() -> None:
    trt = pytest.importorskip("tensorrt")
    f = trt_features(trt)
    chains = list(ALWAYS)
    if f.fp16_flag:
        chains += WEAKLY_TYPED
    if f.strongly_typed_flag:
        chains.append("NetworkDefinitionCreationFlag.STRONGLY_TYPED")
    if f.dla:
        chains.append("DeviceType.DLA")
    assert _missing(trt, chains) == [], f"TensorRT {trt.__version__}"


def test_the_release_table_matches_the_installed_module() -> None:
    trt = pytest.importorskip("tensorrt")
    assert features_for_version(trt.__version__) == trt_features(trt)
