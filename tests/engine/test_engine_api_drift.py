"""API drift caught on the CPU: every Polygraphy and cuda-python call of the engine layer, against the installed packages.

Polygraphy and cuda-python import without TensorRT or a GPU, so their real
signatures (``inspect.signature``: parameter names and counts, including the
keywords a loader forwards to its base class) are checked here. An upgrade
that renames or drops something the builder, the runner or the CUDA helpers
use fails this file instead of a build on the Jetson. TensorRT itself is not
installable here; its calls are covered by the gpu/trt tests only.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import enet.engine.trt.build as trt_build
from enet.engine.runtime import cuda
from enet.engine.trt.compat import BuildPlan

pg_trt = pytest.importorskip("polygraphy.backend.trt")
ROOT = Path(__file__).resolve().parents[2]


def check_binds(real, args: tuple, kwargs: dict, what: str) -> None:
    """``real(*args, **kwargs)`` binds to the installed signature; keywords swallowed by ``**kwargs``
    must be named by a base class's ``__init__`` (Polygraphy's ``CreateConfig`` forwards them)."""
    sig = inspect.signature(real)
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as exc:
        pytest.fail(f"{what}: {exc} (installed signature {sig})")
    var_kw = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    extra = bound.arguments.get(var_kw, {}) if var_kw else {}
    if extra:
        assert inspect.isclass(real), f"{what}: {sorted(extra)} only reach **{var_kw}"
        for base in inspect.getmro(real)[1:]:
            if "__init__" in vars(base):
                try:
                    inspect.signature(base.__init__).bind(None, **extra)
                except TypeError as exc:
                    pytest.fail(f"{what}: {exc} ({base.__name__}.__init__)")
                return
        pytest.fail(f"{what}: no base class takes {sorted(extra)}")


class Recorder:
    """Stands in for one Polygraphy name; checks every call against the real object first."""

    def __init__(self, name: str, real, calls: list, returns=None) -> None:
        self.name, self.real, self.calls, self.returns = name, real, calls, returns

    def __call__(self, *args, **kwargs):
        check_binds(self.real, args, kwargs, self.name)
        self.calls.append(self.name)
        return self.returns(*args, **kwargs) if self.returns else SimpleNamespace()


class _Runtime:
    """``trt.Runtime`` stand-in: records the DLA core set on it."""

    num_DLA_cores = 2

    def __init__(self, logger) -> None:
        self.DLA_core = -1
        RUNTIMES.append(self)


RUNTIMES: list[_Runtime] = []


def _stand_in_trt():
    return SimpleNamespace(
        __version__="10.3.0", float32="float32", float16="float16", bool="bool",
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1),
        MemoryPoolType=SimpleNamespace(WORKSPACE="workspace"),
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=None: None}), Runtime=_Runtime)


@pytest.fixture()
def polygraphy_recorders(monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "tensorrt", _stand_in_trt())
    real_profile = pg_trt.Profile

    class ProfileStandIn:
        def add(self, *args, **kwargs):
            check_binds(real_profile.add, (real_profile(), *args), kwargs, "Profile.add")
            calls.append("Profile.add")
            return self

    def profile(*args, **kwargs):
        check_binds(real_profile, args, kwargs, "Profile")
        calls.append("Profile")
        return ProfileStandIn()

    def engine_bytes(network, config=None, save_timing_cache=None):
        def build():
            builder = SimpleNamespace(num_DLA_cores=2)
            cfg = config(builder, SimpleNamespace())  # runs our config callback, CreateConfig's stand-in inside
            calls.append(f"config DLA_core={getattr(cfg, 'DLA_core', None)}")
            return b"engine"
        return build

    monkeypatch.setattr(pg_trt, "NetworkFromOnnxPath", Recorder("NetworkFromOnnxPath", pg_trt.NetworkFromOnnxPath, calls))
    monkeypatch.setattr(pg_trt, "CreateConfig", Recorder("CreateConfig", pg_trt.CreateConfig, calls,
                                                         lambda **kw: lambda builder, net: SimpleNamespace()))
    monkeypatch.setattr(pg_trt, "Profile", profile)
    monkeypatch.setattr(pg_trt, "EngineBytesFromNetwork",
                        Recorder("EngineBytesFromNetwork", pg_trt.EngineBytesFromNetwork, calls, engine_bytes))
    return calls


PLANS = {
    "fp32": (BuildPlan("fp32", False), {}),
    "fp16 strongly typed": (BuildPlan("fp16", True), {}),
    "fp16 flag": (BuildPlan("fp32", False, ("FP16",)), {}),
    "int8 Q/DQ + flag": (BuildPlan("int8", False, ("INT8",)), {}),
    "fp16 flag, mask pinned": (BuildPlan("fp32", False, ("FP16",), fp32_mask=True), {"mask_tensors": ("m",)}),
    "DLA, workspace, timing cache, profile": (
        BuildPlan("fp16", True), {"dla_core": 1, "workspace_mb": 512, "timing_cache": "t.cache",
                                  "profile_shape": (2, 3, 64, 96)}),
}


@pytest.mark.parametrize("name", list(PLANS))
def test_every_polygraphy_call_of_the_builder_binds(name, polygraphy_recorders, tmp_path) -> None:
    plan, options = PLANS[name]
    assert trt_build.build_engine_bytes(tmp_path / "m.onnx", plan, **options) == b"engine"
    calls = polygraphy_recorders
    assert calls[0] == "NetworkFromOnnxPath" and "CreateConfig" in calls and "EngineBytesFromNetwork" in calls
    assert ("Profile.add" in calls) == ("profile_shape" in options)
    assert calls[-1] == f"config DLA_core={options.get('dla_core')}"


def test_the_runner_polygraphy_calls_bind(monkeypatch, tmp_path) -> None:
    from enet.engine.runtime.backend import open_backend
    from enet.engine.runtime.sidecar import make_sidecar, write_engine_pair

    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "tensorrt", _stand_in_trt())
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("Stand-in GPU", "8.9"))
    monkeypatch.setattr(cuda, "set_device", lambda device: None)
    real_runner = pg_trt.TrtRunner

    class RunnerStandIn:
        def __init__(self, *args, **kwargs):
            check_binds(real_runner, args, kwargs, "TrtRunner")

        def activate(self):
            check_binds(real_runner.activate, (self,), {}, "TrtRunner.activate")
            calls.append("activate")

        def infer(self, *args, **kwargs):
            check_binds(real_runner.infer, (self, *args), kwargs, "TrtRunner.infer")
            (x,) = args[0].values()
            calls.append(f"infer {sorted(args[0])}")
            return {"aux": np.zeros(1), "logits": np.ones((1, 4, 8, 16), np.float32)}

        def deactivate(self):
            check_binds(real_runner.deactivate, (self,), {}, "TrtRunner.deactivate")
            calls.append("deactivate")

    monkeypatch.setattr(pg_trt, "EngineFromBytes", Recorder("EngineFromBytes", pg_trt.EngineFromBytes, calls))
    monkeypatch.setattr(pg_trt, "TrtRunner", RunnerStandIn)
    path = tmp_path / "e.engine"
    write_engine_pair(path, b"plan", make_sidecar(
        tensorrt_version="10.3.0", gpu_name="Stand-in GPU", compute_capability="8.9", precision="fp16",
        input_shape=(1, 3, 8, 16), input_name="images", outputs={"logits": "logits", "labels": None},
        onnx_path="e.onnx", onnx_sha256="0", rebuild_command="enet-build-engine e.onnx",
        meta={"classes": list("abcd"), "mean": [0] * 3, "std": [1] * 3, "input_size": [8, 16]}))
    with open_backend(path, runner="polygraphy") as b:
        y = b.infer(np.zeros((1, 3, 8, 16), np.float32))
    assert y.shape == (1, 4, 8, 16) and (y == 1).all()  # the output named in the sidecar, not the first one
    assert calls == ["EngineFromBytes", "activate", "infer ['images']", "deactivate"]


class _Tensor(SimpleNamespace):
    pass


class _Layer:
    """An ``ILayer`` stand-in: outputs with names and dtypes, ``precision`` and ``set_output_type`` recorded."""

    def __init__(self, name: str, outputs: list[tuple[str, str]]) -> None:
        self.name = name
        self._outs = [_Tensor(name=n, dtype=d) for n, d in outputs]
        self.precision = "unset"
        self.output_types: dict[int, str] = {}

    @property
    def num_outputs(self) -> int:
        return len(self._outs)

    def get_output(self, i: int) -> _Tensor:
        return self._outs[i]

    def set_output_type(self, i: int, dtype: str) -> None:
        self.output_types[i] = dtype


class _Network:
    def __init__(self, layers: list[_Layer]) -> None:
        self.layers = layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, i: int) -> _Layer:
        return self.layers[i]


def test_fp16_on_weak_typing_pins_the_mask_layers_of_the_real_export(tiny_onnx, monkeypatch) -> None:
    """The mask tensors of a real export, a network whose layers produce them (as TensorRT's ONNX parser
    names its outputs), and the edits: float32 precision on exactly those layers, float32 outputs except
    the Equal's bool, and the builder told to obey (Polygraphy's precision_constraints="obey")."""
    import onnx

    from enet.engine.runtime.onnx_info import unpool_mask_tensors

    trt = _stand_in_trt()
    tensors = unpool_mask_tensors(onnx.load(str(tiny_onnx)))
    assert len(tensors) == 12
    layers = [_Layer("conv", [("c", "float16")])]
    layers += [_Layer(f"L{i}", [(t, "bool" if t.endswith("Equal_output_0") else "float16")])
               for i, t in enumerate(tensors)]
    layers.append(_Layer("pad", [("p", "float16")]))
    net = _Network(layers)
    pinned = trt_build.pin_mask_layers(trt, net, tensors)
    assert pinned == [f"L{i}" for i in range(12)]
    assert layers[0].precision == layers[-1].precision == "unset"  # nothing else is touched
    for layer in layers[1:-1]:
        assert layer.precision == "float32"
        assert layer.output_types == ({} if layer.get_output(0).dtype == "bool" else {0: "float32"})
    with pytest.raises(trt_build.EnetError, match="no layer producing the unpooling mask tensor"):
        trt_build.pin_mask_layers(trt, _Network(layers[:3]), tensors)


def test_the_mask_edit_runs_inside_polygraphys_network_loader(polygraphy_recorders, monkeypatch, tmp_path) -> None:
    seen: dict = {}
    real_create = pg_trt.CreateConfig.real  # the fixture put a Recorder there

    def create(**kw):
        check_binds(real_create, (), kw, "CreateConfig")
        seen.update(kw)
        return lambda builder, net: SimpleNamespace()

    def engine_bytes(network, config=None, save_timing_cache=None):
        def build():
            seen["network"] = network() if callable(network) else network
            return b"engine"
        return build

    net = _Network([_Layer("rm", [("m", "float16")])])
    monkeypatch.setattr(pg_trt, "NetworkFromOnnxPath", lambda path, strongly_typed=None: lambda: ("b", net, "p"))
    monkeypatch.setattr(pg_trt, "CreateConfig", create)
    monkeypatch.setattr(pg_trt, "EngineBytesFromNetwork", engine_bytes)
    plan = BuildPlan("fp32", False, ("FP16",), fp32_mask=True)
    assert trt_build.build_engine_bytes(tmp_path / "m.onnx", plan, mask_tensors=("m",)) == b"engine"
    assert seen["precision_constraints"] == "obey" and seen["fp16"] is True
    assert seen["network"] == ("b", net, "p") and net.layers[0].precision == "float32"


def test_the_runner_sets_the_dla_core_of_the_sidecar(monkeypatch, tmp_path) -> None:
    from enet.engine.runtime.sidecar import make_sidecar, write_engine_pair
    from enet.engine.runtime.trt_backend import TrtBackend
    from enet.errors import EnetError

    monkeypatch.setitem(sys.modules, "tensorrt", _stand_in_trt())
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: ("Orin", "8.7"))
    monkeypatch.setattr(cuda, "set_device", lambda device: None)
    path = tmp_path / "e.engine"

    def engine(core):
        write_engine_pair(path, b"plan", make_sidecar(
            tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7", precision="fp16",
            input_shape=(1, 3, 8, 16), input_name="input", outputs={"logits": "logits", "labels": None},
            onnx_path="e.onnx", onnx_sha256="0", rebuild_command="enet-build-engine e.onnx --fp16 --dla-core 1",
            meta={"classes": list("abcd"), "mean": [0] * 3, "std": [1] * 3, "input_size": [8, 16]},
            extra={"dla_core": core}))
        return TrtBackend(path)

    RUNTIMES.clear()
    assert engine(1)._runtime(sys.modules["tensorrt"]).DLA_core == 1
    assert engine(None)._runtime(sys.modules["tensorrt"]).DLA_core == -1  # a GPU engine: the runtime's default
    with pytest.raises(EnetError, match="built for DLA core 3, but this device has 2 DLA cores"):
        engine(3)._runtime(sys.modules["tensorrt"])


# ------------------------------------------------------------------ cuda-python

runtime = pytest.importorskip("cuda.bindings.runtime")


def _cuda_uses() -> tuple[list[tuple[str, int]], set[tuple[str, ...]]]:
    """(function, positional args) of every cudart call in engine/runtime/cuda.py, and every attribute chain read off it."""
    tree = ast.parse((ROOT / "engine" / "runtime" / "cuda.py").read_text())

    def chain(node):
        names = []
        while isinstance(node, ast.Attribute):
            names.append(node.attr)
            node = node.value
        root = node.id if isinstance(node, ast.Name) else (
            node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None)
        return root, tuple(reversed(names))

    calls, attrs = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            root, names = chain(node)
            names = names[1:] if names and names[0] == "_rt" else names
            if root in ("rt", "self", "cudart") and names and names[0].startswith("cuda"):
                attrs.add(names)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            root, names = chain(node.func)
            names = names[1:] if names and names[0] == "_rt" else names
            if root in ("rt", "self", "cudart") and len(names) == 1 and names[0].startswith("cuda"):
                calls.append((names[0], len(node.args)))
    return calls, attrs


def test_every_cuda_python_call_exists_with_these_arguments() -> None:
    calls, attrs = _cuda_uses()
    names = {c for c, _ in calls}
    assert {"cudaHostAlloc", "cudaHostGetDevicePointer", "cudaFreeHost", "cudaStreamBeginCapture",
            "cudaGraphInstantiateWithFlags", "cudaEventElapsedTime", "cudaSetDevice"} <= names
    for fn, nargs in calls:
        check_binds(getattr(runtime, fn), (None,) * nargs, {}, f"cuda.bindings.runtime.{fn}")
    for chain_ in attrs:
        obj = runtime
        for a in chain_:
            assert hasattr(obj, a), f"cuda.bindings.runtime has no {'.'.join(chain_)}"
            obj = getattr(obj, a)
    assert {"integrated", "canMapHostMemory", "name", "major", "minor"} <= set(dir(runtime.cudaDeviceProp))


def test_the_glue_tests_stand_in_matches_cuda_python() -> None:
    from tests.engine.test_engine_trt_glue import FakeCudart

    for name, member in vars(FakeCudart).items():
        if name.startswith("cuda"):
            real = getattr(runtime, name, None)
            assert real is not None, f"the stand-in has {name}, cuda-python does not"
            if callable(member) and not inspect.isclass(member):
                fake_params = list(inspect.signature(member).parameters)[1:]
                assert len(fake_params) == len(inspect.signature(real).parameters), name


@pytest.mark.skipif(cuda.gpu_available(), reason="checks the one-line failure on a machine without a GPU")
def test_real_cuda_python_without_a_gpu_fails_in_one_line() -> None:
    from enet.errors import EnetError

    with pytest.raises(EnetError) as e:
        cuda.gpu_info(0)
    assert str(e.value).startswith("CUDA call failed: ") and "\n" not in str(e.value)
    assert cuda.gpu_available() is False
