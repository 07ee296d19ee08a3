"""``make gpu-check``: what this toolkit can check on a CUDA machine in under 8 minutes.

With only PyTorch (with CUDA) present:

1. the ``gpu`` tests that need no TensorRT (cuda-python buffers, events and
   CUDA graphs when cuda-python is installed; PyTorch on CUDA, FP32 and FP16);
2. ``enet-bench --machine desktop`` with ``torch`` and ``torch-fp16`` at
   640x360, 1280x720 and 1920x1080, beside the paper's Titan X column.

With TensorRT present, also:

3. the ``gpu and trt`` tests (engine builds for every precision path,
   runner, first-run cache);
4. ``enet-bench`` with ``trt-fp32``, ``trt-fp16`` and ``trt-int8`` at the
   same resolutions: each engine built and compared with ONNX Runtime by
   :mod:`enet.engine.trt.build`, then timed with trtexec's definitions.

Each step runs in its own process under a time limit taken from one
overall budget; what did not fit is reported as not run. One summary table
ends the output. Exit status 0 when every step that ran passed, 1 otherwise
(also when no GPU is visible).

Never run in this project so far (no GPU was available): see docs/engines.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESOLUTIONS = "640x360,1280x720,1920x1080"
BUDGET_S = 470.0  # under 8 minutes, with the probes and the summary
BENCH_ARGS = ["--machine", "desktop", "--size", RESOLUTIONS, "--warmup-s", "0.5", "--duration-s", "1",
              "--min-iterations", "10", "--calib-frames", "32", "--no-plot"]


@dataclass
class Step:
    """One command of the check."""

    name: str
    argv: list[str]
    limit_s: float
    status: str = "not run"  # passed | failed | timed out | not run
    seconds: float = 0.0
    detail: str = ""
    report: Path | None = None  # bench.json of a bench step
    extra: dict[str, Any] = field(default_factory=dict)


def probe() -> dict[str, Any]:
    """What this machine has: GPU, PyTorch with CUDA, cuda-python, TensorRT (imports nothing it cannot)."""
    from enet._lazy import available
    from enet.engine.runtime.cuda import gpu_available

    facts: dict[str, Any] = {"gpu": gpu_available(), "torch": None, "torch_cuda": False, "gpu_name": None,
                             "cuda_python": available("cuda.bindings.runtime") or available("cuda.cudart"),
                             "tensorrt": None}
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_cuda"] = bool(torch.cuda.is_available())
        if facts["torch_cuda"]:
            facts["gpu_name"] = torch.cuda.get_device_name(0)
            facts["gpu"] = True
    except Exception:  # noqa: BLE001 - a broken torch counts as none
        pass
    if available("tensorrt"):
        from enet.engine.trt.build import installed_features

        facts["tensorrt"] = str(installed_features().version)
    return facts


def plan_steps(facts: dict[str, Any], out: Path, python: str = sys.executable) -> list[Step]:
    """The steps this machine can run, in order."""
    pytest = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests"]
    bench = [python, "-m", "enet.bench.cli", *BENCH_ARGS]
    steps = [Step("gpu tests without TensorRT", [*pytest, "-m", "gpu and not trt"], 90)]
    if facts["torch_cuda"]:
        steps.append(Step("enet-bench torch FP32/FP16", [*bench, "--backend", "torch,torch-fp16",
                                                         "-o", str(out / "bench-torch")], 80,
                          report=out / "bench-torch" / "bench.json"))
    if facts["tensorrt"]:  # the numbers first; the tests take what is left of the budget
        steps.append(Step("enet-bench TensorRT FP32/FP16/INT8 (build, verify, time)",
                          [*bench, "--backend", "trt-fp32,trt-fp16,trt-int8", "-o", str(out / "bench-trt")], 220,
                          report=out / "bench-trt" / "bench.json"))
        steps.append(Step("gpu tests with TensorRT", [*pytest, "-m", "gpu and trt"], 150))
    return steps


def run_step(step: Step, left_s: float, cwd: Path) -> None:
    """Run ``step`` within ``min(step.limit_s, left_s)`` seconds; fills status, seconds, detail."""
    limit = min(step.limit_s, left_s)
    if limit < 20:
        step.status, step.detail = "not run", "time budget spent"
        return
    print(f"gpu-check: {step.name} (limit {limit:.0f} s): {' '.join(step.argv[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(step.argv, cwd=cwd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        step.seconds = time.perf_counter() - t0
        step.status, step.detail = "timed out", f"after {limit:.0f} s"
        return
    step.seconds = time.perf_counter() - t0
    tail = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if ln.strip()]
    step.status = "passed" if proc.returncode == 0 else "failed"
    step.detail = tail[-1][:160] if tail else ""
    sys.stdout.write("".join(f"    {ln}\n" for ln in tail[-12:]))


def bench_rows(report: dict[str, Any]) -> list[list[str]]:
    """Summary rows of one bench.json: backend, size, GPU compute, copies, latency, e2e, paper Titan X."""
    rows = []
    for r in report.get("records", []):
        size = f"{r['width']}x{r['height']}"
        if r["status"] != "ok":
            rows.append([r["backend"], size, r["status"], "", "", "", "", "", (r.get("reason") or "")[:60]])
            continue
        t = r["timing"]
        g = t.get("gpu") or {}
        tx = (r.get("paper") or {}).get("titanx") or {}
        cell = (lambda k: f"{g[k]['mean']:.2f}" if k in g else "-")  # noqa: E731
        rows.append([r["backend"], size, f"{t['compute']['mean']:.2f}", cell("h2d"), cell("d2h"), cell("latency"),
                     f"{t['e2e']['mean']:.2f}", f"{tx['ms']:.0f}" if tx.get("ms") else "-",
                     f"{tx['ratio']:.2f}x" if tx.get("ratio") is not None else "-"])
    return rows


def summary(facts: dict[str, Any], steps: Sequence[Step]) -> str:
    """The one table printed at the end."""
    lines = [f"GPU: {facts.get('gpu_name') or 'NVIDIA GPU'}; torch {facts.get('torch') or '-'} "
             f"(CUDA {'yes' if facts.get('torch_cuda') else 'no'}); cuda-python "
             f"{'yes' if facts.get('cuda_python') else 'no'}; TensorRT {facts.get('tensorrt') or 'not installed'}", "",
             "| Step | Status | Time s | Note |", "|---|---|---:|---|"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {s.detail} |" for s in steps]
    rows = []
    for s in steps:
        if s.report is not None and s.report.is_file():
            rows += bench_rows(json.loads(s.report.read_text()))
    if rows:
        lines += ["", "| Backend | WxH | GPU compute ms | H2D ms | D2H ms | Latency ms | E2E ms | Paper Titan X ms "
                      "| vs Titan X (GPU compute) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.gpu_check",
        description="GPU check in under 8 minutes: gpu tests and enet-bench on PyTorch/CUDA, and on TensorRT when "
                    "it is installed. Prints one summary table.",
        epilog="examples:\n  make gpu-check\n  python -m tools.gpu_check --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", type=Path, default=Path("gpu-check"), help="bench reports (default gpu-check/)")
    p.add_argument("--budget-s", type=float, default=BUDGET_S, help=f"overall time limit (default {BUDGET_S:.0f})")
    p.add_argument("--dry-run", action="store_true", help="print the steps for this machine and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    facts = probe()
    steps = plan_steps(facts, args.output.resolve())
    if args.dry_run:
        for s in steps:
            print(f"{s.name} (<= {s.limit_s:.0f} s): {' '.join(s.argv[1:])}")
        return 0
    if not facts["gpu"]:
        print("gpu-check: error: no NVIDIA GPU visible (no driver device node, no CUDA in PyTorch); run it on a "
              "CUDA machine", file=sys.stderr)
        return 1
    if not facts["torch_cuda"]:
        print("gpu-check: this PyTorch has no CUDA (a CPU build?); the torch steps are left out. For them, make the "
              "venv with a CUDA torch: make venv TORCH='torch==2.13.0' on a machine whose pip gets CUDA wheels",
              file=sys.stderr)
    start = time.perf_counter()
    try:
        for s in steps:
            run_step(s, args.budget_s - (time.perf_counter() - start), root)
    except KeyboardInterrupt:
        print("gpu-check: interrupted", file=sys.stderr)
        return 130
    print()
    print(summary(facts, steps))
    ran = [s for s in steps if s.status != "not run"]
    return 0 if ran and all(s.status == "passed" for s in ran) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
