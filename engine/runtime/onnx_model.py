"""What every runtime of an enet-rt ``.onnx`` shares: reading the file, and logits/labels outputs.

:class:`OnnxModelBackend` reads the model, its metadata, static input shape,
precision and output roles once at construction (cheap, no runtime import);
a subclass (ONNX Runtime, OpenVINO) supplies ``_run(x, output_name)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from enet.engine.runtime.backend import BackendBase
from enet.engine.runtime.onnx_info import load_onnx, output_roles, precision_of, read_meta, static_input_shape
from enet.errors import EnetError, ShapeError


class OnnxModelBackend(BackendBase):
    """Base of the ONNX backends: metadata, shape checks, ``infer`` and ``infer_labels``."""

    def __init__(self, path: str | os.PathLike[str], input_shape: tuple[int, int, int, int] | None) -> None:
        self.path = Path(path)
        self._model = load_onnx(self.path, check=False)
        self.meta: dict[str, Any] = read_meta(self._model, str(self.path))
        self.input_shape = static_input_shape(self._model, input_shape, self.meta)
        self.precision = precision_of(self._model)
        self._logits_name, self._labels_name = output_roles(self._model)
        if self._logits_name is None and self._labels_name is None:
            raise EnetError(f"{self.path} has neither a float logits output nor an integer labels output")

    @property
    def labels_in_graph(self) -> bool:
        """Whether :meth:`infer_labels` reads an in-graph argmax (``enet-export --labels``)."""
        return self._labels_name is not None

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        if x.shape != tuple(self.input_shape):
            raise ShapeError(f"input {x.shape} does not match the model's input {tuple(self.input_shape)}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run(self, x: np.ndarray, output: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> float32 logits ``(N, C, H, W)``."""
        if self._logits_name is None:
            raise EnetError(f"{self.path} outputs class labels only; use infer_labels or export without --labels")
        return self._run(x, self._logits_name).astype(np.float32, copy=False)

    def infer_labels(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` -> int64 class labels ``(N, H, W)`` (in-graph ArgMax when present)."""
        if self._labels_name is not None:
            y = self._run(x, self._labels_name)
            return (y[:, 0] if y.ndim == 4 else y).astype(np.int64, copy=False)
        return self.infer(x).argmax(1)
