"""TrtBackend's own glue (buffers, copies, tensor API calls) against stand-ins for tensorrt and cuda-python.

The stand-ins implement only the calls the lean runner makes, with "device"
memory in host numpy arrays and ``ctypes.memmove`` for copies, so shapes,
dtypes, byte counts and tensor-name handling are checked here; TensorRT's real
behaviour is covered by the ``gpu``/``trt`` tests.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from enet.engine import cuda
from enet.engine.backend import open_backend
from enet.engine.sidecar import make_sidecar, write_sidecar
from enet.errors import ShapeError

SHAPE = (1, 3, 8, 16)
CLASSES = 4


class FakeCudart:
    class cudaMemcpyKind:  # noqa: N801 - mirrors cuda-python
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def __init__(self) -> None:
        self.mem: dict[int, np.ndarray] = {}
        self.freed: list[int] = []

    def cudaGetDeviceProperties(self, dev):  # noqa: N802
        return 0, SimpleNamespace(name=b"Fake GPU\0\0", major=8, minor=7)

    def cudaSetDevice(self, dev):  # noqa: N802
        return (0,)

    def cudaMalloc(self, n):  # noqa: N802
        buf = np.zeros(n, np.uint8)
        self.mem[buf.ctypes.data] = buf
        return 0, buf.ctypes.data

    def cudaFree(self, ptr):  # noqa: N802
        self.freed.append(ptr)
        return (0,)

    def cudaStreamCreate(self):  # noqa: N802
        return 0, 1234

    def cudaStreamDestroy(self, s):  # noqa: N802
        return (0,)

    def cudaStreamSynchronize(self, s):  # noqa: N802
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):  # noqa: N802
        ctypes.memmove(dst, src, n)
        return (0,)


def fake_trt(rt: FakeCudart):
    class Engine:
        num_io_tensors = 3
        names = ["input", "logits", "labels"]
        dtypes = {"input": np.float32, "logits": np.float32, "labels": np.int32}

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_mode(self, n):
            return "IN" if n == "input" else "OUT"

        def get_tensor_shape(self, n):
            return (-1, 3, 8, 16) if n == "input" else None

        def get_tensor_dtype(self, n):
            return self.dtypes[n]

        def create_execution_context(self):
            return Context()

    class Context:
        def __init__(self):
            self.addr: dict[str, int] = {}
            self.input_shape = None

        def set_input_shape(self, n, shape):
            self.input_shape = tuple(shape)

        def get_tensor_shape(self, n):
            assert self.input_shape is not None, "output shape asked before the input shape was set"
            n_, _, h, w = self.input_shape
            return {"input": self.input_shape, "logits": (n_, CLASSES, h, w), "labels": (n_, h, w)}[n]

        def set_tensor_address(self, n, ptr):
            self.addr[n] = ptr

        def _view(self, n):
            shape = self.get_tensor_shape(n)
            dtype = np.dtype(Engine.dtypes[n])
            return np.frombuffer(rt.mem[self.addr[n]], dtype=dtype, count=int(np.prod(shape))).reshape(shape)

        def execute_async_v3(self, stream):
            assert stream == 1234
            x = self._view("input")
            logits = np.stack([x[:, c % 3] * (c + 1) for c in range(CLASSES)], axis=1)
            self._view("logits")[...] = logits
            self._view("labels")[...] = logits.argmax(1)
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine() if data == b"plan" else None

    class Logger:
        WARNING = 1

        def __init__(self, level):
            pass

    return SimpleNamespace(__version__="10.3.0", Runtime=Runtime, Logger=Logger,
                           TensorIOMode=SimpleNamespace(INPUT="IN"), nptype=lambda t: t)


@pytest.fixture()
def engine(tmp_path: Path, monkeypatch) -> tuple[Path, FakeCudart]:
    rt = FakeCudart()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt(rt))
    monkeypatch.setattr(cuda, "cudart", lambda: rt)
    path = tmp_path / "fake.engine"
    path.write_bytes(b"plan")
    meta = {"classes": list("abcd"), "mean": [0, 0, 0], "std": [1, 1, 1], "input_size": [8, 16],
            "palette": [[0, 0, 0]] * 4}
    write_sidecar(path, make_sidecar(tensorrt_version="10.3.0", gpu_name="Fake GPU", compute_capability="8.7",
                                     precision="fp16", input_shape=SHAPE, input_name="input", onnx_path="x.onnx",
                                     onnx_sha256="0", meta=meta, rebuild_command="enet-build-engine x.onnx"))
    return path, rt


def test_lean_runner_glue(engine) -> None:
    path, rt = engine
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    b = open_backend(path)
    with b:
        y = b.infer(x)
        lab = b.infer_labels(x)
        with pytest.raises(ShapeError):
            b.infer(np.zeros((1, 3, 8, 8), np.float32))
    expect = np.stack([x[:, c % 3] * (c + 1) for c in range(CLASSES)], axis=1)
    np.testing.assert_array_equal(y, expect)
    np.testing.assert_array_equal(lab, expect.argmax(1))
    assert lab.dtype == np.int64 and lab.shape == (1, 8, 16)
    assert sorted(rt.freed) == sorted(rt.mem)  # every buffer freed on exit
    b.__exit__(None, None, None)  # idempotent
    with pytest.raises(RuntimeError, match="outside"):
        b.infer(x)


def test_undeserialisable_engine_names_the_rebuild(engine) -> None:
    path, _ = engine
    path.write_bytes(b"garbage")
    from enet.errors import EnetError

    with pytest.raises(EnetError, match="cannot deserialize .*enet-build-engine x.onnx"):
        with open_backend(path):
            pass
