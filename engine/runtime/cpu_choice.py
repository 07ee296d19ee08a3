"""Which installed CPU backend runs an ``.onnx`` fastest: a fixed, measured order.

``--backend auto`` without a GPU takes the first backend of
:data:`CPU_PREFERENCE` whose runtime is installed. The order is measured, not
timed at run time (a run-time race would pick differently from run to run on
a busy machine): ``enet-bench --device cpu`` at 480x360, batch 1 (the
figures and the machine: README "Speed", docs/bench.md):

1. ``openvino``: OpenVINO on the exact CPU form of the graph;
2. ``ort-fast``: ONNX Runtime on its exact CPU form;
3. ``ort``: ONNX Runtime on the graph as exported (only when the CPU form
   cannot be built, which does not happen for enet-export files).

Nothing heavy is imported here; availability is probed with
:func:`enet._lazy.available`.
"""

from __future__ import annotations

from collections.abc import Callable

#: Backend kind -> the module it needs, fastest first (see module docstring).
CPU_PREFERENCE: tuple[tuple[str, str], ...] = (
    ("openvino", "openvino"),
    ("ort-fast", "onnxruntime"),
)


def _available(module: str) -> bool:
    from enet._lazy import available

    return available(module)


def fastest_cpu_kind(available: Callable[[str], bool] | None = None) -> str | None:
    """The first kind of :data:`CPU_PREFERENCE` whose runtime imports (``available``: a probe for tests)."""
    available = available or _available
    for kind, module in CPU_PREFERENCE:
        if available(module):
            return kind
    return None


def preference_text() -> str:
    """``"openvino > ort-fast"``, for messages that say why a backend was chosen."""
    return " > ".join(kind for kind, _ in CPU_PREFERENCE)


def ort_has_cuda() -> bool:
    """The installed onnxruntime has the CUDA provider (never raises)."""
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001 - missing or broken onnxruntime: no CUDA through it
        return False




#: CPU backends that run a calibrated INT8 Q/DQ ONNX faster than its FP32 form (docs/bench.md has the
#: measurements): ``precision="auto"`` picks a shipped model's INT8 file for these, on the CPUs of
#: :data:`INT8_MEASURED_MACHINES`.
INT8_FASTER: tuple[str, ...] = ("openvino",)
#: ``platform.machine()`` values where INT8 was measured faster: x86-64 with AVX-512 VNNI, and with
#: its kernels capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, 7-bit weights; docs/bench.md). Elsewhere
#: (an Arm CPU) ``auto`` runs FP32 and says so.
INT8_MEASURED_MACHINES: tuple[str, ...] = ("x86_64", "amd64")


def int8_faster(kind: str, machine: str | None = None) -> bool:
    """Whether ``kind`` runs a shipped INT8 ONNX faster than FP32 on this CPU (``machine``: tests)."""
    import platform

    machine = (machine if machine is not None else platform.machine()).lower()
    return kind in INT8_FASTER and machine in INT8_MEASURED_MACHINES
