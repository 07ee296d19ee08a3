"""CUDA through cuda-python, and the one GPU check of the toolkit.

* :func:`gpu_available`: is an NVIDIA GPU visible here? Torch-free and
  never raises; the benchmark, the camera pipeline and the test suite all
  ask this function.
* :func:`cudart`, :func:`cuda_check`, :func:`gpu_info`: cuda-python's
  runtime API, its ``(err, *values)`` results, the GPU's name and compute
  capability (engine sidecars record both).
* :class:`HostDeviceBuffer` (page-locked host memory, or mapped zero-copy
  memory on an integrated GPU such as Jetson's), :class:`Stream`,
  :class:`Event`, :class:`CudaGraph`: the pieces the TensorRT runner and the
  benchmark's stream-event timing use. Everything made here has an
  idempotent ``free``/``destroy``.

Nothing here imports cuda-python at module level (see :mod:`enet._lazy`).
Never run on a GPU in this project's CI: see docs/engines.md.
"""

from __future__ import annotations

import ctypes
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


#: ``cudaErrorInsufficientDriver``: the CUDA runtime is newer than the driver.
INSUFFICIENT_DRIVER = 35
#: The CUDA major the ``tensorrt`` extra and JetPack 6 use; pyproject pins cuda-python to it.
CUDA_MAJOR = 12


def _cuda_version(code: int) -> str:
    """CUDA's integer version as text: 12020 -> ``12.2``."""
    return f"{code // 1000}.{code % 1000 // 10}"


def cuda_major_mismatch(runtime_version: int, driver_version: int) -> str | None:
    """The one-line explanation of cudaErrorInsufficientDriver, or None when the majors agree.

    Args:
        runtime_version: ``cudaRuntimeGetVersion`` of the bindings (e.g. 13000).
        driver_version: ``cudaDriverGetVersion`` (e.g. 12020; 0 without a driver).
    """
    if driver_version <= 0:
        return None
    run, drv = runtime_version // 1000, driver_version // 1000
    if run <= drv:
        return None
    return (f"cuda-python's bindings use the CUDA {run} runtime but this NVIDIA driver supports CUDA "
            f"{_cuda_version(driver_version)}: install the bindings of the driver's CUDA major, "
            f"pip install 'cuda-python>={drv},<{drv + 1}' (enet-rt[tensorrt] pins CUDA {CUDA_MAJOR}), or update "
            "the driver")


def _driver_message(err: Any) -> str:
    """The error line for a failed CUDA call; names a CUDA-major mismatch when that is the cause."""
    if int(err) == INSUFFICIENT_DRIVER:
        try:
            rt = cudart()
            codes = rt.cudaRuntimeGetVersion(), rt.cudaDriverGetVersion()
            why = cuda_major_mismatch(int(codes[0][1]), int(codes[1][1]))
        except Exception:  # noqa: BLE001 - the explanation is best effort; the error below still stands
            why = None
        if why:
            return f"CUDA call failed: {err}: {why}"
        return f"CUDA call failed: {err}: the NVIDIA driver is older than the CUDA runtime of cuda-python"
    return f"CUDA call failed: {err}; is the NVIDIA driver loaded and a GPU visible?"


def cuda_check(result: Any) -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple; raise on an error code."""
    if isinstance(result, tuple):
        err, rest = result[0], result[1:]
    else:
        err, rest = result, ()
    if int(err) != 0:
        raise EnetError(_driver_message(err))
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
    """Make ``device`` current for the calling thread (CUDA's current device is per thread)."""
    cuda_check(cudart().cudaSetDevice(int(device)))


def is_integrated(device: int = 0) -> bool:
    """True for a GPU that shares memory with the CPU (every Jetson), where mapped zero-copy buffers pay off."""
    props = cuda_check(cudart().cudaGetDeviceProperties(int(device)))
    return bool(getattr(props, "integrated", 0)) and bool(getattr(props, "canMapHostMemory", 0))


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
            handle, self.handle = self.handle, None
            cuda_check(self._rt.cudaStreamDestroy(handle))


def _host_array(ptr: int, shape: Sequence[int], dtype: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = (ctypes.c_ubyte * max(count * dtype.itemsize, 1)).from_address(ptr)
    return np.frombuffer(raw, dtype=np.uint8)[:count * dtype.itemsize].view(dtype).reshape(tuple(shape))


class HostDeviceBuffer:
    """A page-locked host array and its device memory, for one tensor.

    Args:
        shape, dtype: of the tensor.
        mapped: allocate the host array as mapped memory (``cudaHostAllocMapped``)
            and give the device its alias instead of a copy: on an integrated GPU
            (Jetson) CPU and GPU share DRAM, so ``to_device``/``to_host`` become
            no-ops. Elsewhere the host array is page-locked (``cudaHostAlloc``),
            which copies faster than pageable memory and lets the copies run
            asynchronously on the stream.

    Attributes:
        host: numpy view of the page-locked memory (valid until :meth:`free`).
        ptr: device address for ``set_tensor_address``.
    """

    def __init__(self, shape: Sequence[int], dtype: Any, *, mapped: bool = False) -> None:
        self._rt = rt = cudart()
        self.mapped = mapped
        nbytes = max(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, 1)
        flags = rt.cudaHostAllocMapped if mapped else rt.cudaHostAllocDefault
        self._host_ptr = int(cuda_check(rt.cudaHostAlloc(nbytes, flags)))
        self._device_ptr = 0
        try:
            self.host = _host_array(self._host_ptr, shape, dtype)
            if mapped:
                self.ptr = int(cuda_check(rt.cudaHostGetDevicePointer(self._host_ptr, 0)))
            else:
                self._device_ptr = self.ptr = int(cuda_check(rt.cudaMalloc(nbytes)))
        except BaseException:
            self.free()
            raise

    def to_device(self, stream: Stream) -> None:
        """Queue host -> device on ``stream`` (nothing to do for mapped memory)."""
        if not self.mapped:
            kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            cuda_check(self._rt.cudaMemcpyAsync(self.ptr, self._host_ptr, self.host.nbytes, kind, stream.handle))

    def to_host(self, stream: Stream) -> None:
        """Queue device -> host on ``stream``; read ``host`` after ``stream.synchronize()``."""
        if not self.mapped:
            kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            cuda_check(self._rt.cudaMemcpyAsync(self._host_ptr, self.ptr, self.host.nbytes, kind, stream.handle))

    def free(self) -> None:
        """Idempotent; ``host`` must not be used afterwards."""
        self.host = np.empty(0, np.uint8)
        if self._device_ptr:
            ptr, self._device_ptr = self._device_ptr, 0
            cuda_check(self._rt.cudaFree(ptr))
        if self._host_ptr:
            ptr, self._host_ptr = self._host_ptr, 0
            self.ptr = 0
            cuda_check(self._rt.cudaFreeHost(ptr))


class Event:
    """A CUDA event for timing work on a stream (``cudaEventRecord``/``cudaEventElapsedTime``)."""

    def __init__(self) -> None:
        self._rt = cudart()
        self.handle: Any = cuda_check(self._rt.cudaEventCreate())

    def record(self, stream: Any = 0) -> None:
        """Record on ``stream`` (a :class:`Stream`, a raw handle, or 0 for the default stream)."""
        cuda_check(self._rt.cudaEventRecord(self.handle, getattr(stream, "handle", stream)))

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to ``end``; waits for ``end``."""
        cuda_check(self._rt.cudaEventSynchronize(end.handle))
        return float(cuda_check(self._rt.cudaEventElapsedTime(self.handle, end.handle)))

    def destroy(self) -> None:
        """Idempotent."""
        if self.handle is not None:
            handle, self.handle = self.handle, None
            cuda_check(self._rt.cudaEventDestroy(handle))


class CudaGraph:
    """Work queued on a stream, captured once and replayed with one launch (as ``trtexec --useCudaGraph``).

    Args:
        stream: the stream to capture on.
        enqueue: queues the work (e.g. ``execute_async_v3``); run once before
            capturing, because TensorRT allocates on its first enqueue.
    """

    def __init__(self, stream: Stream, enqueue: Any) -> None:
        self._rt = rt = cudart()
        self.graph: Any = None
        self.exec: Any = None
        _checked(enqueue, "the warm-up enqueue before capturing")
        stream.synchronize()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        cuda_check(rt.cudaStreamBeginCapture(stream.handle, mode))
        try:
            _checked(enqueue, "the enqueue being captured")
        except BaseException:
            # end the capture (the stream is unusable until then) without letting its error hide this one
            try:
                res = rt.cudaStreamEndCapture(stream.handle)
                graph = res[1] if isinstance(res, tuple) and len(res) > 1 and int(res[0]) == 0 else None
                if graph is not None:
                    rt.cudaGraphDestroy(graph)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise
        self.graph = cuda_check(rt.cudaStreamEndCapture(stream.handle))
        try:
            self.exec = cuda_check(rt.cudaGraphInstantiateWithFlags(self.graph, 0))
        except BaseException:
            self.destroy()
            raise

    def launch(self, stream: Stream) -> None:
        cuda_check(self._rt.cudaGraphLaunch(self.exec, stream.handle))

    def destroy(self) -> None:
        """Idempotent."""
        if self.exec is not None:
            e, self.exec = self.exec, None
            cuda_check(self._rt.cudaGraphExecDestroy(e))
        if self.graph is not None:
            g, self.graph = self.graph, None
            cuda_check(self._rt.cudaGraphDestroy(g))


def _checked(enqueue: Any, what: str) -> None:
    """Run ``enqueue``; a ``False`` return (``execute_async_v3`` failing) raises instead of being captured."""
    if enqueue() is False:
        raise EnetError(f"CUDA graph: {what} failed (execute_async_v3 returned False); nothing was captured")


# -- events for the benchmark's whole-iteration timer (CudartEventTimer) -----
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
    cuda_check(cudart().cudaEventDestroy(event))
