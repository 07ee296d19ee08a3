"""Native TensorRT backend: a lean runner for ``.engine`` files.

Hand-written on purpose (Polygraphy's ``TrtRunner`` does the same job with
more per-call bookkeeping, which the camera loop pays every frame): one
execution context, page-locked host buffers and device buffers allocated
once in ``__enter__`` with :mod:`enet.engine.runtime.cuda` (mapped zero-copy buffers
on an integrated GPU such as Jetson's), the name-based tensor API
(``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``; TensorRT 8.5 .. 11) on one stream.

The model metadata, the build facts and the tensor names come from the
engine's JSON sidecar (:mod:`enet.engine.runtime.sidecar`): the input and the
logits/labels outputs are the tensors the sidecar names (the ONNX output
names), never guessed by dtype or position. An engine built for another
TensorRT release or GPU, or one that does not match its sidecar, is refused
before deserialisation, with the rebuild command.

:meth:`TrtBackend.device_stages` splits one inference into the steps
``trtexec`` times (host-to-device copy, enqueue, device-to-host copy) for
``enet-bench``; timing itself lives in :mod:`enet.bench`.

Never run on a GPU in this project's CI: see docs/engines.md.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from enet._lazy import require
from enet.engine.runtime import cuda
from enet.engine.runtime.backend import BackendBase
from enet.engine.runtime.sidecar import check_engine_bytes, check_sidecar, read_sidecar
from enet.errors import EnetError, ShapeError

log = logging.getLogger(__name__)


class TrtBackend(BackendBase):
    """A serialized TensorRT engine with its sidecar.

    Args:
        path: ``.engine`` file; ``<path>.json`` must sit beside it.
        device: CUDA device ordinal; made current in every thread that runs inference.
        check_build: refuse an engine whose sidecar names another TensorRT or GPU.
        zero_copy: mapped host memory instead of copies; default: on an
            integrated GPU (Jetson), off elsewhere.
        runner: ``"lean"`` (this module's runner, default) or ``"polygraphy"``
            (Polygraphy's ``TrtRunner``, NVIDIA-maintained), so ``enet-bench``
            can measure what the hand-written runner saves per frame.
    """

    def __init__(self, path: str | os.PathLike[str], *, device: int = 0, check_build: bool = True,
                 input_shape: tuple[int, int, int, int] | None = None, runner: str = "lean",
                 zero_copy: bool | None = None, **_: Any) -> None:
        if runner not in ("lean", "polygraphy"):
            raise EnetError(f"unknown TensorRT runner {runner!r}; choose lean or polygraphy")
        self._runner_kind = runner
        self._pg: Any = None
        self.path = Path(path)
        self.sidecar = read_sidecar(self.path)
        self.meta: dict[str, Any] = dict(self.sidecar["meta"])
        self.input_shape = tuple(int(v) for v in self.sidecar["input_shape"])
        if input_shape is not None and tuple(input_shape) != self.input_shape:
            raise ShapeError(
                f"{self.path.name} was built for input {self.input_shape}, not {tuple(input_shape)}; "
                "rebuild from an ONNX exported at that size"
            )
        self.precision = str(self.sidecar.get("precision", "fp32"))
        self.name = f"trt-{self.precision}" + ("-polygraphy" if runner == "polygraphy" else "")
        self._input = str(self.sidecar["input_name"])
        outputs = self.sidecar["outputs"]
        self._logits: str | None = outputs.get("logits")
        self._labels: str | None = outputs.get("labels")
        self._device = int(device)
        self._check_build = check_build
        self._zero_copy_arg = zero_copy
        self.zero_copy = False
        self._engine: Any = None
        self._context: Any = None
        self._stream: cuda.Stream | None = None
        self._buffers: dict[str, cuda.HostDeviceBuffer] = {}
        self._device_threads: set[int] = set()
        self._graph: cuda.CudaGraph | None = None

    # -- lifetime -------------------------------------------------------------
    def __enter__(self) -> TrtBackend:
        trt = require("tensorrt")
        if self._check_build:
            name, cc = cuda.gpu_info(self._device)
            check_sidecar(self.sidecar, tensorrt_version=trt.__version__, gpu_name=name,
                          compute_capability=cc, engine_path=self.path)
        data = self.path.read_bytes()
        check_engine_bytes(self.path, data, self.sidecar)
        self._use_device()
        if self._runner_kind == "polygraphy":
            require("polygraphy")
            from polygraphy.backend.trt import EngineFromBytes, TrtRunner

            self._pg = TrtRunner(EngineFromBytes(data, runtime=self._runtime(trt)))
            self._pg.activate()
            return self
        runtime = self._runtime(trt)
        self._engine = runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise EnetError(f"TensorRT cannot deserialize {self.path}; rebuild it: "
                            f"{self.sidecar.get('rebuild_command', 'enet-build-engine')}")
        try:
            self._allocate(trt)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _runtime(self, trt: Any) -> Any:
        """A ``trt.Runtime`` on the DLA core the engine was built for (sidecar ``dla_core``), if any.

        An engine built for a DLA core is deserialized on that core: the core
        is part of the runtime, not of the engine (``IRuntime.DLA_core``).
        """
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        core = self.sidecar.get("dla_core")
        if core is not None:
            available = int(getattr(runtime, "num_DLA_cores", 0))
            if int(core) >= available:
                raise EnetError(f"{self.path.name} was built for DLA core {core}, but this device has "
                                f"{available} DLA cores; rebuild it: "
                                f"{self.sidecar.get('rebuild_command', 'enet-build-engine')}")
            runtime.DLA_core = int(core)
        return runtime

    def _allocate(self, trt: Any) -> None:
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EnetError(f"TensorRT could not create an execution context for {self.path.name} (GPU memory?)")
        self._stream = cuda.Stream()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        wanted = [self._input] + [n for n in (self._logits, self._labels) if n]
        missing = [n for n in wanted if n not in names]
        if inputs != [self._input] or missing:
            raise EnetError(
                f"{self.path.name} has inputs {inputs} and tensors {names}, but its sidecar names input "
                f"{self._input!r} and outputs {[n for n in (self._logits, self._labels) if n]}; rebuild it: "
                f"{self.sidecar.get('rebuild_command', 'enet-build-engine')}"
            )
        if any(d < 0 for d in self._engine.get_tensor_shape(self._input)):  # dynamic dims: the profile's shape
            if not self._context.set_input_shape(self._input, self.input_shape):
                raise EnetError(f"{self.path.name} does not accept input shape {self.input_shape} "
                                "(outside its optimization profile); rebuild it for that shape")
        self.zero_copy = cuda.is_integrated(self._device) if self._zero_copy_arg is None else self._zero_copy_arg
        for tname in names:  # output shapes are known once the input shape is set
            shape = tuple(self._context.get_tensor_shape(tname))
            if any(d < 0 for d in shape):
                raise EnetError(f"{self.path.name}: tensor {tname} still has a dynamic shape {shape}")
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(tname)))
            buf = cuda.HostDeviceBuffer(shape, dtype, mapped=self.zero_copy)
            self._buffers[tname] = buf
            if not self._context.set_tensor_address(tname, buf.ptr):
                raise EnetError(f"TensorRT refused the address of tensor {tname} in {self.path.name}")

    def __exit__(self, *exc: object) -> None:
        if self._pg is not None:
            self._pg.deactivate()
            self._pg = None
        if self._graph is not None:
            self._graph.destroy()
            self._graph = None
        for buf in self._buffers.values():
            buf.free()
        if self._stream is not None:
            self._stream.destroy()
        self._buffers = {}
        self._stream = None
        self._context = None
        self._engine = None

    # -- steps ----------------------------------------------------------------
    def _use_device(self) -> None:
        """``cudaSetDevice`` in the calling thread, once per thread (the camera pipeline infers in a worker)."""
        tid = threading.get_ident()
        if tid not in self._device_threads:
            cuda.set_device(self._device)
            self._device_threads.add(tid)

    def _check_input(self, x: np.ndarray) -> None:
        if self._pg is None and self._context is None:
            raise RuntimeError("TrtBackend used outside 'with'")
        if x.shape != self.input_shape:
            raise ShapeError(f"input {x.shape} does not match the engine's input {self.input_shape}")

    def _load(self, x: np.ndarray) -> None:
        self._check_input(x)
        self._use_device()
        np.copyto(self._buffers[self._input].host, x, casting="same_kind")

    def _h2d(self) -> None:
        assert self._stream is not None
        self._buffers[self._input].to_device(self._stream)

    def _execute(self) -> None:
        """``execute_async_v3`` on the stream; its ``False`` (a failed enqueue) raises, also while capturing."""
        assert self._stream is not None
        if not self._context.execute_async_v3(int(self._stream)):
            raise EnetError(f"TensorRT failed to run {self.path.name} (execute_async_v3 returned False)")

    def _enqueue(self) -> None:
        assert self._stream is not None
        if self._graph is not None:
            self._graph.launch(self._stream)
        else:
            self._execute()

    def _d2h(self, output: str) -> None:
        assert self._stream is not None
        self._buffers[output].to_host(self._stream)

    def _run(self, x: np.ndarray, output: str) -> np.ndarray:
        self._load(x)
        self._h2d()
        self._enqueue()
        self._d2h(output)
        assert self._stream is not None
        self._stream.synchronize()
        return self._buffers[output].host.copy()

    def _run_polygraphy(self, x: np.ndarray, output: str) -> np.ndarray:
        self._check_input(x)
        self._use_device()
        outs = self._pg.infer({self._input: np.ascontiguousarray(x, np.float32)})
        return np.asarray(outs[output])

    # -- public ---------------------------------------------------------------
    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> float32 logits ``(N, C, H, W)`` on the host."""
        if self._logits is None:
            raise EnetError(f"{self.path.name} outputs class labels only; use infer_labels")
        y = self._run_polygraphy(x, self._logits) if self._pg is not None else self._run(x, self._logits)
        return y.astype(np.float32, copy=False)

    @property
    def labels_in_graph(self) -> bool:
        """The engine computes the labels itself (built from an ``enet-export --labels`` ONNX)."""
        return self._labels is not None

    @property
    def device_timing(self) -> bool:
        """``device_stages()`` times the lean runner's steps (not Polygraphy's)."""
        return self._runner_kind == "lean"

    cuda_graph = device_timing

    def infer_labels(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> int64 labels ``(N, H, W)`` (the in-graph ArgMax when the engine has one)."""
        if self._labels is None:
            return self.infer(x).argmax(1)
        y = self._run_polygraphy(x, self._labels) if self._pg is not None else self._run(x, self._labels)
        return (y[:, 0] if y.ndim == 4 else y).astype(np.int64, copy=False)

    def device_stages(self, *, cuda_graph: bool = False) -> TrtStages:
        """The steps of one inference for ``enet-bench``'s trtexec-style timing (lean runner only).

        Args:
            cuda_graph: capture the enqueue into a CUDA graph and replay it.
        """
        if self._context is None:
            raise EnetError("device timing needs the lean runner inside 'with'")
        if self._logits is None:
            raise EnetError(f"{self.path.name} outputs class labels only; the benchmark times logits")
        if cuda_graph and self._graph is None:
            assert self._stream is not None
            self._use_device()
            self._graph = cuda.CudaGraph(self._stream, self._execute)
        return TrtStages(self, cuda_graph)


class TrtStages:
    """One :class:`TrtBackend` inference as trtexec's steps, queued on the backend's stream.

    ``load`` is host work (the frame into the page-locked input buffer);
    ``h2d``, ``compute`` (the enqueue, or the CUDA graph launch) and ``d2h``
    only queue work on ``stream``; read ``output()`` after ``synchronize()``.
    ``events = "cudart"``: time it with :class:`enet.engine.runtime.cuda.Event` on ``stream``.
    """

    events = "cudart"

    def __init__(self, backend: TrtBackend, cuda_graph: bool) -> None:
        self._b = backend
        self.stream = backend._stream
        self.cuda_graph = cuda_graph
        self.zero_copy = backend.zero_copy

    def load(self, x: np.ndarray) -> None:
        self._b._load(x)

    def h2d(self) -> None:
        self._b._h2d()

    def compute(self) -> None:
        self._b._enqueue()

    def d2h(self) -> None:
        assert self._b._logits is not None
        self._b._d2h(self._b._logits)

    def synchronize(self) -> None:
        assert self.stream is not None
        self.stream.synchronize()

    def output(self) -> np.ndarray:
        assert self._b._logits is not None
        return self._b._buffers[self._b._logits].host
