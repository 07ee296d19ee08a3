#!/usr/bin/env python3
"""ONNX Runtime graph forms of one model side by side: one process per form, taking turns (issue 30).

Each candidate is ``NAME=REWRITE,REWRITE,...`` (names from
``enet.export.cpu_graph``, applied in order to the model; an empty list is
the file as exported) or ``NAME=@RUNTIME`` (``cpu_graph.FORMS[RUNTIME]``).
Every worker builds its form, opens it as the ``ort-fast`` backend does
(intra-op threads that do not spin; ``--spin`` lets them spin) and times
``session.run`` of the last output (the labels) on random 480x360 input:
wall-clock and process CPU time (both threads) per run. The candidates take
turns round by round, the order reversed every other round, so load from
other programs falls on all of them alike. Not a test: nothing here asserts
a time.

    .venv/bin/python tools/ort_form_ab.py --rounds 8 --iters 20 \\
        before=select_unpool,mul_unpool,max_prelu after=@ort-fast
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "enet" / "pretrained" / "enet_camvid.onnx"


def worker(model: str, rewrites: str, iters: int, threads: int, spin: bool) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    from enet.export import cpu_graph

    m = onnx.load(model)
    names = cpu_graph.FORMS[rewrites[1:]] if rewrites.startswith("@") else [r for r in rewrites.split(",") if r]
    for name in names:
        m, _ = cpu_graph._REWRITES[name](m)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    out = [sess.get_outputs()[-1].name]
    for i in range(5):
        sess.run(out, {inp.name: xs[i % 4]})
    wall, cpu = [], []
    for i in range(iters):
        c0, t0 = time.process_time(), time.perf_counter()
        sess.run(out, {inp.name: xs[i % 4]})
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    print(json.dumps({"wall": wall, "cpu": cpu}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("candidates", nargs="*", help="NAME=REWRITE,... or NAME=@RUNTIME")
    p.add_argument("--model", default=str(SHIPPED))
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spin", action="store_true", help="let intra-op threads spin (ONNX Runtime's default)")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.model, a.worker[1], a.iters, a.threads, a.spin)
        return 0
    if not a.candidates:
        p.error("name at least one candidate: NAME=REWRITE,... or NAME=@RUNTIME")
    cands = [c.partition("=") for c in a.candidates]
    wall: dict[str, list[list[float]]] = {n: [] for n, _, _ in cands}
    cpu: dict[str, list[float]] = {n: [] for n, _, _ in cands}
    loads = []
    for r in range(a.rounds):
        for name, _, rewrites in (cands if r % 2 == 0 else cands[::-1]):
            cmd = [sys.executable, __file__, "--worker", name, rewrites, "--model", a.model, "--iters", str(a.iters),
                   "--threads", str(a.threads)] + (["--spin"] if a.spin else [])
            res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            wall[name].append(res["wall"])
            cpu[name].extend(res["cpu"])
            loads.append(os.getloadavg()[0])
    first = cands[0][0]
    base = statistics.median(x for r in wall[first] for x in r)
    print(f"{a.rounds} rounds x {a.iters} runs, {a.threads} threads{', spinning' if a.spin else ''}; "
          f"1-min load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"| form | median ms | quietest round ms | CPU ms per run | median vs {first} |")
    print("|---|---:|---:|---:|---:|")
    for name, _, _ in cands:
        med = statistics.median(x for r in wall[name] for x in r)
        quiet = min(statistics.median(r) for r in wall[name])
        print(f"| {name} | {med:.1f} | {quiet:.1f} | {statistics.median(cpu[name]):.1f} | {base / med:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
