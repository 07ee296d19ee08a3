"""``enet-batch``: segment recordings offline on Ray Data, locally or on a cluster (docs/batch.md).

Building the parser imports nothing heavy, so ``--help`` works without Ray,
OpenCV or a backend.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from enet.cli import (ArgumentParser, add_engine_precision, add_verbosity, guard, non_negative_float, positive_float,
                      positive_int, setup_logging, size_text)

log = logging.getLogger(__name__)

PROG = "enet-batch"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=PROG,
        description="Segment recordings (videos, image folders, or list files of them; local paths or URLs) "
                    "with ENet on Ray Data: decoding in parallel tasks, the model in a pool of actors. Writes "
                    "per-frame class fractions to OUT/frames/<recording>.parquet and one summary row per "
                    "recording to OUT/summary.parquet. Resumable: recordings complete in OUT are skipped; "
                    "a failed one is reported by name and redone by the next run.",
        epilog="examples:\n"
               "  enet-batch drive1.mp4 drive2.mp4 camvid/val -o seg_out\n"
               "  enet-batch recordings.txt -o seg_out --model runs/full/best.pth --confidence --labels\n"
               "  enet-batch fleet/ -o cmp --model old.onnx --compare new.onnx     # agreement per recording\n"
               "  enet-batch s3://bucket/day1/ -o seg_out --address auto          # on a running Ray cluster\n"
               "  enet-batch clips.txt -o seg_out --address ray://head:10001 --num-gpus-per-worker 1\n"
               "exit status: 0 every recording complete; 1 some failed or are incomplete (named on stderr; "
               "run again to redo them); 2 bad command line; 130 Ctrl-C\n"
               "needs the batch extra: pip install 'enet-rt[batch]'; see docs/batch.md",
    )
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help="video file, image folder, folder of videos, or a .txt list of them (paths or URLs)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (created; resumed when it exists)")
    p.add_argument("--model", help="checkpoint (.pth), ONNX, engine, or shipped weights name "
                                   "(default: camvid, or $ENET_MODEL)")
    p.add_argument("--compare", metavar="MODEL_B",
                   help="also run this model and write per-recording agreement and class-fraction "
                        "differences (OUT/compare.parquet)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "ort", "ort-fast", "openvino", "trt"],
                   help="inference backend, chosen as by enet-run (default auto: TensorRT with a GPU, else "
                        "OpenVINO, else ONNX Runtime)")
    add_engine_precision(p)
    p.add_argument("--size", type=size_text, metavar="WxH", help="inference size (default: the model's)")
    p.add_argument("--frames", type=positive_int, metavar="N",
                   help="at most the first N frames of each recording (a quick look at a fleet)")
    p.add_argument("--labels", action="store_true", help="also write label PNGs (class ids) per frame to OUT/labels/")
    p.add_argument("--confidence", action="store_true",
                   help="per-frame uncertainty: the mean over pixels of the top softmax probability")
    g = p.add_argument_group("Ray")
    g.add_argument("--address", metavar="ADDR",
                   help="join a Ray cluster: auto, HOST:PORT (its GCS) or ray://HOST:10001 (default: start a "
                        "local Ray on this machine's CPUs)")
    g.add_argument("--workers", type=positive_int, metavar="N",
                   help="model actors (default: one per node, or one per GPU with --num-gpus-per-worker)")
    g.add_argument("--cpus-per-worker", type=positive_float, metavar="C",
                   help="CPUs each model actor reserves (default: all of a node's; 1 with GPUs)")
    g.add_argument("--num-gpus-per-worker", type=non_negative_float, default=0.0, metavar="G",
                   help="GPUs each model actor reserves (default 0: CPU inference)")
    g.add_argument("--batch", type=positive_int, default=16, metavar="N",
                   help="frames per actor call (default 16)")
    g.add_argument("--decode-tasks", type=positive_int, metavar="N",
                   help="recordings decoded at once (default: twice the model actors)")
    g.add_argument("--threads", type=positive_int, metavar="N", help="inference threads per actor (as enet-run)")
    g.add_argument("--streams", type=positive_int, metavar="N", help="frames in flight per actor (as enet-run)")
    g.add_argument("--object-store-mb", type=positive_int, default=200, metavar="MB",
                   help="object store of a local Ray (default 200)")
    g.add_argument("--cache-dir", metavar="DIR", help="where an ONNX exported on the fly is cached (as enet-run)")
    add_verbosity(p)
    return p


#: set in the supervised child: "TERMINAL_FD,STATUS_FILE" (see :func:`supervise`)
_CHILD_ENV = "ENET_BATCH_CHILD"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    child = os.environ.pop(_CHILD_ENV, None)
    if child is None and argv is None and not args.verbose:
        # the command as typed: Ray runs in a child whose own stderr (Ray's C++ log lines) goes to a file
        return supervise([sys.executable, "-m", "enet.deploy.batch.cli", *sys.argv[1:]])
    status = None
    if child is not None:
        fd, status = child.split(",", 1)
        sys.stderr = os.fdopen(int(fd), "w", buffering=1)  # the user's terminal; fd 2 is Ray's log file
    try:
        setup_logging(args, fmt="%(levelname)s %(name)s: %(message)s")
        return guard(PROG, lambda: _main(args))
    finally:
        if status is not None:
            with open(status, "w") as f:  # this process ended through here, having said why
                f.write("done\n")


def supervise(command: Sequence[str]) -> int:
    """Run ``command`` (enet-batch itself) with Ray's own output kept out of the terminal (docs/batch.md).

    Ray's C++ parts (the driver's core worker: ``core_worker.cc ... E ...``, state dumps, "Failed to push
    error to driver") write to the process's stderr file descriptor, past Python's logging. The child's
    descriptor 2 is a log file; its Python-level stderr (messages, progress, the error line) gets the
    terminal through another descriptor. A child that dies without saying why (a signal, or Ray ending the
    process under load) still ends in one line and a non-zero exit, naming the log. ``-v`` runs in-process
    with Ray's output on the terminal.
    """
    import signal
    import subprocess
    import tempfile

    fd, log_path = tempfile.mkstemp(prefix="enet-batch-ray-", suffix=".log")
    status = log_path[: -len(".log")] + ".status"
    terminal = os.dup(2)
    env = dict(os.environ, **{_CHILD_ENV: f"{terminal},{status}"})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the child, which reports it
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        child = subprocess.Popen(list(command), stderr=fd, pass_fds=(terminal,), env=env)
        # a SIGTERM for the command is the child's (it finalises and exits 143)
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        rc = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        os.close(fd)
        os.close(terminal)
    said = os.path.exists(status)
    if said:
        os.unlink(status)
        os.unlink(log_path)
        return rc
    how = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
    print(f"{PROG}: error: the run ended without a result ({how}, most likely Ray stopping under load); Ray's "
          f"output is in {log_path}; run the same command again (finished recordings are kept), -v shows Ray's "
          "output here", file=sys.stderr)
    return 1


def _main(args: argparse.Namespace) -> int:
    from enet._lazy import require
    from enet.cli import check_writable, parse_size
    from enet.deploy.batch.recordings import expand, frame_count_hint
    from enet.deploy.batch.segment import check_comparable, resolve
    from enet.deploy.batch.store import Store

    require("ray")  # without the batch extra: one line, before anything else
    require("pyarrow")
    check_writable(args.output, folder=True, what="output folder")
    recordings = expand(args.inputs)
    size = parse_size(args.size) if args.size else None
    first_run = {"data_root": args.calib_data, "min_agreement": args.min_agreement}  # a first-run TensorRT engine
    spec = resolve(args.model, backend=args.backend, size=size, cache_dir=args.cache_dir, precision=args.precision,
                   **first_run)
    spec_b = None
    if args.compare:
        spec_b = resolve(args.compare, backend=args.backend, size=spec.size, cache_dir=args.cache_dir,
                         precision=args.precision, **first_run)
        check_comparable(spec, spec_b)
    manifest = {"model_sha256": spec.sha256, "backend": spec.kind, "size": list(spec.size),
                "compare_sha256": spec_b.sha256 if spec_b else None, "labels": args.labels,
                "confidence": args.confidence, "frames": args.frames}
    store = Store(args.output, spec.classes, manifest)
    store.check()
    log.info("model %s on %s (%s)", spec.source, spec.kind, spec.why)
    from enet.deploy.batch.ray_run import BatchConfig, run_batch

    progress = not args.quiet and sys.stderr.isatty()
    cfg = BatchConfig(
        out=args.output, spec=spec, recordings=recordings, compare=spec_b, address=args.address,
        workers=args.workers, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.num_gpus_per_worker,
        batch_size=args.batch, max_frames=args.frames, decode_tasks=args.decode_tasks, labels=args.labels, confidence=args.confidence,
        threads=args.threads, streams=args.streams, object_store_mb=args.object_store_mb, progress=progress,
        verbose=bool(args.verbose),
        frame_hints={r.id: frame_count_hint(r) for r in recordings} if progress else {},
    )
    result = run_batch(cfg, store)
    s = result.stats
    if result.done:
        steady = s["fps_after_first_result"]
        print(f"{PROG}: {s['frames']} frames of {len(result.done)} recordings in {s['seconds']:.1f} s: "
              f"{s['fps']:.1f} frames/s overall" + (f" ({steady:.1f} after the first result)" if steady else "") +
              f" on {s['workers']} {spec.kind} worker(s); {s['startup_s']:.1f} s to start")
        for w, ws in s["per_worker"].items():
            print(f"{PROG}:   worker {w}: {ws['frames']} frames, {ws['fps']:.1f} frames/s")
        st, ms = s["stage_s"], s["stage_ms_per_frame"]
        print(f"{PROG}: time per stage (summed over workers): " +
              ", ".join(f"{k} {st[k]:.1f} s ({ms[k]:.1f} ms/frame)" for k in ("decode", "infer", "write")))
    if result.skipped:
        print(f"{PROG}: {len(result.skipped)} recordings already complete in {args.output}, skipped")
    print(f"{PROG}: wrote {args.output}/summary.parquet" + (" and compare.parquet" if spec_b else ""))
    bad = dict(result.failed)
    bad.update({r: "incomplete" for r in result.incomplete})
    if bad:
        names = "; ".join(f"{rid} ({why})" for rid, why in list(bad.items())[:10])
        more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
        print(f"{PROG}: error: {len(bad)} of {len(recordings)} recordings failed: {names}{more}; run the same "
              "command again to redo them", file=sys.stderr)
        return 1
    log.debug("run stats: %s", json.dumps(s))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
