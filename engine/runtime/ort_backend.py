"""ONNX Runtime backend: runs ``.onnx`` (FP32, FP16 or INT8 Q/DQ) on the CPU,
or with the CUDA / TensorRT execution providers when the installed
onnxruntime has them."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from enet._lazy import require
from enet.engine.runtime.onnx_model import OnnxModelBackend
from enet.errors import EnetError

log = logging.getLogger(__name__)

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def resolve_providers(providers: str | Sequence[str], available: Sequence[str]) -> list[str]:
    """``auto|cpu|cuda|tensorrt`` or an explicit list -> providers to ask ONNX Runtime for.

    ``auto`` takes CUDA when present, else the CPU (the TensorRT provider is
    opt-in: its first run builds an engine, which takes minutes).

    Raises:
        EnetError: an explicitly named provider that this onnxruntime lacks.
    """
    if isinstance(providers, str):
        key = providers.lower()
        if key == "auto":
            return _PROVIDERS["cuda"] if "CUDAExecutionProvider" in available else _PROVIDERS["cpu"]
        if key not in _PROVIDERS:
            raise EnetError(f"unknown ONNX Runtime provider {providers!r}; choose auto, cpu, cuda or tensorrt")
        wanted = _PROVIDERS[key]
    else:
        wanted = list(providers)
    missing = [p for p in wanted if p not in available]
    if missing:
        raise EnetError(
            f"ONNX Runtime provider {missing[0]} is not available here (have {', '.join(available)}); "
            "install onnxruntime-gpu or use providers='cpu'"
        )
    return wanted


def _ort_fast_skip(machine: str | None = None) -> tuple[str, ...]:
    """Rewrites of the ``ort-fast`` form that only pay where ONNX Runtime has its NCHWc layout.

    MLAS sets an NCHWc block size only on x86-64 (8, 16 with AVX-512;
    ``onnxruntime/core/mlas/lib/platform.cpp``), and ONNX Runtime adds its
    NCHWc transformer only then; elsewhere ``nchwc_prelu`` would be five
    plain ops where ``max_prelu``'s two do, and ``pad_conv`` a convolution
    where a copy does.
    """
    import platform

    arch = (machine or platform.machine()).lower()
    return () if arch in ("x86_64", "amd64", "x64") else ("pad_conv", "nchwc_prelu")


#: ONNX Runtime's first release that reads ``session.intra_op.spin_duration_us`` (absent from 1.25's
#: library strings, present in 1.26's); before it the key is ignored and threads spin for the default time.
_SPIN_DURATION_SINCE = (1, 26)
#: How long an idle intra-op thread spins before it sleeps, where the runtime lets it be set: long enough
#: to span the gap between two ops of one run, short enough to yield the core between runs (docs/bench.md).
SPIN_US = 10


def spin_config(version: str, spin: bool) -> dict[str, str]:
    """Session config entries for the ``ort-fast`` intra-op threads.

    ``spin``: spin briefly between ops (``SPIN_US``) where this ONNX Runtime
    (``version``) can bound the spin; otherwise, and with ``spin`` False,
    the threads sleep as soon as they are idle. Measured on 2 CPUs
    (docs/bench.md): the bounded spin is about 15% faster alone and about
    even beside one busy thread, sleeping wins when the cores are
    oversubscribed (the camera pipeline asks for it), and ONNX Runtime's
    unbounded default spin doubles the median under load.
    """
    parts = []
    for p in version.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    if spin and tuple(parts) >= _SPIN_DURATION_SINCE:
        return {"session.intra_op.allow_spinning": "1", "session.intra_op.spin_duration_us": str(SPIN_US)}
    return {"session.intra_op.allow_spinning": "0"}


class OrtBackend(OnnxModelBackend):
    """An ONNX model in ONNX Runtime.

    Args:
        path: ``.onnx`` file with enet-rt metadata.
        providers: ``auto|cpu|cuda|tensorrt`` or a list of provider names.
        input_shape: NCHW shape; must fit the model's static dims (a dynamic
            batch is filled from it; default batch 1).
        threads: intra-op threads (default: the CPUs this process may use,
            enet.cpus); with ``streams`` > 1, shared among the streams.
        streams: frames that may run at once (``concurrency``): ``infer``
            may be called from that many threads, each run getting
            ``threads // streams`` intra-op threads (ONNX Runtime's ``run``
            is thread-safe). 1 (default) is the lowest latency; the camera
            pipeline uses 2 on a 2-core CPU (enet.deploy.backends).
        profile: record per-op kernel times (ONNX Runtime's profiler) for
            :meth:`op_profile`; slows inference a little.
        graph: ``"as-is"`` (default) runs the file unchanged with default
            session options; ``"cpu"`` is the ``ort-fast`` backend: the
            exact CPU form of the graph (:func:`enet.export.cpu_graph.cpu_form`:
            select-form unpooling; on x86-64 PReLU as ``Relu(x) + Relu(-x) * -s``
            and channel pads as 1x1 convolutions, which ONNX Runtime keeps in
            its NCHWc layout, elsewhere PReLU as ``Max(x, x * s)``; the graph's
            ArgMax), with intra-op threads as ``spin`` says.
        spin: ``graph="cpu"`` only. True (default): idle intra-op threads
            spin for 10 us between ops where ONNX Runtime can bound the spin
            (1.26 and later), else sleep at once (:func:`spin_config`); False:
            they sleep at once, for callers whose own threads share the cores
            (the camera pipeline). ONNX Runtime's unbounded default spin takes
            the cores from the threads with work on a busy machine (the
            measurements: docs/bench.md).
    """

    def __init__(self, path: str | os.PathLike[str], *, providers: str | Sequence[str] = "auto",
                 input_shape: tuple[int, int, int, int] | None = None, threads: int | None = None,
                 graph: str = "as-is", profile: bool = False, streams: int = 1, display_name: str | None = None,
                 spin: bool = True, **_: Any) -> None:
        if graph not in ("as-is", "cpu"):
            raise EnetError(f"unknown graph form {graph!r}; choose as-is or cpu")
        super().__init__(path, input_shape)
        self._graph = graph
        self._providers = providers
        self._threads = threads
        self.concurrency = max(1, int(streams))
        self._session: Any = None
        self._input_name = ""
        self._profile = profile
        self._spin = bool(spin)
        self._prefix = "ort-fast" if graph == "cpu" else "ort"
        self.name = f"{self._prefix}-{self.precision}"
        # what messages call the file: a temp file being checked before it becomes the output is named as that
        self._shown = display_name or self.path.name

    def __enter__(self) -> OrtBackend:
        ort = require("onnxruntime")
        providers = resolve_providers(self._providers, ort.get_available_providers())
        so = ort.SessionOptions()
        so.log_severity_level = 3
        from enet.cpus import default_threads

        so.intra_op_num_threads = max(1, int(self._threads or default_threads()) // self.concurrency)
        if self._profile:
            import tempfile

            self._profile_dir = tempfile.mkdtemp(prefix="enet-ort-profile-")
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(self._profile_dir) / "ort")
        source: str | bytes = str(self.path)
        if self._graph == "cpu":
            for key, value in spin_config(ort.__version__, self._spin).items():
                so.add_session_config_entry(key, value)
            from enet.export.cpu_graph import cpu_form

            model, done = cpu_form(self._model, "ort-fast", skip=_ort_fast_skip())
            log.debug("ONNX Runtime CPU form of %s: %s", self.path.name, done)
            from enet.engine.runtime.onnx_info import output_roles

            self._logits_name, self._labels_name = output_roles(model)
            source = model.SerializeToString()
        try:
            self._session = ort.InferenceSession(source, so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0][:200]
            raise EnetError(f"ONNX Runtime cannot load {self.path} ({first})") from None
        self._input_name = self._session.get_inputs()[0].name
        used = self._session.get_providers()[0]
        self.name = f"{self._prefix}-{used.replace('ExecutionProvider', '').lower()}-{self.precision}"
        if self.precision == "int8" and used == "CPUExecutionProvider":
            log.info("%s: ONNX Runtime's CPU provider may run this INT8 Q/DQ model slower than the FP32 one "
                     "(see docs/bench.md); OpenVINO runs it faster (--backend openvino, "
                     "pip install 'enet-rt[openvino]')", self._shown)
        return self

    def __exit__(self, *exc: object) -> None:
        self._session = None

    def op_profile(self) -> dict[str, float]:
        """Kernel milliseconds per run by op type since ``__enter__`` (needs ``profile=True``; ends profiling)."""
        import json
        import shutil

        if self._session is None or not self._profile:
            raise RuntimeError("op_profile needs an entered OrtBackend(profile=True)")
        path = Path(self._session.end_profiling())
        try:
            events = json.loads(path.read_text())
        finally:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
        runs = sum(1 for e in events if e.get("name") == "model_run") or 1
        totals: dict[str, float] = {}
        for e in events:
            if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
                op = e.get("args", {}).get("op_name", "?")
                totals[op] = totals.get(op, 0.0) + e["dur"] / 1000.0
        return {k: v / runs for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}

    def _run(self, x: np.ndarray, output: str) -> np.ndarray:
        if self._session is None:
            raise RuntimeError("OrtBackend used outside 'with'")
        return self._session.run([output], {self._input_name: self._check_input(x)})[0]
