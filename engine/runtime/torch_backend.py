"""PyTorch backend: runs an enet-rt checkpoint (``.pth``), FP32 anywhere, FP16 on CUDA."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from enet.checkpoint import load_model
from enet.device import resolve_device
from enet.engine.runtime.backend import BackendBase
from enet.errors import ShapeError


class TorchBackend(BackendBase):
    """ENet checkpoint in PyTorch, eval mode, ``torch.inference_mode``.

    Args:
        path: checkpoint file.
        device: ``auto|cpu|cuda``.
        input_shape: static NCHW shape; default batch 1 at the checkpoint's
            ``input_size``.
        threads: intra-op threads for CPU inference (default: the CPUs this process may use, enet.cpus).
        precision: ``fp32``, or ``fp16`` (weights and activations in half
            precision; CUDA only). Inputs and logits stay float32.
    """

    def __init__(self, path: str | os.PathLike[str], *, device: str = "auto",
                 input_shape: tuple[int, int, int, int] | None = None, threads: int | None = None,
                 precision: str = "fp32", **_: Any) -> None:
        from enet.errors import EnetError

        if precision not in ("fp32", "fp16"):
            raise EnetError(f"PyTorch runs fp32 or fp16, not {precision!r}")
        self.path = Path(path)
        self._device_arg = device
        self._threads = threads
        self._model: torch.nn.Module | None = None
        from enet.checkpoint import load_checkpoint

        self.meta: dict[str, Any] = load_checkpoint(self.path)["meta"]
        h, w = self.meta["input_size"]
        self.input_shape = tuple(input_shape) if input_shape else (1, 3, int(h), int(w))
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise EnetError("FP16 PyTorch inference runs on CUDA only; use --device cuda or fp32")
        self.precision = precision
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self.name = f"torch-{self.device.type}" + ("-fp16" if precision == "fp16" else "")

    @property
    def device_timing(self) -> bool:
        """``device_stages()`` exists on CUDA (CUDA-event timing in ``enet-bench``)."""
        return self.device.type == "cuda"

    def __enter__(self) -> TorchBackend:
        if self._threads or self.device.type == "cpu":
            from enet.cpus import default_threads

            torch.set_num_threads(self._threads or default_threads())
        model, _ = load_model(self.path)
        self._model = model.to(self.device, self._dtype).eval()
        return self

    def __exit__(self, *exc: object) -> None:
        self._model = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("TorchBackend.infer called outside 'with'")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"expected float32 input (N, 3, H, W), got {x.shape}")
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device, self._dtype)
            out = self._model(t)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            return out.float().cpu().numpy()

    def device_stages(self, *, cuda_graph: bool = False) -> TorchStages:
        """The steps of one CUDA inference for ``enet-bench``'s trtexec-style timing.

        Raises:
            EnetError: not on CUDA, or a CUDA graph asked for (not offered for PyTorch).
        """
        from enet.errors import EnetError

        if self._model is None:
            raise RuntimeError("TorchBackend.device_stages called outside 'with'")
        if self.device.type != "cuda":
            raise EnetError("device timing needs PyTorch on CUDA")
        if cuda_graph:
            raise EnetError("--cuda-graph is offered for TensorRT engines only")
        return TorchStages(self._model, self.input_shape, self.device, self._dtype)


class TorchStages:
    """One PyTorch CUDA inference as trtexec's steps, queued on the current CUDA stream.

    Page-locked host tensors for input and logits, device tensors allocated
    once; ``compute`` runs the network on the device input (a half-precision
    model gets its input cast on the GPU, inside ``compute``) and leaves
    float32 logits on the device for ``d2h``. ``events = "torch"``: time it
    with ``torch.cuda.Event`` on ``stream``.
    """

    events = "torch"
    cuda_graph = False
    zero_copy = False

    def __init__(self, model: torch.nn.Module, input_shape: tuple[int, ...], device: torch.device,
                 dtype: torch.dtype) -> None:
        self._model, self._dtype = model, dtype
        self.stream = torch.cuda.current_stream(device)
        self._host_in = torch.empty(tuple(input_shape), dtype=torch.float32).pin_memory()
        self._dev_in = torch.empty(tuple(input_shape), dtype=torch.float32, device=device)
        with torch.inference_mode():
            probe = model(self._dev_in.to(dtype))
        self._dev_out = torch.empty(tuple(probe.shape), dtype=torch.float32, device=device)
        self._host_out = torch.empty(tuple(probe.shape), dtype=torch.float32).pin_memory()

    def load(self, x: np.ndarray) -> None:
        self._host_in.numpy()[...] = x

    def h2d(self) -> None:
        self._dev_in.copy_(self._host_in, non_blocking=True)

    def compute(self) -> None:
        with torch.inference_mode():
            self._dev_out.copy_(self._model(self._dev_in.to(self._dtype)))

    def d2h(self) -> None:
        self._host_out.copy_(self._dev_out, non_blocking=True)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def output(self) -> np.ndarray:
        return self._host_out.numpy()
