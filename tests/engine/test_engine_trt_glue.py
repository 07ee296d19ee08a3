"""TrtBackend's own glue (buffers, copies, tensor API calls) against stand-ins for tensorrt and cuda-python.

The stand-ins implement only the calls the lean runner makes, with "device"
memory in host numpy arrays and ``ctypes.memmove`` for copies, so shapes,
dtypes, byte counts, page-locked/mapped buffers, tensor names from the
sidecar, per-thread ``cudaSetDevice`` and releasing everything are checked
here. That the calls exist with these arguments in the installed cuda-python
is checked in test_engine_api_drift.py; TensorRT's real behaviour is covered
by the ``gpu``/``trt`` tests only.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from enet.engine.runtime import cuda
from enet.engine.runtime.backend import open_backend
from enet.engine.runtime.sidecar import make_sidecar, write_engine_pair
from enet.errors import EnetError, ShapeError

SHAPE = (1, 3, 8, 16)
CLASSES = 4


class FakeCudart:
    cudaHostAllocDefault = 0
    cudaHostAllocMapped = 2

    class cudaMemcpyKind:  # noqa: N801 - mirrors cuda-python
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStreamCaptureMode:  # noqa: N801
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self, integrated: bool = False) -> None:
        self.integrated = integrated
        self.mem: dict[int, np.ndarray] = {}
        self.host: dict[int, int] = {}  # pinned pointer -> flags
        self.freed: list[int] = []
        self.freed_host: list[int] = []
        self.copies = 0
        self.devices_set: list[tuple[int, int]] = []  # (thread id, device)
        self.streams_destroyed = 0
        self.capturing = False
        self.graph_calls: list[str] = []

    def _alloc(self, n):
        buf = np.zeros(n, np.uint8)
        self.mem[buf.ctypes.data] = buf
        return buf.ctypes.data

    def cudaGetDeviceProperties(self, dev):  # noqa: N802
        return 0, SimpleNamespace(name=b"Fake GPU\0\0", major=8, minor=7, integrated=int(self.integrated),
                                  canMapHostMemory=1)

    def cudaSetDevice(self, dev):  # noqa: N802
        self.devices_set.append((threading.get_ident(), dev))
        return (0,)

    def cudaMalloc(self, n):  # noqa: N802
        return 0, self._alloc(n)

    def cudaFree(self, ptr):  # noqa: N802
        self.freed.append(ptr)
        return (0,)

    def cudaHostAlloc(self, n, flags):  # noqa: N802
        ptr = self._alloc(n)
        self.host[ptr] = flags
        return 0, ptr

    def cudaHostGetDevicePointer(self, ptr, flags):  # noqa: N802
        assert self.host[ptr] == self.cudaHostAllocMapped
        return 0, ptr  # unified addressing: the device sees the same address

    def cudaFreeHost(self, ptr):  # noqa: N802
        self.freed_host.append(ptr)
        return (0,)

    def cudaStreamCreate(self):  # noqa: N802
        return 0, 1234

    def cudaStreamDestroy(self, s):  # noqa: N802
        self.streams_destroyed += 1
        return (0,)

    def cudaStreamSynchronize(self, s):  # noqa: N802
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):  # noqa: N802
        assert src in self.mem and dst in self.mem, "copies go between buffers allocated here"
        self.copies += 1
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamBeginCapture(self, stream, mode):  # noqa: N802
        self.capturing = True
        self.graph_calls.append("begin")
        return (0,)

    def cudaStreamEndCapture(self, stream):  # noqa: N802
        self.capturing = False
        self.graph_calls.append("end")
        return 0, "graph"

    def cudaGraphInstantiateWithFlags(self, graph, flags):  # noqa: N802
        self.graph_calls.append("instantiate")
        return 0, "exec"

    def cudaGraphLaunch(self, exec_, stream):  # noqa: N802
        self.graph_calls.append("launch")
        self.on_launch()
        return (0,)

    def cudaGraphExecDestroy(self, e):  # noqa: N802
        self.graph_calls.append("exec-destroy")
        return (0,)

    def cudaGraphDestroy(self, g):  # noqa: N802
        self.graph_calls.append("graph-destroy")
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
            if tuple(shape)[2:] != (8, 16):
                return False  # outside the optimization profile
            self.input_shape = tuple(shape)
            return True

        def get_tensor_shape(self, n):
            assert self.input_shape is not None, "output shape asked before the input shape was set"
            n_, _, h, w = self.input_shape
            return {"input": self.input_shape, "logits": (n_, CLASSES, h, w), "labels": (n_, h, w)}[n]

        def set_tensor_address(self, n, ptr):
            self.addr[n] = ptr
            return True

        def _view(self, n):
            shape = self.get_tensor_shape(n)
            dtype = np.dtype(Engine.dtypes[n])
            return np.frombuffer(rt.mem[self.addr[n]], dtype=dtype, count=int(np.prod(shape))).reshape(shape)

        def execute_async_v3(self, stream):
            assert stream == 1234
            if rt.capturing:  # queued into the graph, replayed by cudaGraphLaunch
                rt.on_launch = lambda: self.execute_async_v3(stream) and None
                return True
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


META = {"classes": list("abcd"), "mean": [0, 0, 0], "std": [1, 1, 1], "input_size": [8, 16],
        "palette": [[0, 0, 0]] * 4}


def _write_engine(path: Path, shape=SHAPE, outputs=None, data: bytes = b"plan") -> None:
    write_engine_pair(path, data, make_sidecar(
        tensorrt_version="10.3.0", gpu_name="Fake GPU", compute_capability="8.7", precision="fp16",
        input_shape=shape, input_name="input", outputs=outputs or {"logits": "logits", "labels": "labels"},
        onnx_path="x.onnx", onnx_sha256="0", meta=META, rebuild_command="enet-build-engine x.onnx"))


@pytest.fixture(params=[False, True], ids=["discrete", "integrated"])
def engine(request, tmp_path: Path, monkeypatch) -> tuple[Path, FakeCudart]:
    rt = FakeCudart(integrated=request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt(rt))
    monkeypatch.setattr(cuda, "cudart", lambda: rt)
    path = tmp_path / "fake.engine"
    _write_engine(path)
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
    assert set(rt.host) and set(rt.freed_host) == set(rt.host)  # page-locked host buffers, all freed
    assert sorted(rt.freed + rt.freed_host) == sorted(rt.mem)  # every allocation freed on exit
    assert rt.streams_destroyed == 1
    if rt.integrated:  # Jetson: mapped zero-copy buffers, no copies at all
        assert b.zero_copy and rt.copies == 0 and set(rt.host.values()) == {rt.cudaHostAllocMapped}
    else:
        assert not b.zero_copy and rt.copies == 4 and set(rt.host.values()) == {rt.cudaHostAllocDefault}
    b.__exit__(None, None, None)  # idempotent
    with pytest.raises(RuntimeError, match="outside"):
        b.infer(x)


def test_undeserialisable_engine_names_the_rebuild(engine) -> None:
    path, _ = engine
    _write_engine(path, data=b"garbage")
    with pytest.raises(EnetError, match="cannot deserialize .*enet-build-engine x.onnx"):
        with open_backend(path):
            pass


def test_tensors_are_picked_by_the_names_in_the_sidecar(engine, tmp_path) -> None:
    path, rt = engine
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    _write_engine(path, outputs={"logits": "logits", "labels": None})  # labels output ignored: argmax of logits
    with open_backend(path) as b:
        lab = b.infer_labels(x)
    np.testing.assert_array_equal(lab, np.stack([x[:, c % 3] * (c + 1) for c in range(CLASSES)], axis=1).argmax(1))
    _write_engine(path, outputs={"logits": "scores", "labels": None})
    with pytest.raises(EnetError, match="sidecar names input 'input' and outputs \\['scores'\\]"):
        with open_backend(path):
            pass


def test_input_shape_outside_the_profile_is_refused(engine) -> None:
    path, _ = engine
    _write_engine(path, shape=(1, 3, 16, 16))
    with pytest.raises(EnetError, match="does not accept input shape .*outside its optimization profile"):
        with open_backend(path):
            pass


def test_device_is_set_in_each_inference_thread(engine) -> None:
    path, rt = engine
    x = np.zeros(SHAPE, np.float32)
    with open_backend(path) as b:
        b.infer(x)
        t = threading.Thread(target=b.infer, args=(x,))
        t.start()
        t.join()
        b.infer(x)
    threads = [tid for tid, dev in rt.devices_set if dev == 0]
    assert threads[0] == threading.get_ident() and t.ident in threads and len(threads) == 2  # once per thread


def test_device_stages_and_cuda_graph(engine) -> None:
    path, rt = engine
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    expect = np.stack([x[:, c % 3] * (c + 1) for c in range(CLASSES)], axis=1)
    with open_backend(path) as b:
        for graph in (False, True):
            st = b.device_stages(cuda_graph=graph)
            assert st.events == "cudart" and st.stream is not None and st.cuda_graph is graph
            st.load(x)
            st.h2d()
            st.compute()
            st.d2h()
            st.synchronize()
            np.testing.assert_array_equal(st.output(), expect)
    assert rt.graph_calls[:4] == ["begin", "end", "instantiate", "launch"]
    assert rt.graph_calls[-2:] == ["exec-destroy", "graph-destroy"]  # released on exit
