"""``enet-bench``: ENet latency per backend x resolution, against the paper.

Building the parser imports nothing heavy (no torch, onnxruntime, tensorrt),
so ``enet-bench --help`` works anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enet.cli import (ArgumentParser, add_alias, add_data_root, add_frames, add_model, add_output, add_verbosity,
                      check_writable, guard, non_negative_float, non_negative_int, positive_float, positive_int,
                      setup_logging)
from enet.errors import EnetError

log = logging.getLogger("enet.bench")

DEFAULT_RESOLUTIONS = "480x320,640x360,1280x720,1920x1080"
DEFAULT_BACKENDS = "torch,ort,ort-int8,ort-fast,openvino,openvino-int8,trt-fp32,trt-fp16,trt-int8"


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """``"480x320,640x360"`` (width x height, as the paper writes them) -> ``[(480, 320), ...]``."""
    out: list[tuple[int, int]] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        w, sep, h = item.lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
            raise EnetError(f"bad size {item!r} in --size; expected WIDTHxHEIGHT, e.g. 640x360")
        if int(w) % 8 or int(h) % 8:
            raise EnetError(
                f"size {item} is not a multiple of 8 in width and height; ENet needs both divisible "
                f"by 8, e.g. {max(8, round(int(w) / 8) * 8)}x{max(8, round(int(h) / 8) * 8)}"
            )
        if (int(w), int(h)) not in out:
            out.append((int(w), int(h)))
    if not out:
        raise EnetError("--size is empty; e.g. --size 640x360")
    return out


def _resolutions_arg(text: str) -> str:
    """argparse type: ``--size`` (a list) checked by :func:`parse_resolutions`, kept as written."""
    try:
        parse_resolutions(text)
    except EnetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="enet-bench",
        description="Benchmark ENet per backend and resolution (trtexec-style timing) and compare with "
                    "the paper's Table 2 (speed) and Table 3 (size). Writes bench.json, bench.md, bench.png. "
                    "--machine desktop needs an NVIDIA GPU and --machine jetson a Jetson (--device cuda: either): "
                    "a bench never reports a device it is not running on.",
        epilog="examples:\n"
               "  enet-bench --device cpu --backend torch,ort,ort-int8,ort-fast,openvino,openvino-int8 \\\n"
               "      --size 480x360 --threads 2 --rounds 5 --val-frames 101 -o out/bench-cpu\n"
               "  enet-bench --model enet.onnx --backend ort,ort-int8 --iterations 50 -o bench-onnx\n"
               "  enet-bench --machine jetson --backend trt-fp32,trt-fp16,trt-int8   # on the Jetson\n"
               "  enet-bench --val-frames 101 --data-root ../shared/data/camvid",
    )
    p.add_argument("--device", type=_device, default="auto", metavar="{auto,cpu,cuda}",
                   help="where to run, as in every command: cpu, cuda (an NVIDIA GPU), auto detects "
                        "(desktop and jetson: deprecated, use --machine)")
    p.add_argument("--machine", choices=("desktop", "jetson"), default=None,
                   help="the kind of CUDA machine the report names, checked to be this one: desktop (an NVIDIA GPU) "
                        "or jetson (default: detected)")
    p.on_parsed(_merge_machine)
    add_model(p, positional=False,
              help="enet-rt checkpoint (.pth) or shipped weights name, or an ONNX model (.onnx: ort/trt "
                   "backends at its own size, no PyTorch needed); default: camvid (or $ENET_MODEL)")
    p.add_argument("--backend", default=DEFAULT_BACKENDS, metavar="LIST",
                   help=f"comma-separated, from: {DEFAULT_BACKENDS} (default: all; unavailable ones are skipped)")
    add_alias(p, "--backends", "--backend", "backend")
    p.add_argument("--size", type=_resolutions_arg, default=None, metavar="WxH[,WxH...]",
                   help=f"sizes, multiples of 8 (default: the paper's {DEFAULT_RESOLUTIONS}; an ONNX model's own "
                        "size)")
    add_alias(p, "--resolutions", "--size", "size", type=_resolutions_arg)
    p.add_argument("--batch", type=positive_int, default=1, help="frames per inference (default 1, as the paper)")
    p.add_argument("--warmup-s", type=non_negative_float, default=0.5, help="warm-up seconds per run (default 0.5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--duration-s", type=positive_float, default=None,
                   help="measure at least this many seconds (and --min-iterations; default 2)")
    g.add_argument("--iterations", type=positive_int, default=None, help="measure exactly N iterations instead")
    p.add_argument("--min-iterations", type=positive_int, default=5,
                   help="with --duration-s: at least this many iterations (default 5)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU inference threads (default: runtime's)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="split each measurement into N turns, taken in turn by every backend at a resolution, so "
                        "load from other programs falls on all alike (default 1: one backend after the other)")
    p.add_argument("--op-profile", type=non_negative_int, default=0, metavar="N",
                   help="also profile N inferences per ONNX Runtime/OpenVINO backend with the runtime's own "
                        "profiler and report milliseconds per op type (default 0: off)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="TensorRT: capture the enqueue in a CUDA graph and time its launch (trtexec --useCudaGraph)")
    add_frames(p, "--val-frames", "also report val mIoU of each backend on N val frames of --data-root, spaced "
                                  "evenly over the split (default 0: off)", default=0, zero=True, old=["--accuracy-frames"])
    add_frames(p, "--calib-frames", "train frames of --data-root for INT8 calibration when an INT8 ONNX or engine "
                                    "is built (default 300, as enet-build-engine)", default=300,
               old=["--calib-images"])
    add_data_root(p, help="dataset the model was trained on (val for frames and accuracy, train for calibration); "
                          "default ENET_CAMVID or ../shared/data/camvid")
    p.add_argument("--max-cv", type=positive_float, default=0.10, metavar="RATIO",
                   help="warn when std/mean latency exceeds this (default 0.10)")
    add_alias(p, "--cv-threshold", "--max-cv", "max_cv", type=positive_float)
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    add_output(p, "report folder (default bench-results; missing folders are created); built ONNX/engines are "
                  "cached in the user's cache folder ($ENET_CACHE_DIR or ~/.cache/enet-rt)",
               type=Path, default=Path("bench-results"))
    add_verbosity(p)
    return p


def _device(text: str) -> str:
    """argparse type of --device: auto, cpu, cuda; the former machine kinds (desktop, jetson) with a warning."""
    if text in ("desktop", "jetson"):
        print(f"enet-bench: warning: --device {text} is deprecated; use --machine {text}", file=sys.stderr)
        return text
    if text not in ("auto", "cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from 'auto', 'cpu', 'cuda')")
    return text


def _merge_machine(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--machine KIND`` (with --device auto or cuda) -> the machine kind the bench runs on and reports."""
    if args.machine is None:
        return
    if args.device not in ("auto", "cuda", args.machine):
        parser.error(f"--machine {args.machine} is a CUDA machine; it does not go with --device {args.device}")
    args.device = args.machine


def _validate(args: argparse.Namespace) -> None:
    """What can be checked before any work: the device is the one named, the report folder is writable."""
    from enet.bench import probes

    if args.device == "jetson" and not probes.is_jetson():
        raise EnetError("--machine jetson: this machine is not a Jetson (no /etc/nv_tegra_release); "
                        "run there, or leave --machine out")
    if args.device == "desktop" or (args.device == "cuda" and not probes.is_jetson()):
        from enet.engine.runtime.cuda import gpu_available

        if not gpu_available():
            raise EnetError(f"--device {args.device} needs an NVIDIA GPU, and none is visible here (no /dev/nvidia0); "
                            "use --device cpu or auto")
    check_writable(args.output, folder=True, what="report folder -o")


def _say(msg: str) -> None:
    """Progress for the user on stderr (the CLI's own output, not library logging)."""
    print(msg, file=sys.stderr, flush=True)


def _model_facts(path: Path) -> dict[str, Any]:
    if path.suffix.lower() == ".onnx":
        return _onnx_facts(path)
    from enet._lazy import require

    require("torch")  # a .pth in a runtime-only install: one line naming the extra, not a traceback
    from enet.checkpoint import load_model
    from enet.fileio import sha256_file
    from enet.model import count_flops, count_parameters

    from enet.bench import paper

    model, meta = load_model(path)
    w, h = paper.TABLE3_RESOLUTION
    return {"path": str(path), "sha256": sha256_file(path), "params": count_parameters(model),
            "gflops": count_flops(model, h, w) / 1e9, "flops_convention": "conv/deconv multiply-adds x 2",
            "input_size": meta.get("input_size"), "metrics": meta.get("metrics")}


def _onnx_facts(path: Path) -> dict[str, Any]:
    """What an ONNX model tells without PyTorch: no parameter or FLOP count (BN is folded into its weights)."""
    from enet.engine.runtime.onnx_info import load_onnx, read_meta
    from enet.fileio import sha256_file

    meta = read_meta(load_onnx(path, check=False), str(path))
    return {"path": str(path), "sha256": sha256_file(path), "params": None, "gflops": None,
            "flops_convention": None, "input_size": meta.get("input_size"), "metrics": meta.get("metrics")}


def _backend_options(spec: Any, device_kind: str, shape: tuple[int, int, int, int], threads: int | None) -> dict[str, Any]:
    opts: dict[str, Any] = {"input_shape": shape}
    if threads:
        opts["threads"] = threads
    if spec.kind == "torch":
        opts["device"] = "cpu" if device_kind == "cpu" else "auto"
        opts["precision"] = spec.precision
    elif spec.kind == "ort":  # auto: the CUDA provider when this onnxruntime has it
        opts["providers"] = "cpu" if device_kind == "cpu" else "auto"
    elif spec.kind == "ort-fast":  # its graph form is chosen for the CPU provider
        opts["providers"] = "cpu"
    return opts


def _device_stages(spec: Any, backend: Any, cuda_graph: bool) -> Any:
    """The backend's device stages when it runs on a GPU (trtexec-style timing), else None."""
    if not backend.device_timing:
        return None
    return backend.device_stages(cuda_graph=cuda_graph) if backend.cuda_graph else backend.device_stages()


def _timing_line(tag: str, timing: dict[str, Any]) -> str:
    c, e = timing["compute"], timing["e2e"]
    if timing.get("compute_kind") == "gpu":
        g = timing["gpu"]
        return (f"{tag}: GPU compute {c['mean']:.2f} ms mean (median {c['median']:.2f}, p99 {c['p99']:.2f}), "
                f"H2D {g['h2d']['mean']:.2f}, D2H {g['d2h']['mean']:.2f}, enqueue {g['enqueue']['mean']:.2f}, "
                f"latency {g['latency']['mean']:.2f}, e2e {e['mean']:.2f} ms, {e['fps']:.1f} fps, "
                f"{timing['iterations']} it" + (", CUDA graph" if g.get("cuda_graph") else "")
                + (", zero-copy" if g.get("zero_copy") else ""))
    return (f"{tag}: compute {c['mean']:.2f} ms mean (median {c['median']:.2f}, p99 {c['p99']:.2f}), "
            f"e2e {e['mean']:.2f} ms, {e['fps']:.1f} fps, {timing['iterations']} it")


def _pick_timer(spec: Any, backend: Any) -> Any:
    from enet.bench.harness import PerfCounterTimer, gpu_timer

    if spec.kind == "trt" or "cuda" in str(getattr(backend, "name", "")):
        return gpu_timer()
    return PerfCounterTimer()


@dataclass
class Job:
    """One backend x resolution: what it runs, its entered backend, inputs, timer and the parts measured so far.

    ``error`` is ``(status, reason)`` once it cannot go on (``skipped`` or ``failed``).
    """

    si: int
    ri: int
    spec: Any
    shape: tuple[int, int, int, int]
    tag: str
    parts: list[Any] = field(default_factory=list)
    error: tuple[str, str] | None = None
    artifact: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    backend: Any = None
    pipe: Any = None
    inputs: list[Any] = field(default_factory=list)
    source: str | None = None
    stages: Any = None
    timer: Any = None
    load_s: float | None = None   # open + enter the backend (read, CPU form, compile or cache load)

    def record_args(self) -> tuple[Any, ...]:
        """The leading arguments of :func:`enet.bench.report.make_record`."""
        n, _, h, w = self.shape
        return (self.spec.name, self.spec.kind, self.spec.precision, w, h, n)


def _op_profile(job: Job, iterations: int) -> dict[str, float]:
    """Milliseconds per inference by op type, averaged over ``iterations`` runs (the first included), from
    the runtime's own profiler in a second instance of the backend."""
    from enet.engine.runtime.backend import open_backend

    x = job.pipe.preprocess(job.inputs[0])
    with open_backend(job.artifact, job.spec.kind, profile=True, **job.options) as b:
        for _ in range(iterations):
            b.infer(x)
        return {k: round(v, 3) for k, v in b.op_profile().items()}


def _result_line(job: Job, timing: dict[str, Any], rec: dict[str, Any], device_kind: str,
                 accuracy: dict[str, Any] | None, power: dict[str, Any] | None) -> str:
    """The console line of one measured backend x resolution."""
    from enet.bench import paper

    line = _timing_line(job.tag, timing)
    if timing.get("load_s") is not None:
        line += f", load + compile {timing['load_s']:.2f} s"
    if job.spec.kind != "trt" and device_kind == "cpu":
        from enet.bench.probes import cpu_isa

        line += f" [{cpu_isa()}]"
    ref = paper.comparison_device(device_kind)
    if ref and rec["paper"].get(ref):
        line += f", {rec['paper'][ref]['ratio']:.2f}x paper {ref} latency"
    if accuracy:
        line += f", mIoU {accuracy['miou']:.3f}"
    if power and power.get("power_w") is not None:
        line += f", {power['power_w']:.2f} W, {power['energy_j_per_frame'] * 1000:.0f} mJ/frame"
    return line


#: (status, reason) pairs already printed in this process: a backend missing here (TensorRT) is said once,
#: not once per backend and size; bench.md's "Skipped" section lists them all
_SAID: set[tuple[str, str]] = set()


def _say_once(line: str, key: tuple[str, str], again: str) -> None:
    """``line`` the first time ``key`` comes up; after that only at -v (``again``, a debug line)."""
    if key in _SAID:
        log.debug("%s", again)
        return
    _SAID.add(key)
    _say(line + ("; the same for the other backends and sizes it applies to" if key[0] == "skipped" else ""))


def _finish(job: Job, args: argparse.Namespace, camvid: Path, device_kind: str, sampler: Any) -> dict[str, Any]:
    """The record of one measured backend x resolution (timing, accuracy, power), and its console line."""
    from enet.bench import harness, report
    from enet.engine.runtime.backend import evaluate_backend

    if job.error:
        status, reason = job.error
        _say_once(f"{job.tag}: {status} ({reason})", (status, reason),
                  f"{job.spec.name} {job.shape[3]}x{job.shape[2]}: {status} (the same reason)")
        return report.make_record(*job.record_args(), status=status, reason=reason)
    m = harness.merge_measurements(job.parts)
    timing = harness.summarize(m, cv_threshold=args.max_cv)
    timing["input"] = job.source
    timing["backend_name"] = getattr(job.backend, "name", job.spec.name)
    timing["load_s"] = job.load_s
    power = sampler.summary(frames=m.frames, seconds=m.measure_s) if sampler else None
    accuracy = None
    if args.val_frames:
        try:
            s = evaluate_backend(job.backend, camvid, "val", limit=args.val_frames, spaced=True)
            accuracy = {k: s[k] for k in ("miou", "global_acc", "frames", "split", "eval_size")}
        except EnetError as exc:
            _say(f"{job.tag}: skipped ({exc})")
            return report.make_record(*job.record_args(), status="skipped", reason=str(exc))
    rec = report.make_record(*job.record_args(), status="ok", artifact=str(job.artifact), timing=timing,
                             accuracy=accuracy, power=power)
    if args.op_profile and job.spec.kind in ("ort", "ort-fast", "openvino"):
        rec["op_profile"] = _op_profile(job, args.op_profile)
    _say(_result_line(job, timing, rec, device_kind, accuracy, power))
    for wmsg in timing["warnings"]:
        log.warning("%s: %s", job.tag, wmsg)
    return rec


@dataclass
class Inputs:
    """What a bench runs on, checked before anything is measured."""

    specs: list[Any]
    model_path: Path
    model: dict[str, Any]  # the Table 3 facts of the model
    artifacts: Any
    resolutions: list[tuple[int, int]]
    camvid: Path
    camvid_for_frames: Path | None  # None: no val split, random frames


def _inputs(args: argparse.Namespace) -> Inputs:
    """Backends, model, sizes and dataset of the bench; a broken model or a bad dataset fails here."""
    from enet.bench import backends as bk
    from enet.bench.frames import has_val
    from enet.defaults import default_camvid_root, what_is_wrong
    from enet.engine.runtime.resolve import model_file

    specs = bk.parse_backends(args.backend)
    model_path = model_file(args.model)
    if not model_path.is_file():
        raise EnetError(f"model {model_path} {what_is_wrong(model_path)}; pass --model with an enet-rt checkpoint "
                        "(.pth) or ONNX model (.onnx)")
    camvid = Path(args.data_root or default_camvid_root())
    artifacts = bk.Artifacts(model_path, camvid=camvid, calib_images=args.calib_frames, say=_say)  # refuses other kinds
    model = _model_facts(model_path)  # a broken model fails here, before anything is printed
    if args.size is None and artifacts.onnx_shape is not None:
        resolutions = [(int(artifacts.onnx_shape[3]), int(artifacts.onnx_shape[2]))]
    else:
        resolutions = parse_resolutions(args.size or DEFAULT_RESOLUTIONS)
    if not has_val(camvid):
        if args.val_frames:
            raise EnetError(f"--val-frames needs a val split, not found under {camvid}; pass --data-root")
        return Inputs(specs, model_path, model, artifacts, resolutions, camvid, None)
    if args.val_frames:  # the model's classes must be the dataset's, before any timing
        _check_classes(model_path, artifacts.kind, camvid)
    return Inputs(specs, model_path, model, artifacts, resolutions, camvid, camvid)


def _check_classes(model_path: Path, kind: str, camvid: Path) -> None:
    from enet.datasets import open_dataset

    if kind == "ort":
        from enet.engine.runtime.onnx_info import load_onnx, read_meta

        meta = read_meta(load_onnx(model_path, check=False), str(model_path))
    else:
        from enet.checkpoint import load_checkpoint

        meta = load_checkpoint(model_path)["meta"]
    open_dataset(camvid).check_model(meta, str(model_path))


def _device_kind(args: argparse.Namespace) -> str:
    """``--device`` as a machine kind: auto detects; cuda is the GPU machine this is (desktop or jetson)."""
    from enet.bench import probes

    if args.device == "auto":
        kind = probes.detect_device_kind()
    elif args.device == "cuda":
        kind = "jetson" if probes.is_jetson() else "desktop"
    else:
        kind = args.device
    if args.rounds > 1 and kind == "jetson":
        raise EnetError("--rounds above 1 cannot attribute tegrastats power to one backend; use --rounds 1 on a Jetson")
    return kind


def _measure_config(args: argparse.Namespace) -> Any:
    from enet.bench import harness

    duration = 0.0 if args.iterations is not None else (2.0 if args.duration_s is None else args.duration_s)
    min_iter = args.iterations if args.iterations is not None else args.min_iterations
    return harness.MeasureConfig(warmup_s=args.warmup_s, duration_s=duration, min_iterations=min_iter,
                                 max_iterations=args.iterations)


class Session:
    """Measures every backend x resolution of one bench and collects their records."""

    def __init__(self, args: argparse.Namespace, inputs: Inputs, kind: str, config: Any, sampler: Any) -> None:
        from enet.bench import backends as bk

        self.args, self.inputs, self.kind, self.config, self.sampler = args, inputs, kind, config, sampler
        self.records: list[tuple[int, int, dict[str, Any]]] = []  # (spec index, resolution index, record)
        self.reasons = [bk.unavailable_reason(spec, kind) for spec in inputs.specs]

    def prepare(self, stack: contextlib.ExitStack, si: int, ri: int) -> Job | None:
        """Artifact, entered backend and inputs of one backend x resolution; None (recorded) if it cannot run."""
        from enet.bench import harness
        from enet.bench.frames import timing_batches
        from enet.engine.runtime.backend import open_backend
        from enet.transforms import Preprocess

        ins, args = self.inputs, self.args
        spec, (w, h) = ins.specs[si], ins.resolutions[ri]
        total = len(ins.specs) * len(ins.resolutions)
        job = Job(si, ri, spec, (args.batch, 3, h, w),
                  tag=f"[{si * len(ins.resolutions) + ri + 1}/{total}] {spec.name} {w}x{h}")
        reason = self.reasons[si] or ins.artifacts.unsupported(spec, h, w, args.batch)
        if reason:
            return self._give_up(job, "skipped", reason)
        try:
            job.artifact = ins.artifacts.get(spec, h, w, args.batch)
            job.options = _backend_options(spec, self.kind, job.shape, args.threads)
            t_load = time.perf_counter()
            job.backend = stack.enter_context(open_backend(job.artifact, spec.kind, **job.options))
            job.load_s = time.perf_counter() - t_load
            pre = Preprocess.from_meta(job.backend.meta, (h, w))
            job.pipe = harness.Pipeline(pre.batch, job.backend.infer, harness.argmax_postprocess)
            job.inputs, job.source = timing_batches(pre, args.batch, camvid=ins.camvid_for_frames)
            job.stages = _device_stages(spec, job.backend, args.cuda_graph)
            if job.stages is None:
                job.timer = _pick_timer(spec, job.backend)
                stack.callback(getattr(job.timer, "close", lambda: None))  # before the backend exits
        except (EnetError, ImportError) as exc:
            # ImportError: a backend or builder module this toolkit does not have (yet)
            return self._give_up(job, "skipped", str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, go on with the others
            log.exception("%s failed", job.tag)
            return self._give_up(job, "failed", f"{type(exc).__name__}: {exc}")
        return job

    def _give_up(self, job: Job, status: str, reason: str) -> None:
        job.error = (status, reason)
        self.record(job)
        return None

    def turn(self, job: Job, r: int) -> None:
        """Measure one turn (of ``--rounds``) of ``job``."""
        from enet.bench import harness
        from enet.bench.device_timing import measure_device

        if job.error:
            return
        turn_config = harness.round_config(self.config, self.args.rounds, r == 0)
        hooks = {"on_measure_start": self.sampler.mark if self.sampler else None,
                 "on_measure_end": self.sampler.end if self.sampler else None}
        pipe = job.pipe
        try:
            if job.stages is not None:  # GPU: trtexec-style device timing
                part = measure_device(job.stages, pipe.preprocess, pipe.postprocess, job.inputs, turn_config,
                                      **hooks)
            else:
                part = harness.measure(pipe, job.inputs, turn_config, job.timer, **hooks)
            job.parts.append(part)
        except EnetError as exc:
            job.error = ("skipped", str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, go on with the others
            log.exception("%s failed", job.tag)
            job.error = ("failed", f"{type(exc).__name__}: {exc}")

    def record(self, job: Job) -> None:
        self.records.append((job.si, job.ri, _finish(job, self.args, self.inputs.camvid, self.kind, self.sampler)))

    def run_all(self) -> list[dict[str, Any]]:
        """Every backend x resolution; returns the records in (backend, resolution) order."""
        n_specs = len(self.inputs.specs)
        for ri in range(len(self.inputs.resolutions)):
            if self.args.rounds == 1:  # one backend at a time: only one is loaded (GPU memory on a Jetson)
                for si in range(n_specs):
                    with contextlib.ExitStack() as stack:
                        job = self.prepare(stack, si, ri)
                        if job is not None:
                            self.turn(job, 0)
                            self.record(job)
                continue
            with contextlib.ExitStack() as stack:  # every backend loaded, measured in turns
                jobs = [j for j in (self.prepare(stack, si, ri) for si in range(n_specs)) if j is not None]
                for r in range(self.args.rounds):
                    for job in jobs:
                        self.turn(job, r)
                for job in jobs:
                    self.record(job)
        return [rec for _, _, rec in sorted(self.records, key=lambda t: (t[0], t[1]))]


def _config_record(args: argparse.Namespace, inputs: Inputs, config: Any) -> dict[str, Any]:
    """The bench's settings as bench.json keeps them."""
    return {"backends": [s.name for s in inputs.specs], "resolutions": [f"{w}x{h}" for w, h in inputs.resolutions],
            "batch": args.batch, "warmup_s": config.warmup_s, "duration_s": config.duration_s,
            "min_iterations": config.min_iterations, "max_iterations": config.max_iterations,
            "threads": args.threads, "rounds": args.rounds, "op_profile": args.op_profile,
            "accuracy_frames": args.val_frames, "calib_images": args.calib_frames,
            "cv_threshold": args.max_cv, "cuda_graph": args.cuda_graph,
            "artifacts_built": inputs.artifacts.built}


def _make_output_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnetError(f"cannot create the output folder {out_dir} ({exc.strerror}); pass another -o") from None


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The bench: check the inputs, describe the machine, measure every backend x size, write the reports."""
    from enet.bench import probes, report
    from enet.bench.tegrastats import TegrastatsSampler

    inputs = _inputs(args)
    kind = _device_kind(args)
    device = probes.device_info(kind, threads=args.threads)
    label = probes.device_label(device)
    versions = probes.versions()
    warnings: list[str] = list(device.get("warnings", []))
    for w in warnings:
        log.warning("%s", w)
    _say(f"device: {label}")
    _say("versions: " + ", ".join(f"{k} {v or '-'}" for k, v in versions.items()))
    _say(report.table3_text(inputs.model))
    config = _measure_config(args)
    out_dir = Path(args.output)
    _make_output_folder(out_dir)

    sampler = None
    if kind == "jetson":
        sampler = TegrastatsSampler().start()
        if sampler.error:
            warnings.append(sampler.error)
            log.warning("%s", sampler.error)
    try:
        records = Session(args, inputs, kind, config, sampler).run_all()
    finally:
        if sampler:
            sampler.stop()

    doc = report.make_document(records, device=device, device_label=label, versions=versions, model=inputs.model,
                               config=_config_record(args, inputs, config),
                               command="enet-bench " + shlex.join(list(argv)), warnings=warnings)
    paths = report.write_reports(doc, out_dir, plot=not args.no_plot)
    _say("wrote " + ", ".join(str(p) for p in paths.values()))
    for line in report.cpu_summary_lines(records):
        _say(line)
    if not any(r["status"] == "ok" for r in records):
        raise EnetError("no backend could run here (see the skipped list in the report); "
                        "pass --backend torch,ort or install the missing runtime")
    return 1 if any(r["status"] == "failed" for r in records) else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging(args, fmt="%(levelname)s %(name)s: %(message)s")

    def body() -> int:
        _validate(args)
        _SAID.clear()
        return run(args, argv)

    return guard("enet-bench", body)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
