"""Native TensorRT backend: a lean runner for ``.engine`` files.

Hand-written on purpose (Polygraphy's ``TrtRunner`` does the same job with
more per-call bookkeeping, which the camera loop pays every frame): one
execution context, device buffers allocated once in ``__enter__`` with
:mod:`enet.engine.cuda`, the name-based tensor API (``get_tensor_name``,
``set_tensor_address``, ``execute_async_v3``; TensorRT 8.5 .. 11) on one
stream.

The model metadata and the build facts come from the engine's JSON sidecar
(:mod:`enet.engine.sidecar`); an engine built for another TensorRT release or
GPU is refused before deserialisation, with the rebuild command.

Never run on a GPU in this project's CI: see docs/engines.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from enet._lazy import require
from enet.engine import cuda
from enet.engine.sidecar import check_sidecar, read_sidecar
from enet.errors import EnetError, ShapeError

log = logging.getLogger(__name__)


class TrtBackend:
    """A serialized TensorRT engine with its sidecar.

    Args:
        path: ``.engine`` file; ``<path>.json`` must sit beside it.
        device: CUDA device ordinal.
        check_build: refuse an engine whose sidecar names another TensorRT or GPU.
        runner: ``"lean"`` (this module's runner, default) or ``"polygraphy"``
            (Polygraphy's ``TrtRunner``, NVIDIA-maintained), so ``enet-bench``
            can measure what the hand-written runner saves per frame.
    """

    def __init__(self, path: str | os.PathLike[str], *, device: int = 0, check_build: bool = True,
                 input_shape: tuple[int, int, int, int] | None = None, runner: str = "lean", **_: Any) -> None:
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
        self._device = int(device)
        self._check_build = check_build
        self._engine: Any = None
        self._context: Any = None
        self._stream: cuda.Stream | None = None
        self._buffers: dict[str, cuda.DeviceBuffer] = {}
        self._input = ""
        self._logits: str | None = None
        self._labels: str | None = None

    def __enter__(self) -> TrtBackend:
        trt = require("tensorrt")
        if self._check_build:
            name, cc = cuda.gpu_info(self._device)
            check_sidecar(self.sidecar, tensorrt_version=trt.__version__, gpu_name=name,
                          compute_capability=cc, engine_path=self.path)
        cuda.set_device(self._device)
        if self._runner_kind == "polygraphy":
            require("polygraphy")
            from polygraphy.backend.trt import EngineFromBytes, TrtRunner

            self._pg = TrtRunner(EngineFromBytes(self.path.read_bytes()))
            self._pg.activate()
            return self
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise EnetError(f"TensorRT cannot deserialize {self.path}; rebuild it: "
                            f"{self.sidecar.get('rebuild_command', 'enet-build-engine')}")
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()
        try:
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            if len(inputs) != 1:
                raise EnetError(f"{self.path.name} has {len(inputs)} inputs; an ENet engine has one")
            self._input = inputs[0]
            if any(d < 0 for d in self._engine.get_tensor_shape(self._input)):  # dynamic batch: the sidecar's
                self._context.set_input_shape(self._input, self.input_shape)
            for tname in names:  # output shapes are known once the input shape is set
                shape = tuple(self._context.get_tensor_shape(tname))
                dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(tname)))
                buf = cuda.DeviceBuffer(shape, dtype)
                self._buffers[tname] = buf
                self._context.set_tensor_address(tname, buf.ptr)
                if tname != self._input:
                    if np.issubdtype(dtype, np.integer):
                        self._labels = self._labels or tname
                    else:
                        self._logits = self._logits or tname
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pg is not None:
            self._pg.deactivate()
            self._pg = None
        for buf in self._buffers.values():
            buf.free()
        if self._stream is not None:
            self._stream.destroy()
        self._buffers = {}
        self._stream = None
        self._context = None
        self._engine = None

    def _run_polygraphy(self, x: np.ndarray, labels: bool) -> np.ndarray | None:
        outs = self._pg.infer({self.sidecar.get("input_name", "input"): np.ascontiguousarray(x, np.float32)})
        for arr in outs.values():
            if np.issubdtype(np.asarray(arr).dtype, np.integer) == labels:
                return np.asarray(arr)
        return None

    def _run(self, x: np.ndarray, output: str) -> np.ndarray:
        self._check_input(x)
        assert self._stream is not None
        inp = self._buffers[self._input]
        np.copyto(inp.host, x, casting="same_kind")
        inp.to_device(self._stream)
        if not self._context.execute_async_v3(int(self._stream)):
            raise EnetError(f"TensorRT failed to run {self.path.name}")
        out = self._buffers[output]
        out.to_host(self._stream)
        self._stream.synchronize()
        return out.host.copy()

    def _check_input(self, x: np.ndarray) -> None:
        if self._pg is None and self._context is None:
            raise RuntimeError("TrtBackend used outside 'with'")
        if x.shape != self.input_shape:
            raise ShapeError(f"input {x.shape} does not match the engine's input {self.input_shape}")

    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> float32 logits ``(N, C, H, W)`` on the host."""
        if self._pg is not None:
            self._check_input(x)
            y = self._run_polygraphy(x, labels=False)
            if y is None:
                raise EnetError(f"{self.path.name} outputs class labels only; use infer_labels")
            return y.astype(np.float32, copy=False)
        if self._logits is None:
            raise EnetError(f"{self.path.name} outputs class labels only; use infer_labels")
        return self._run(x, self._logits).astype(np.float32, copy=False)

    def infer_labels(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> int64 labels ``(N, H, W)``."""
        if self._pg is not None:
            self._check_input(x)
            y = self._run_polygraphy(x, labels=True)
            if y is not None:
                return (y[:, 0] if y.ndim == 4 else y).astype(np.int64, copy=False)
            return self.infer(x).argmax(1)
        if self._labels is not None:
            y = self._run(x, self._labels)
            return (y[:, 0] if y.ndim == 4 else y).astype(np.int64, copy=False)
        return self.infer(x).argmax(1)
