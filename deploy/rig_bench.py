"""Measure a four-camera rig on this machine (issue 31's goals; a benchmark, not a test).

    python -m enet.deploy.rig_bench                      # openvino and ort-fast, batch 4 and 1
    python -m enet.deploy.rig_bench --backends openvino --seconds 10

Four copies of the packaged CamVid clip (480x360) are played live at 10 fps
each (``--live --input-rate 10``: four cameras), through one model, and the
same four files are run as fast as possible (throughput). Printed per run:
each camera's fps out, drops and latency p50/p95, and the batch-4 to batch-1
throughput ratio per backend. The load average before and after each run is
printed with it: on a shared machine the figures mean little without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    from enet.cli import ArgumentParser, positive_float, positive_int

    p = ArgumentParser(prog="python -m enet.deploy.rig_bench",
                       description="Four cameras (the packaged clip, played live at 10 fps) through one model: "
                                   "per-camera fps, drops, latency; batch 4 against one frame at a time.")
    p.add_argument("--backends", default="openvino,ort-fast", help="comma-separated (default openvino,ort-fast)")
    p.add_argument("--cameras", type=positive_int, default=4, help="cameras (default 4)")
    p.add_argument("--rate", type=positive_float, default=10.0, help="each camera's fps (default 10)")
    p.add_argument("--seconds", type=positive_float, default=10.0, help="live run length (default 10; the clip "
                                                                            "is 101 frames)")
    return p


def _load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def _run(cams: list[Any], *, backend: str, batch: int, live: bool, rate: float, frames: int | None) -> Any:
    from enet.deploy.cli import RunConfig, run

    cfg = RunConfig(input="", cameras=cams, backend=backend, batch=batch, live=live,
                    input_rate=rate if live else None, max_frames=frames)
    return run(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from enet.cli import configure_logging
    from enet.deploy.rigfile import CameraSpec

    configure_logging(40)  # errors only: no 'goes nowhere' line per run
    clip = Path(__file__).resolve().parent / "data" / "camvid_0016E5.mp4"  # package data (3.8: no resources.files)
    tmp = Path(tempfile.mkdtemp(prefix="enet-rig-bench-"))
    try:
        paths = []
        for i in range(args.cameras):
            p = tmp / f"cam{i}.mp4"
            shutil.copy(clip, p)
            paths.append(p)
        frames = int(args.seconds * args.rate)
        print(f"machine: {os.cpu_count()} CPUs; {args.cameras} cameras of {clip.name} (480x360) at "
              f"{args.rate:g} fps, live for {frames} frames each", flush=True)
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            ratios = {}
            for batch in (args.cameras, 1):
                cams = [CameraSpec(f"cam{i}", str(p), rate=args.rate) for i, p in enumerate(paths)]
                before = _load()
                s = _run(cams, backend=backend, batch=batch, live=True, rate=args.rate, frames=frames)
                print(f"{backend} batch {batch}, live: load {before} -> {_load()}; {s.line()}", flush=True)
                for c in s.cameras:
                    t = c["total_ms"]
                    print(f"    {c['name']}: {c['fps']:.2f} fps, dropped {c['dropped']} of {c['captured']}, "
                          f"latency p50 {t.get('p50', 0):.0f} / p95 {t.get('p95', 0):.0f} ms", flush=True)
                cams = [CameraSpec(f"cam{i}", str(p)) for i, p in enumerate(paths)]
                before = _load()
                s = _run(cams, backend=backend, batch=batch, live=False, rate=args.rate, frames=None)
                ratios[batch] = s.fps
                print(f"{backend} batch {batch}, throughput: load {before} -> {_load()}; {s.frames} frames in "
                      f"{s.seconds:.1f} s: {s.fps:.1f} fps", flush=True)
            print(f"{backend}: throughput batch {args.cameras} / batch 1 = "
                  f"{ratios[args.cameras] / max(ratios[1], 1e-9):.2f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
