"""PyTorch backend: runs an enet-rt checkpoint (``.pth``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from enet.checkpoint import load_model
from enet.device import resolve_device
from enet.errors import ShapeError


class TorchBackend:
    """ENet checkpoint in PyTorch, eval mode, ``torch.inference_mode``.

    Args:
        path: checkpoint file.
        device: ``auto|cpu|cuda``.
        input_shape: static NCHW shape; default batch 1 at the checkpoint's
            ``input_size``.
        threads: intra-op threads for CPU inference (default: the CPUs this process may use, enet.cpus).
    """

    def __init__(self, path: str | os.PathLike[str], *, device: str = "auto",
                 input_shape: tuple[int, int, int, int] | None = None, threads: int | None = None,
                 **_: Any) -> None:
        self.path = Path(path)
        self._device_arg = device
        self._threads = threads
        self._model: torch.nn.Module | None = None
        from enet.checkpoint import load_checkpoint

        self.meta: dict[str, Any] = load_checkpoint(self.path)["meta"]
        h, w = self.meta["input_size"]
        self.input_shape = tuple(input_shape) if input_shape else (1, 3, int(h), int(w))
        self.device = resolve_device(device)
        self.name = f"torch-{self.device.type}"

    def __enter__(self) -> TorchBackend:
        if self._threads or self.device.type == "cpu":
            from enet.cpus import default_threads

            torch.set_num_threads(self._threads or default_threads())
        model, _ = load_model(self.path)
        self._model = model.to(self.device).eval()
        return self

    def __exit__(self, *exc: object) -> None:
        self._model = None

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("TorchBackend.infer called outside 'with'")
        if x.ndim != 4 or x.shape[1] != 3:
            raise ShapeError(f"expected float32 input (N, 3, H, W), got {x.shape}")
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
            out = self._model(t)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            return out.float().cpu().numpy()
