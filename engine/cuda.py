"""CUDA through cuda-python, and the one GPU check of the toolkit.

* :func:`gpu_available`: is an NVIDIA GPU visible here? Torch-free and
  never raises; the benchmark, the camera pipeline and the test suite all
  ask this function.
* :func:`cudart`, :func:`cuda_check`, :func:`gpu_info`: cuda-python's
  runtime API, its ``(err, *values)`` results, the GPU's name and compute
  capability (engine sidecars record both).
* :class:`DeviceBuffer`, :class:`Stream` and the event functions: the
  pieces the TensorRT runner and the benchmark's CUDA-event timer use.

Nothing here imports cuda-python at module level (see :mod:`enet._lazy`).
Never run on a GPU in this project's CI: see docs/engines.md.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from enet._lazy import require
from enet.errors import EnetError

#: Device nodes of the NVIDIA driver: desktop/server GPUs (``nvidia0``) and
#: Jetson's integrated GPU (``nvhost-*`` on L4T <= 35, ``nvgpu`` on L4T 36).
GPU_DEVICE_NODES = ("/dev/nvidia0", "/dev/nvhost-ctrl", "/dev/nvhost-gpu", "/dev/nvgpu/igpu0/ctrl")


def gpu_available() -> bool:
    """True when an NVIDIA GPU is visible to this process (never raises, imports no torch).

    A driver device node is the torch-free sign (a Jetson venv often has no
    CUDA PyTorch, a runtime install no PyTorch at all). Where PyTorch is
    already imported, its CUDA check counts too.
    """
    if any(os.path.exists(p) for p in GPU_DEVICE_NODES):
        return True
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return bool(torch.cuda.is_available())
        except Exception:  # noqa: BLE001 - a broken CUDA install counts as no GPU
            return False
    return False


def cudart() -> ModuleType:
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.6+) or ``cuda.cudart`` (older)."""
    try:
        return require("cuda.bindings.runtime")
    except EnetError:
        return require("cuda.cudart")


def cuda_check(result: Any) -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple; raise on an error code."""
    if isinstance(result, tuple):
        err, rest = result[0], result[1:]
    else:
        err, rest = result, ()
    if int(err) != 0:
        raise EnetError(f"CUDA call failed: {err}; is the NVIDIA driver loaded and a GPU visible?")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else rest


def gpu_info(device: int = 0) -> tuple[str, str]:
    """``(GPU name, compute capability "major.minor")`` of ``device``."""
    rt = cudart()
    props = cuda_check(rt.cudaGetDeviceProperties(device))
    name = props.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return str(name).strip(), f"{props.major}.{props.minor}"


def set_device(device: int) -> None:
    cuda_check(cudart().cudaSetDevice(int(device)))


class Stream:
    """A CUDA stream; ``int(stream)`` is the handle TensorRT's ``execute_async_v3`` takes."""

    def __init__(self) -> None:
        self._rt = cudart()
        self.handle: Any = cuda_check(self._rt.cudaStreamCreate())

    def __int__(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        cuda_check(self._rt.cudaStreamSynchronize(self.handle))

    def destroy(self) -> None:
        """Idempotent."""
        if self.handle is not None:
            self._rt.cudaStreamDestroy(self.handle)
            self.handle = None


class DeviceBuffer:
    """A host array and a device allocation of the same byte size.

    Args:
        shape, dtype: of the host array (``numpy.empty``); the device side
            gets at least one byte, so an empty tensor still has an address.
    """

    def __init__(self, shape: Sequence[int], dtype: Any) -> None:
        self._rt = cudart()
        self.host = np.empty(tuple(shape), dtype=dtype)
        self.ptr = int(cuda_check(self._rt.cudaMalloc(max(self.host.nbytes, 1))))

    def to_device(self, stream: Stream) -> None:
        """Queue host -> device on ``stream``."""
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_check(self._rt.cudaMemcpyAsync(self.ptr, self.host.ctypes.data, self.host.nbytes, kind, stream.handle))

    def to_host(self, stream: Stream) -> None:
        """Queue device -> host on ``stream`` (read ``host`` after ``stream.synchronize()``)."""
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_check(self._rt.cudaMemcpyAsync(self.host.ctypes.data, self.ptr, self.host.nbytes, kind, stream.handle))

    def free(self) -> None:
        """Idempotent."""
        if self.ptr:
            self._rt.cudaFree(self.ptr)
            self.ptr = 0


# -- events (the benchmark's CUDA timer) ------------------------------------
def create_event() -> Any:
    return cuda_check(cudart().cudaEventCreate())


def record_event(event: Any, stream: Any = 0) -> None:
    cuda_check(cudart().cudaEventRecord(event, stream))


def event_elapsed_ms(start: Any, end: Any) -> float:
    """Milliseconds between two recorded events; waits for ``end``."""
    rt = cudart()
    cuda_check(rt.cudaEventSynchronize(end))
    return float(cuda_check(rt.cudaEventElapsedTime(start, end)))


def destroy_event(event: Any) -> None:
    cudart().cudaEventDestroy(event)
