"""GPU timing with trtexec's definitions, for backends that expose device stages.

A TensorRT engine (:meth:`enet.engine.runtime.trt_backend.TrtBackend.device_stages`)
or PyTorch on CUDA (:meth:`enet.engine.runtime.torch_backend.TorchBackend.device_stages`)
splits one inference into steps queued on the backend's own stream. One
iteration here is::

    preprocess (host) -> load into the page-locked input buffer (host)
    [e0] H2D copy [e1] enqueue [e2] D2H copy [e3]   (CUDA events on the inference stream)
    synchronize -> argmax (host)

and yields, in trtexec's terms:

- ``compute``: GPU compute time, ``e1 -> e2``: the network alone, its input
  already on the device, events recorded on the inference stream around the
  enqueue only (a CUDA graph launch with ``--cuda-graph``);
- ``h2d`` (``e0 -> e1``) and ``d2h`` (``e2 -> e3``): the copies (zero on a
  Jetson with mapped zero-copy buffers);
- ``enqueue``: host time of the enqueue call;
- ``latency``: ``e0 -> e3``, H2D + GPU compute + D2H;
- ``e2e``: host wall time of the whole iteration (preprocess to argmax).

The paper's Table 2 timed the network, so the report sets GPU compute time
beside it. Events are created once, reused every iteration and destroyed
when the run ends, also when it fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from enet.bench.harness import MeasureConfig, Measurement, PerfCounterTimer, measure


class StreamEvents:
    """CUDA events on a device-stages stream: cuda-python's for TensorRT, PyTorch's for torch.

    Args:
        stages: a device-stages object; ``stages.events`` says which API
            (``"cudart"`` or ``"torch"``) and ``stages.stream`` the stream.
    """

    def __init__(self, stages: Any) -> None:
        if stages.events not in ("cudart", "torch"):
            raise ValueError(f"unknown event API {stages.events!r}")
        self.kind = stages.events
        self._stream = stages.stream
        self._events: list[Any] = []

    def make(self) -> Any:
        if self.kind == "cudart":
            from enet.engine.runtime.cuda import Event

            ev = Event()
        else:
            import torch

            ev = torch.cuda.Event(enable_timing=True)
        self._events.append(ev)
        return ev

    def record(self, ev: Any) -> None:
        ev.record(self._stream)

    def elapsed_ms(self, start: Any, end: Any) -> float:
        if self.kind == "cudart":
            return start.elapsed_ms(end)
        end.synchronize()
        return float(start.elapsed_time(end))

    def close(self) -> None:
        """Destroy every event made (idempotent)."""
        events, self._events = self._events, []
        if self.kind == "cudart":
            for ev in events:
                ev.destroy()


def device_step(stages: Any, preprocess: Callable[[np.ndarray], np.ndarray],
                postprocess: Callable[[np.ndarray], np.ndarray], events: Any) -> Callable[[np.ndarray], dict[str, float]]:
    """One iteration as described in the module docstring; returns its samples in ms."""
    e0, e1, e2, e3 = (events.make() for _ in range(4))
    clock = time.perf_counter_ns

    def step(frames: np.ndarray) -> dict[str, float]:
        t0 = clock()
        x = preprocess(frames)
        t1 = clock()
        stages.load(x)
        events.record(e0)
        stages.h2d()
        events.record(e1)
        q0 = clock()
        stages.compute()
        q1 = clock()
        events.record(e2)
        stages.d2h()
        events.record(e3)
        stages.synchronize()
        t2 = clock()
        postprocess(stages.output())
        t3 = clock()
        return {"compute": events.elapsed_ms(e1, e2), "e2e": (t3 - t0) / 1e6,
                "h2d": events.elapsed_ms(e0, e1), "d2h": events.elapsed_ms(e2, e3),
                "enqueue": (q1 - q0) / 1e6, "latency": events.elapsed_ms(e0, e3),
                "preprocess": (t1 - t0) / 1e6, "postprocess": (t3 - t2) / 1e6}

    return step


def measure_device(stages: Any, preprocess: Callable[[np.ndarray], np.ndarray],
                   postprocess: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray],
                   config: MeasureConfig, *, events: Any = None, wall: Any = None,
                   **hooks: Any) -> Measurement:
    """:func:`enet.bench.harness.measure` with the device step; events released at the end.

    Args:
        stages: the backend's device stages.
        events: a :class:`StreamEvents`-like factory (tests pass a fake clock).
        wall: the harness timer whose ``wall_s`` drives warm-up and duration.
        **hooks: ``on_progress``, ``on_measure_start``, ``on_measure_end``.
    """
    events = events if events is not None else StreamEvents(stages)
    wall = wall or PerfCounterTimer()
    try:
        m = measure(None, inputs, config, wall, step=device_step(stages, preprocess, postprocess, events),
                    compute_kind="gpu", **hooks)
    finally:
        events.close()
    m.timer = f"cuda_events({events.kind} stream)"
    m.flags = {"cuda_graph": bool(getattr(stages, "cuda_graph", False)),
               "zero_copy": bool(getattr(stages, "zero_copy", False))}
    return m
