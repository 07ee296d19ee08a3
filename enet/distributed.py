"""Training on several processes, GPUs or machines with torchrun.

``torchrun --nproc-per-node N --no-python enet-train ...`` starts N copies of
``enet-train`` with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``
and ``MASTER_PORT`` set; :func:`setup` joins them into one process group
(NCCL between CUDA GPUs, gloo on the CPU). Without those variables (a plain
``enet-train``) nothing here does anything and training runs in one process.

Every helper is collective in a process group: all ranks must call it at the
same point, in the same order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from enet.errors import EnetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """This process's place in the group (rank 0 of 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and logs."""
        return self.rank == 0


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when absent)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise EnetError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number; start with torchrun") from None


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the torchrun process group, if started by torchrun.

    Args:
        device: the device asked for (``cuda`` or ``cpu``).

    Returns:
        ``(context, device)``; on CUDA the device becomes ``cuda:LOCAL_RANK``.

    Raises:
        EnetError: more processes on this machine than GPUs, or a PyTorch
            build without distributed support.
    """
    world = env_world_size()
    if world <= 1:
        return Context(), device
    if not dist.is_available():
        raise EnetError("this PyTorch build has no torch.distributed; run enet-train without torchrun")
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if local >= n:
            raise EnetError(f"process {local} on this machine has no GPU of its own ({n} visible); "
                            f"pass torchrun --nproc-per-node {n} or fewer")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    log.info("process %d of %d (%s, %s)", rank, world, backend, device)
    return Context(rank, local, world, backend), device


def teardown() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(values: Sequence[float] | np.ndarray, device: torch.device) -> np.ndarray:
    """Element-wise sum over all ranks (the input itself without a group).

    Integers stay exact (int64); floats are summed in float64.
    """
    arr = np.asarray(values)
    if not _active():
        return arr
    dtype = torch.int64 if np.issubdtype(arr.dtype, np.integer) else torch.float64
    t = torch.as_tensor(arr, dtype=dtype).to(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (a stop request reaches all of them)."""
    if not _active():
        return flag
    return bool(all_reduce_sum(np.array([int(flag)], np.int64), device)[0])


def gather(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` without a group)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (no-op without a group)."""
    if _active():
        dist.barrier()
