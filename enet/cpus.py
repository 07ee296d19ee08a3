"""How many CPU threads to use: the CPUs this process may run on, not the machine's.

``os.cpu_count()`` counts every core of the machine; a container, ``taskset``
or a Jetson power mode may allow fewer, and asking for more threads than
that oversubscribes (PyTorch slowed by more than an order of magnitude with
2 threads on 2 CPUs while another process ran; docs/bench.md). One helper,
used by the torch and ONNX Runtime backends and the camera pipeline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def usable_cpus() -> int:
    """CPUs this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where that is missing)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_threads(*, reserve: int = 0) -> int:
    """Inference threads: the usable CPUs less ``reserve`` for stages running beside inference, at least 1."""
    return max(1, usable_cpus() - reserve)


def kernel_isa_cap(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The instruction-set level oneDNN's kernels, and so OpenVINO's CPU plugin's, are capped at.

    ``ONEDNN_MAX_CPU_ISA`` (else ``DNNL_MAX_CPU_ISA``; the first one set wins, as in oneDNN): returns
    ``(LEVEL, variable)``, such as ``("AVX2", "ONEDNN_MAX_CPU_ISA")``; None when neither caps
    (unset, ``ALL`` or ``DEFAULT``). ``environ``: the environment (tests; default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        level = environ.get(var, "").strip().upper()
        if level:
            return None if level in ("ALL", "DEFAULT") else (level, var)
    return None
