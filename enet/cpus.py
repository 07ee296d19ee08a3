"""How many CPU threads to use: the CPUs this process may run on, not the machine's.

``os.cpu_count()`` counts every core of the machine; a container, ``taskset``
or a Jetson power mode may allow fewer, and asking for more threads than
that oversubscribes (PyTorch slowed by more than an order of magnitude with
2 threads on 2 CPUs while another process ran; docs/bench.md). One helper,
used by the torch and ONNX Runtime backends and the camera pipeline.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where that is missing)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_threads(*, reserve: int = 0) -> int:
    """Inference threads: the usable CPUs less ``reserve`` for stages running beside inference, at least 1."""
    return max(1, usable_cpus() - reserve)
