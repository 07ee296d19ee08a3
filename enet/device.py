"""Which PyTorch device to train or run a checkpoint on."""

from __future__ import annotations

import torch

from enet.errors import EnetError


def resolve_device(device: str) -> torch.device:
    """``auto|cpu|cuda`` -> a torch device; ``cuda`` without CUDA is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EnetError("device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return torch.device(device)
