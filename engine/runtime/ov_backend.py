"""OpenVINO backend: runs an enet-rt ``.onnx`` (FP32, or INT8 Q/DQ) on the CPU.

The same files ONNX Runtime runs: OpenVINO reads the ONNX itself, so the
float32 export and the calibrated Q/DQ INT8 ONNX of ``enet-build-engine
--int8`` need no conversion step. Before compiling, the graph is put in its
CPU form (:func:`enet.export.cpu_graph.cpu_form`: select-form unpooling and
rank-4 PReLU slopes, both exact); ``graph="as-is"`` skips that.

Compile settings (``compile_config``):

* ``INFERENCE_PRECISION_HINT=f32``: a CPU with AVX-512 BF16 or AMX would
  otherwise run float32 models in bfloat16, and the accuracy would no longer
  be the one measured; INT8 Q/DQ layers still run in int8.
* ``PERFORMANCE_HINT=LATENCY``, one stream, ``INFERENCE_NUM_THREADS`` = the
  CPUs this process may run on (``os.sched_getaffinity``), or ``threads``.

INT8 on x86 CPUs without VNNI (AVX2 only): OpenVINO's int8 convolutions
multiply unsigned 8-bit activations by signed 8-bit weights with
``vpmaddubsw``, which adds pairs of products into *16-bit* sums and
saturates when weights use the full [-127, 127] range. Measured here
(OpenVINO 2026.4, AMD EPYC with AVX2): a Q/DQ convolution's output was off
by up to 2.8 against the Q/DQ arithmetic, and the shipped model lost 14 mIoU
points (64.3 in ONNX Runtime, 51.0 in OpenVINO). On such CPUs the weights'
Q/DQ scales are widened by 127/63 before compiling
(:func:`requantize_weights_7bit`), so weights take 7 bits and no sum can
saturate; OpenVINO then computes what the graph says, and the val mIoU is
64.48 (FP32 64.96). CPUs with AVX-512 VNNI, AVX-VNNI or AMX accumulate in 32
bits and keep 8-bit weights.

Only numpy and onnx are imported at module level; ``openvino`` comes through
:func:`enet._lazy.require` (``pip install 'enet-rt[openvino]'``).
"""

from __future__ import annotations

import logging
import os
import platform
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from enet._lazy import require
from enet.cpus import kernel_isa_cap, usable_cpus
from enet.engine.runtime.onnx_info import output_roles
from enet.engine.runtime.onnx_model import OnnxModelBackend
from enet.errors import EnetError

log = logging.getLogger(__name__)

GRAPH_FORMS = ("cpu", "as-is")


def compile_config(threads: int | None = None, streams: int = 1) -> dict[str, str]:
    """OpenVINO CPU compile properties (module docstring).

    ``streams`` > 1: that many frames run at once, ``threads`` shared among
    them (the camera pipeline's throughput setting, see ``OvBackend``).
    """
    return {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        "NUM_STREAMS": str(int(streams)),
        "INFERENCE_NUM_THREADS": str(int(threads) if threads else usable_cpus()),
    }


#: /proc/cpuinfo flags of x86 int8 dot products with 32-bit accumulation.
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8")


#: ``ONEDNN_MAX_CPU_ISA`` levels (oneDNN's names, OpenVINO's CPU plugin honours them) whose int8
#: kernels add products in 16 bits: a CPU with VNNI capped there computes as one without it.
_ISA_CAPS_WITHOUT_VNNI = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


def int8_sums_saturate(cpuinfo: str | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True on an x86 CPU without VNNI/AMX (module docstring), or one capped below them; False elsewhere.

    Args:
        cpuinfo: ``/proc/cpuinfo`` text (tests); read from the system when None.
            An x86 machine whose flags cannot be read counts as saturating.
        environ: the environment (tests; default ``os.environ``): ``ONEDNN_MAX_CPU_ISA``
            (or ``DNNL_MAX_CPU_ISA``) at a level without VNNI, such as ``AVX2``, makes
            OpenVINO's kernels those of an AVX2-only CPU (how docs/bench.md measures one).
    """
    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
            return False
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return True
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    cap = kernel_isa_cap(environ)
    return (cap is not None and cap[0] in _ISA_CAPS_WITHOUT_VNNI) or not any(f in flags for f in _VNNI_FLAGS)


def requantize_weights_7bit(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Widen the Q/DQ scale of every Conv/ConvTranspose weight by 127/63 (weights in [-63, 63]).

    Only ``QuantizeLinear(initializer) -> DequantizeLinear -> Conv`` weight
    paths change; activations keep their scales. Returns ``(new model,
    weights changed)``; the input is not modified.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {i.name: i for i in g.initializer}
    count = 0
    for node in g.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2:
            continue
        dq = producer.get(node.input[1])
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or q.input[0] not in inits or q.input[1] not in inits:
            continue
        scale = numpy_helper.to_array(inits[q.input[1]]).astype(np.float32) * np.float32(127.0 / 63.0)
        name = f"{q.input[1]}/7bit"
        g.initializer.append(numpy_helper.from_array(scale, name))
        q.input[1] = dq.input[1] = name
        count += 1
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return model, count


def _keep_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """``model`` with only the graph outputs ``names`` and the nodes they need."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    keep_outputs = [o for o in g.output if o.name in names]
    producer = {o: n for n in g.node for o in n.output}
    needed: set[int] = set()
    todo = [o.name for o in keep_outputs]
    while todo:
        node = producer.get(todo.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            todo.extend(i for i in node.input if i)
    nodes = [n for n in g.node if id(n) in needed]
    del g.node[:]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend(keep_outputs)
    return model


def _compiled_cache_dir() -> str | None:
    """The folder of OpenVINO's compiled-model cache, or None (logged) when it cannot be written."""
    from enet.cache import cache_dir

    try:
        return str(cache_dir("openvino"))
    except EnetError as exc:
        log.info("OpenVINO compiles without its cache: %s", exc)
        return None


class OvBackend(OnnxModelBackend):
    """An ONNX model in OpenVINO on the CPU.

    Args:
        path: ``.onnx`` file with enet-rt metadata (float32 or Q/DQ INT8).
        input_shape: NCHW shape; must fit the model's static dims (a dynamic
            batch is fixed to it; default batch 1).
        threads: inference threads (default: every CPU of this process).
        graph: ``"cpu"`` (default) compiles the exact CPU form of the graph,
            whose uint8 labels come from the Max/Equal head
            (:func:`enet.export.cpu_graph.labels_head`; OpenVINO runs an
            ``ArgMax`` as a slow ``TopK``, and a host argmax needs the
            logits copied out), for any number of ``streams``;
            ``"as-is"`` compiles the file unchanged. Each output is compiled
            alone, the labels (else the logits) on entry and the other on
            its first call: a graph that also returns the logits converts
            their layout and copies them out at every call, which
            ``segment()`` never reads.
        int8_weights_7bit: requantize INT8 weights to 7 bits; default (None):
            on CPUs whose int8 sums saturate (:func:`int8_sums_saturate`).
        streams: frames that may run at once (``concurrency``): ``infer``
            may then be called from that many threads, each call on its own
            infer request, the threads shared among them (``enet-run
            --streams``). 1 (default) is the lowest latency.
        profile: collect OpenVINO's per-layer counters (``PERF_COUNT``) for
            :meth:`op_profile`.
        max_batch: > 1 compiles the model for 1 to ``max_batch`` frames per
            call (a dynamic batch, also of a model exported with a static
            batch of 1: OpenVINO reshapes it; the camera rig batches its
            cameras this way). ``infer`` then takes ``(n, 3, H, W)``, ``n`` up
            to ``max_batch``; results are those of ``n`` single calls.
        cache: keep OpenVINO's compiled model in the user's cache folder
            (``openvino/`` under :func:`enet.cache.cache_root`; OpenVINO keys
            each blob by the graph, the settings, the CPU and its own
            version), so the next process loads it instead of compiling: a
            car starts cold (load times: docs/bench.md). Not with ``profile``.
    """

    def __init__(self, path: str | os.PathLike[str], *, input_shape: tuple[int, int, int, int] | None = None,
                 threads: int | None = None, graph: str = "cpu", int8_weights_7bit: bool | None = None,
                 streams: int = 1, profile: bool = False, max_batch: int = 1, cache: bool = True,
                 **_: Any) -> None:
        if graph not in GRAPH_FORMS:
            raise EnetError(f"unknown graph form {graph!r}; choose {' or '.join(GRAPH_FORMS)}")
        super().__init__(path, input_shape)
        self._threads = threads
        self._graph = graph
        self._weights_7bit = int8_weights_7bit
        self.concurrency = max(1, int(streams))
        self.max_batch = max(1, int(max_batch))
        self._profile = profile
        self._cache = cache
        self._op_ms: dict[str, float] = {}
        self._op_runs = 0
        self._compiled: dict[str, queue.Queue[Any]] | None = None
        self._compile_lock = threading.Lock()
        self._threads_used: Any = None
        self.name = f"openvino-cpu-{self.precision}"

    def __enter__(self) -> OvBackend:
        ov = require("openvino")
        model = self._model
        if self._graph == "cpu":
            from enet.export.cpu_graph import cpu_form

            # the labels head in the graph for every stream count: with several streams (the camera
            # pipeline) it also beat logits out and the argmax in the pipeline's output stage (enet-run,
            # 1080 frames: 53.8-54.2 against 51.7-52.7 fps, docs/bench.md)
            model, done = cpu_form(model, "openvino")
            self._logits_name, self._labels_name = output_roles(model)
            log.debug("OpenVINO graph form of %s: %s", self.path.name, done)
        seven = int8_sums_saturate() if self._weights_7bit is None else self._weights_7bit
        if self.precision == "int8" and seven:
            model, n = requantize_weights_7bit(model)
            log.info("INT8 weights of %d layers requantized to 7 bits: this CPU's int8 kernels add products in "
                     "16 bits (no VNNI), which 8-bit weights saturate", n)
        self._core, self._form = ov.Core(), model
        self._compiled = {}
        # Each output is compiled on its own, when first asked for: a graph that also delivers the
        # logits spends a layout conversion and a 7.6 MB copy (480x360) on them at every call
        # (docs/bench.md), which segment() (labels only) never reads. The labels are compiled now.
        self._requests_for(self._labels_name or self._logits_name)
        log.info("OpenVINO %s: %s on CPU, %s threads, %d stream(s), %s", ov.__version__.split("-")[0],
                 self.path.name, self._threads_used, self.concurrency, self.precision)
        return self

    def _requests_for(self, output: str) -> queue.Queue[Any]:
        """The infer requests of the model compiled for ``output`` alone (compiled on first use)."""
        requests = self._compiled.get(output)  # every call after the first: no lock
        if requests is not None:
            return requests
        with self._compile_lock:
            requests = self._compiled.get(output)
            if requests is None:
                requests = self._compiled[output] = self._compile(output)
            return requests

    def _compile(self, output: str) -> queue.Queue[Any]:
        ov = require("openvino")
        model = self._form
        if len(model.graph.output) > 1:
            model = _keep_outputs(model, [output])
        try:
            ov_model = self._core.read_model(model.SerializeToString())
            if self.max_batch > 1:
                ov_model.reshape({ov_model.inputs[0].any_name: ov.PartialShape(
                    [ov.Dimension(1, self.max_batch), *(int(d) for d in self.input_shape[1:])])})
            elif not ov_model.inputs[0].get_partial_shape().is_static:
                ov_model.reshape({ov_model.inputs[0].any_name: list(self.input_shape)})
            config = compile_config(self._threads, self.concurrency)
            if self._profile:
                config["PERF_COUNT"] = "YES"
            elif self._cache:
                cache = _compiled_cache_dir()
                if cache is not None:
                    config["CACHE_DIR"] = cache
            compiled = self._core.compile_model(ov_model, "CPU", config)
        except RuntimeError as exc:  # OpenVINO raises RuntimeError with a multi-line report
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:200]
            raise EnetError(f"OpenVINO cannot compile {self.path} ({first})") from None
        requests: queue.Queue[Any] = queue.Queue()
        for _ in range(self.concurrency):
            requests.put(compiled.create_infer_request())
        self._threads_used = compiled.get_property("INFERENCE_NUM_THREADS")
        return requests

    def __exit__(self, *exc: object) -> None:
        self._compiled = None

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        if (self.max_batch > 1 and x.ndim == 4 and 1 <= x.shape[0] <= self.max_batch
                and tuple(x.shape[1:]) == tuple(self.input_shape[1:])):
            return np.ascontiguousarray(x, dtype=np.float32)
        return super()._check_input(x)

    def _run(self, x: np.ndarray, output: str) -> np.ndarray:
        if self._compiled is None:
            raise RuntimeError("OvBackend used outside 'with'")
        x = self._check_input(x)
        requests = self._requests_for(output)
        request = requests.get()  # a free one: ``concurrency`` calls may run at once
        try:
            # x is contiguous float32 and the call is synchronous: the request reads it in place
            # (no 2 MB copy per 480x360 frame)
            request.infer({0: x}, share_inputs=True)
            if self._profile:
                self._count_ops(request)
            # the request reuses its output buffers: copy before the next call
            return np.array(request.get_output_tensor(0).data, copy=True)
        finally:
            requests.put(request)

    def _count_ops(self, request: Any) -> None:
        for info in request.profiling_info:
            key = info.node_type if info.node_type != "Reorder" else "Reorder (layout)"
            self._op_ms[key] = self._op_ms.get(key, 0.0) + info.real_time.total_seconds() * 1e3
        self._op_runs += 1

    def op_profile(self) -> dict[str, float]:
        """Milliseconds per run by layer type (OpenVINO's counters) since ``__enter__``; needs ``profile=True``."""
        if not self._profile:
            raise RuntimeError("op_profile needs OvBackend(profile=True)")
        runs = max(1, self._op_runs)
        return {k: v / runs for k, v in sorted(self._op_ms.items(), key=lambda kv: -kv[1]) if v > 0}
