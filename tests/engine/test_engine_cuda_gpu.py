"""GPU tests that need no TensorRT: cuda-python buffers, events, CUDA graphs, and PyTorch on CUDA.

``make gpu-check`` runs these (``-m "gpu and not trt"``) on a machine with
only PyTorch and CUDA. Skipped here (no GPU); never run in this project so
far: see docs/engines.md.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture()
def cuda():
    pytest.importorskip("cuda.bindings.runtime")
    from enet.engine.runtime import cuda as c

    c.set_device(0)
    return c


@pytest.mark.parametrize("mapped", [False, True], ids=["pinned", "mapped"])
def test_host_device_buffer_roundtrip(cuda, mapped) -> None:
    if mapped and not cuda.is_integrated(0):
        pytest.skip("mapped zero-copy buffers are for integrated GPUs (Jetson)")
    stream = cuda.Stream()
    a = cuda.HostDeviceBuffer((2, 3, 4), np.float32, mapped=mapped)
    b = cuda.HostDeviceBuffer((2, 3, 4), np.float32, mapped=mapped)
    try:
        a.host[...] = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        a.to_device(stream)
        rt = cuda.cudart()
        kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        cuda.cuda_check(rt.cudaMemcpyAsync(b.ptr, a.ptr, a.host.nbytes, kind, stream.handle))
        b.to_host(stream)
        stream.synchronize()
        np.testing.assert_array_equal(b.host, a.host)
    finally:
        a.free()
        b.free()
        a.free()  # idempotent
        stream.destroy()
        stream.destroy()


def test_events_time_a_stream_and_graphs_replay(cuda) -> None:
    stream = cuda.Stream()
    src = cuda.HostDeviceBuffer((1 << 22,), np.float32)  # 16 MiB
    dst = cuda.HostDeviceBuffer((1 << 22,), np.float32)
    start, end = cuda.Event(), cuda.Event()
    rt = cuda.cudart()
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice

    def copy() -> None:
        cuda.cuda_check(rt.cudaMemcpyAsync(dst.ptr, src.ptr, src.host.nbytes, kind, stream.handle))

    graph = None
    try:
        src.host[...] = 7.0
        src.to_device(stream)
        start.record(stream)
        copy()
        end.record(stream)
        assert start.elapsed_ms(end) > 0.0
        graph = cuda.CudaGraph(stream, copy)
        dst.host[...] = 0.0
        dst.to_device(stream)
        graph.launch(stream)
        dst.to_host(stream)
        stream.synchronize()
        assert (dst.host == 7.0).all()
    finally:
        if graph is not None:
            graph.destroy()
        for x in (start, end):
            x.destroy()
        src.free()
        dst.free()
        stream.destroy()


@pytest.fixture()
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    return torch


def test_torch_on_cuda_fp32_and_fp16_agree_with_the_cpu(torch_cuda, tiny_checkpoint) -> None:
    from enet.engine.runtime.torch_backend import TorchBackend

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    with TorchBackend(tiny_checkpoint, device="cpu") as cpu:
        ref = cpu.infer(x)
    with TorchBackend(tiny_checkpoint, device="cuda") as g32, \
            TorchBackend(tiny_checkpoint, device="cuda", precision="fp16") as g16:
        y32, y16 = g32.infer(x), g16.infer(x)
        assert g16.name == "torch-cuda-fp16" and y16.dtype == np.float32
        st = g16.device_stages()
        st.load(x)
        st.h2d()
        st.compute()
        st.d2h()
        st.synchronize()
        np.testing.assert_allclose(st.output(), y16, atol=1e-2)
    np.testing.assert_allclose(y32, ref, atol=1e-3)
    assert (y16.argmax(1) == ref.argmax(1)).mean() > 0.98


def test_device_timing_with_torch_events(torch_cuda, tiny_checkpoint) -> None:
    from enet.bench.device_timing import StreamEvents, measure_device
    from enet.bench.harness import MeasureConfig, argmax_postprocess, summarize
    from enet.engine.runtime.torch_backend import TorchBackend

    frames = [np.zeros((1, 64, 96, 3), np.uint8)]
    cfg = MeasureConfig(warmup_s=0, duration_s=0, min_iterations=5, max_iterations=5)
    with TorchBackend(tiny_checkpoint, device="cuda") as b:
        st = b.device_stages()
        pre = lambda f: f.transpose(0, 3, 1, 2).astype(np.float32)  # noqa: E731
        t = summarize(measure_device(st, pre, argmax_postprocess, frames, cfg, events=StreamEvents(st)))
    assert t["compute_kind"] == "gpu" and t["compute"]["mean"] > 0
    g = t["gpu"]
    assert g["latency"]["mean"] >= t["compute"]["mean"] and g["h2d"]["mean"] > 0 and g["d2h"]["mean"] > 0


def test_device_timing_with_cudart_events(cuda) -> None:
    """The cuda-python event path of the bench timer, on a plain copy standing in for a network."""
    from types import SimpleNamespace

    from enet.bench.device_timing import StreamEvents, measure_device
    from enet.bench.harness import MeasureConfig, summarize

    stream = cuda.Stream()
    buf = cuda.HostDeviceBuffer((1, 3, 64, 96), np.float32)
    stages = SimpleNamespace(events="cudart", stream=stream, cuda_graph=False, zero_copy=False,
                             load=lambda x: np.copyto(buf.host, x), h2d=lambda: buf.to_device(stream),
                             compute=lambda: None, d2h=lambda: buf.to_host(stream),
                             synchronize=stream.synchronize, output=lambda: buf.host)
    cfg = MeasureConfig(warmup_s=0, duration_s=0, min_iterations=3, max_iterations=3)
    ev = StreamEvents(stages)
    try:
        t = summarize(measure_device(stages, lambda f: np.zeros((1, 3, 64, 96), np.float32), lambda y: y,
                                     [np.zeros((1, 64, 96, 3), np.uint8)], cfg, events=ev))
    finally:
        buf.free()
        stream.destroy()
    assert t["gpu"]["h2d"]["mean"] > 0 and ev._events == []  # events destroyed
