"""enet-rt: ENet from PyTorch training to TensorRT, ONNX Runtime and OpenVINO inference.

The public API (docs/api.md)::

    import enet
    seg = enet.Segmenter("camvid")
    labels = seg.segment(frame_bgr)

``import enet`` stays light: :class:`Segmenter` (from
:mod:`enet.engine.runtime.segmenter`) is imported on first use, and nothing
imports torch unless a ``.pth`` runs in PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enet.errors import EnetError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from enet.engine.runtime.segmenter import Segmenter

__all__ = ["Segmenter", "EnetError", "InputError"]


def __getattr__(name: str) -> Any:
    # the package root re-exports the API, which runs models (the runtime layer): imported on first use
    if name == "Segmenter":
        from enet.engine.runtime.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'enet' has no attribute {name!r}")
