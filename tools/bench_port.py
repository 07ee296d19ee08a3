#!/usr/bin/env python3
"""enet-rt's CPU paths beside a plain public ENet port in ONNX Runtime, side by side (issue 30).

One process per candidate, the candidates alternated round by round (so load
from other programs slows them alike), medians over every round's samples.
Prints the markdown table of docs/bench.md ("CPU: enet-rt beside a plain
port"), with the CPU's ISA and the load average during the run.

    # the port's model code, fetched into a scratch folder (never into this repository)
    git clone https://github.com/davidtvs/PyTorch-ENet /tmp/port/PyTorch-ENet
    .venv/bin/python tools/bench_port.py --port-src /tmp/port/PyTorch-ENet --before 089e0f3 --op-profile 20

Candidates (``--candidates``; ``NAME@before`` runs NAME on the tree of
``--before REV``, installed once into a scratch folder with pip):

* ``port``: davidtvs/PyTorch-ENet's ``ENet(12)`` (PReLU encoder, ReLU
  decoder, MaxUnpool exported by torch's dynamo exporter) in ONNX Runtime,
  default session options; end to end = BGR->RGB, /255 float, run, NumPy
  ``argmax``, uint8 labels (resized nearest to the frame when sizes differ).
  Random weights: its speed does not depend on them.
* ``api``: ``enet.Segmenter("camvid")``, everything at its defaults.
* ``ov-fp32``: ``enet.Segmenter("camvid", backend="openvino", precision="fp32")``.
* ``ort-fast``: ``enet.Segmenter("camvid", backend="ort-fast", precision="fp32")``.

Medians pool every round's samples; on a shared machine the "quietest
round" columns (the lowest of a candidate's per-process medians: other
programs' load only adds time) are the steadier comparison.

Per candidate: "inference" is the backend call that gives labels from the
network input (the port: ``session.run`` to logits), "end to end" is
``segment(frame_bgr)`` (frame in, uint8 labels at the frame's size out),
"load" is the construction (read, CPU form, compile) in a fresh process.
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FRAMES = ROOT.parent / "shared" / "data" / "camvid" / "val"
WHAT = {
    "port": "plain port (davidtvs/PyTorch-ENet) in ONNX Runtime, NumPy argmax",
    "api": "`enet.Segmenter(\"camvid\")` defaults",
    "ov-fp32": "shipped FP32 ONNX, OpenVINO CPU form",
    "ort-fast": "shipped FP32 ONNX, ONNX Runtime `ort-fast` CPU form",
}


# -- worker: one candidate in this process --------------------------------------------------------
def _frames(folder: str | None, size: tuple[int, int], count: int) -> list:
    import cv2
    import numpy as np

    files = sorted(Path(folder).glob("*.png"))[:count] if folder and Path(folder).is_dir() else []
    if files:
        out = [cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files]
        return [cv2.resize(f, (size[1], size[0])) if f.shape[:2] != size else f for f in out]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8) for _ in range(count)]


def _port_model(port_onnx: str, threads: int):
    import cv2
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    t0 = time.perf_counter()
    sess = ort.InferenceSession(port_onnx, so, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - t0
    name = sess.get_inputs()[0].name
    h, w = sess.get_inputs()[0].shape[2:]

    def infer(x):
        return sess.run(None, {name: x})[0]

    def prep(frame):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if rgb.shape[:2] != (h, w):
            rgb = cv2.resize(rgb, (w, h))
        return np.ascontiguousarray((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1))[None]

    def segment(frame):
        labels = infer(prep(frame)).argmax(1)[0].astype(np.uint8)
        if labels.shape != frame.shape[:2]:
            labels = cv2.resize(labels, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
        return labels

    return load, "ort-cpu-fp32 (port)", prep, infer, segment


def _our_model(name: str, threads: int):
    import cv2
    import enet

    kwargs = {"api": {}, "ov-fp32": {"backend": "openvino", "precision": "fp32"},
              "ort-fast": {"backend": "ort-fast", "precision": "fp32"}}[name]
    t0 = time.perf_counter()
    seg = enet.Segmenter("camvid", threads=threads, **kwargs)
    load = time.perf_counter() - t0
    backend = seg._backend

    def prep(frame):
        return seg._pre(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))[None]

    return load, seg.backend_name, prep, backend.infer_labels, seg.segment


def profile_worker(args: argparse.Namespace) -> None:
    """Per-op milliseconds per run (ONNX Runtime's profiler, OpenVINO's counters) of one of our candidates."""
    import numpy as np

    import enet
    from enet.engine.runtime.backend import open_backend

    kwargs = {"api": {}, "ov-fp32": {"backend": "openvino", "precision": "fp32"},
              "ort-fast": {"backend": "ort-fast", "precision": "fp32"}}[args.worker]
    with enet.Segmenter("camvid", threads=args.threads, **kwargs) as seg:
        path, kind = seg.resolution.path, seg.resolution.kind
        x = seg._pre(_frames(args.frames, (args.height, args.width), 1)[0][:, :, ::-1].copy())[None]
    with open_backend(path, kind, profile=True, threads=args.threads) as b:
        for _ in range(args.iters):
            b.infer_labels(x)
        ops = b.op_profile()
    print(json.dumps({"ops": ops, "backend": b.name, "total": float(np.sum(list(ops.values())))}))


def worker(args: argparse.Namespace) -> None:
    if args.profile:
        profile_worker(args)
        return
    size = (args.height, args.width)
    if args.worker == "port":
        load, backend, prep, infer, segment = _port_model(args.port_onnx, args.threads)
    else:
        load, backend, prep, infer, segment = _our_model(args.worker, args.threads)
    frames = _frames(args.frames, size, 8)
    inputs = [prep(f) for f in frames]
    for i in range(args.warmup):
        segment(frames[i % len(frames)])
        infer(inputs[i % len(inputs)])
    inf, e2e = [], []
    for i in range(args.iters):
        t0 = time.perf_counter()
        infer(inputs[i % len(inputs)])
        t1 = time.perf_counter()
        segment(frames[i % len(frames)])
        t2 = time.perf_counter()
        inf.append((t1 - t0) * 1e3)
        e2e.append((t2 - t1) * 1e3)
    import enet

    print(json.dumps({"load_s": load, "infer_ms": inf, "e2e_ms": e2e, "backend": backend,
                      "enet": str(Path(enet.__file__).parent)}))


# -- orchestration --------------------------------------------------------------------------------
def export_port(src: Path, out: Path, size: tuple[int, int]) -> None:
    """Export davidtvs/PyTorch-ENet's ENet(12) (random weights) with torch's dynamo exporter."""
    import torch

    path = next((p for p in (src / "models" / "enet.py", src / "enet.py", src / "port_enet.py") if p.is_file()), None)
    if path is None:
        sys.exit(f"bench_port: no models/enet.py under {src}; clone https://github.com/davidtvs/PyTorch-ENet there")
    spec = importlib.util.spec_from_file_location("port_enet", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    model = mod.ENet(12).eval()
    x = torch.rand(1, 3, *size)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (x,), str(out), dynamo=True, opset_version=18, input_names=["input"],
                      output_names=["logits"])


def install_before(rev: str, site: Path) -> None:
    """``git archive REV`` of this repository, pip-installed (no deps) into ``site``."""
    if (site / "enet").is_dir():
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(f"git -C {ROOT} archive {rev} | tar -x -C {tmp}", shell=True, check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(site), tmp], check=True)


def cpu_isa() -> str:
    try:
        from enet.bench.probes import cpu_isa as isa

        return isa()
    except ImportError:
        return "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def run_worker(cand: str, args: argparse.Namespace, before_site: Path | None, profile: bool = False) -> dict:
    name, _, tree = cand.partition("@")
    env = dict(os.environ)
    if tree == "before":
        env["PYTHONPATH"] = str(before_site)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--iters", str(args.iters),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--size", args.size,
           "--port-onnx", str(args.port_onnx), "--frames", str(args.frames or "")] + (["--profile"] if profile else [])
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if res.returncode:
        sys.exit(f"bench_port: {cand} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port-src", type=Path, default=Path("/tmp/port"),
                   help="a copy of davidtvs/PyTorch-ENet (its models/enet.py is imported from there)")
    p.add_argument("--port-onnx", type=Path, default=None,
                   help="the port's exported ONNX (default: exported into --work)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "enet-bench-port")
    p.add_argument("--before", default=None, help="git revision whose tree runs the NAME@before candidates")
    p.add_argument("--candidates", default=None,
                   help="comma-separated (default: port, api, ov-fp32, ort-fast, and each @before with --before)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", default="480x360", help="WxH the frames and the port run at")
    p.add_argument("--frames", default=str(DEFAULT_FRAMES) if DEFAULT_FRAMES.is_dir() else "",
                   help="folder of PNG frames (default: CamVid val; generated frames when absent)")
    p.add_argument("--json", type=Path, default=None, help="also write every sample here")
    p.add_argument("--op-profile", type=int, default=0, metavar="N",
                   help="also print each of our candidates' per-op profile over N runs (0: none)")
    p.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    if args.worker:
        worker(args)
        return 0

    args.port_onnx = args.port_onnx or args.work / f"port_{args.size}.onnx"
    if not args.port_onnx.is_file():
        export_port(args.port_src, args.port_onnx, (args.height, args.width))
    base = ["port", "api", "ov-fp32", "ort-fast"]
    cands = args.candidates.split(",") if args.candidates else (
        base + [f"{c}@before" for c in base[1:]] if args.before else base)
    before_site = None
    if any(c.endswith("@before") for c in cands):
        if not args.before:
            sys.exit("bench_port: @before candidates need --before REV")
        before_site = args.work / f"before-{args.before}"
        install_before(args.before, before_site)
    samples: dict[str, dict] = {c: {"infer_ms": [], "e2e_ms": [], "load_s": [], "rounds": []} for c in cands}
    loads = [os.getloadavg()[0]]
    t_start = time.time()
    for r in range(args.rounds):
        order = cands if r % 2 == 0 else cands[::-1]
        for c in order:
            out = run_worker(c, args, before_site)
            for k in ("infer_ms", "e2e_ms"):
                samples[c][k] += out[k]
            samples[c]["load_s"].append(out["load_s"])
            samples[c]["rounds"].append((statistics.median(out["infer_ms"]), statistics.median(out["e2e_ms"])))
            samples[c]["backend"] = out["backend"]
            loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.rounds} done, load average {loads[-1]:.2f}", file=sys.stderr)
    def quiet(c: str, k: int) -> float:
        """The candidate's quietest round: the lowest of its per-process medians (others' load only adds)."""
        return min(r[k] for r in samples[c]["rounds"])

    port_e2e = statistics.median(samples["port"]["e2e_ms"]) if "port" in samples else None
    port_inf = statistics.median(samples["port"]["infer_ms"]) if "port" in samples else None
    port_q = (quiet("port", 0), quiet("port", 1)) if "port" in samples else None

    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} CPUs, ISA {cpu_isa()}; {args.size}, batch 1, "
          f"{args.threads} threads; {args.rounds} rounds x {args.iters} iterations per candidate, one process "
          f"each, alternated; 1-min load average {min(loads):.1f}-{max(loads):.1f} during the run "
          f"({time.strftime('%Y-%m-%d %H:%M', time.localtime(t_start))}, {time.time() - t_start:.0f} s)\n")
    print("| candidate | what | backend | inference median ms | end to end median ms | "
          "port's end to end / this | port's inference / this | quietest round: inference / end to end ms | "
          "quietest rounds: port's end to end / this | load + compile s (median) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in cands:
        s = samples[c]
        name, _, tree = c.partition("@")
        inf, e2e = statistics.median(s["infer_ms"]), statistics.median(s["e2e_ms"])
        what = WHAT[name] + (f" (tree of {args.before}, before)" if tree else "")
        r_e2e = f"{port_e2e / e2e:.2f}x" if port_e2e else "-"
        r_inf = f"{port_inf / inf:.2f}x" if port_inf else "-"
        q_inf, q_e2e = quiet(c, 0), quiet(c, 1)
        r_q = f"{port_q[1] / q_e2e:.2f}x" if port_q else "-"
        print(f"| `{c}` | {what} | `{s['backend']}` | {inf:.1f} | {e2e:.1f} | "
              f"{r_e2e} | {r_inf} | {q_inf:.1f} / {q_e2e:.1f} | {r_q} | {statistics.median(s['load_s']):.2f} |")
    profiles = {}
    if args.op_profile:
        pargs = argparse.Namespace(**{**vars(args), "iters": args.op_profile})
        for c in cands:
            if c.partition("@")[0] in ("api", "ort-fast"):
                profiles[c] = run_worker(c, pargs, before_site, profile=True)
        print("\nPer-op time, ms per run (ONNX Runtime's profiler / OpenVINO's per-layer counters, "
              f"{args.op_profile} runs, top 8; counters add their own overhead):\n")
        print("| candidate | backend | total | top ops |")
        print("|---|---|---:|---|")
        for c, pr in profiles.items():
            top = sorted(pr["ops"].items(), key=lambda kv: -kv[1])[:8]
            cells = ", ".join(f"{k} {v:.1f} ({100 * v / pr['total']:.0f}%)" for k, v in top)
            print(f"| `{c}` | `{pr['backend']}` | {pr['total']:.1f} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "loads": loads, "isa": cpu_isa(), "profiles": profiles}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
