"""Regenerate the ONNX files shipped beside a named checkpoint: ``python -m tools.pretrained_build camvid``.

For the registered weights ``NAME`` (:data:`enet.weights.WEIGHTS`) this
re-exports the checkpoint to ``<stem>.onnx`` (FP32, with the in-graph
``labels`` output; ``enet-export``), converts it to the calibrated INT8 Q/DQ
``<stem>.int8.onnx`` (``enet-build-engine --int8 -o X.onnx --max-drop 0.5``:
calibrated on the dataset's train frames; if it loses more than 0.5 val mIoU
points its input and output layers stay in float32), measures both with
``enet-eval`` on every val frame, in the default backend and in each CPU
backend installed (ONNX Runtime, OpenVINO: an INT8 model rounds differently
in each), and rewrites the ``exports`` section of ``<stem>.json`` (file,
sha256, val mIoU, the backend that measured it, per-backend val mIoU, the
frame count and the commands).
Every file is written atomically into the package's ``pretrained/`` folder
(``--output-dir`` elsewhere, for tests). Needs torch (export) and the dataset.

After replacing a checkpoint: update its entry's sha256 in
:mod:`enet.weights`, run this command, commit the three files.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

from enet.cli import ArgumentParser, add_verbosity, cli, positive_int

log = logging.getLogger("enet.pretrained_build")

#: the most val mIoU points the shipped INT8 model may lose against FP32 (issue 21)
MAX_DROP = "0.5"


def cpu_backends() -> tuple[str, ...]:
    """The CPU backends installed here that measure an ONNX: ``ort``, and ``openvino`` when it imports."""
    from enet._lazy import available

    return ("ort",) + (("openvino",) if available("openvino") else ())


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m tools.pretrained_build",
        description="Re-export a shipped checkpoint to FP32 and calibrated INT8 ONNX, measure both on the "
                    "val split and rewrite its JSON metadata (enet/pretrained/).",
        epilog="examples:\n"
               "  python -m tools.pretrained_build camvid\n"
               "  python -m tools.pretrained_build camvid --data-root ../shared/data/camvid")
    p.add_argument("name", help="registered weights name (enet.weights.WEIGHTS), e.g. camvid")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="dataset: train frames calibrate INT8, val frames measure (default: ../shared/data/camvid)")
    p.add_argument("--calib-frames", type=positive_int, default=None, metavar="N",
                   help="INT8 calibration frames (default: enet-build-engine's)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="measure on the first N val frames only (tests; the shipped numbers use all)")
    p.add_argument("--output-dir", default=None, metavar="DIR",
                   help="write here instead of the package's pretrained/ folder (tests)")
    add_verbosity(p)
    return p


def _run(main, argv: list[str]) -> None:
    from enet.errors import EnetError

    code = main(argv)
    if code:
        raise EnetError(f"{' '.join(argv[:2])}... failed (exit {code}); see the message above")


def _base_doc(weights, pth: Path, existing: Path) -> dict:
    """The JSON beside the checkpoint: its name, file, sha256 and metadata (read now), and any earlier keys (recipe)."""
    from enet.checkpoint import load_checkpoint
    from enet.fileio import sha256_file
    from enet.transforms import DEFAULT_RESIZE

    doc = json.loads(existing.read_text(encoding="utf-8")) if existing.is_file() else {}
    meta = {"resize": DEFAULT_RESIZE, **load_checkpoint(pth)["meta"]}
    base = {"name": weights.name, "file": weights.filename, "sha256": sha256_file(pth),
            "recipe": doc.get("recipe", "(describe how these weights were trained)"), "meta": meta}
    return {**base, **{k: v for k, v in doc.items() if k not in base}}


@cli(build_parser)
def main(args: argparse.Namespace) -> int:
    from enet.defaults import default_camvid_root
    from enet.engine.cli import main as build_engine_main
    from enet.engine.eval_cli import main as eval_main
    from enet.engine.runtime.resolve import resolve
    from enet.export.cli import main as export_main
    from enet.fileio import sha256_file, write_text
    from enet.weights import get_weights, pretrained_dir

    weights = get_weights(args.name)
    pth = weights.path()
    data_root = args.data_root or str(default_camvid_root())
    out_dir = Path(args.output_dir) if args.output_dir else pretrained_dir()
    stem = weights.filename.rsplit(".", 1)[0]
    files = {"fp32": f"{stem}.onnx", "int8": f"{stem}.int8.onnx"}
    quiet = ["-q"] if args.quiet else []
    given = ["--data-root", args.data_root] if args.data_root else []  # recorded as typed (default: omitted)
    calib = ["--calib-frames", str(args.calib_frames)] if args.calib_frames else []
    commands = {
        "fp32": ["enet-export", args.name, "-o", files["fp32"], "--labels"] + given,
        "int8": ["enet-build-engine", files["fp32"], "--int8", "-o", files["int8"], "--max-drop", MAX_DROP]
                + given + calib,
    }
    exports = {}
    with tempfile.TemporaryDirectory(prefix=".pretrained-build-", dir=out_dir) as tmp:
        t = Path(tmp)
        log.info("exporting %s to FP32 ONNX", pth.name)
        _run(export_main, [str(pth), "-o", str(t / files["fp32"]), "--labels", "--data-root", data_root] + quiet)
        log.info("calibrating INT8 on the train frames of %s", data_root)
        # --limit: the conversion's FP32 vs INT8 report and each measurement use the first N val frames
        val_frames = ["--val-frames", str(args.limit)] if args.limit else []
        frames = ["--frames", str(args.limit)] if args.limit else []
        _run(build_engine_main, [str(t / files["fp32"]), "--int8", "-o", str(t / files["int8"]),
                                 "--data-root", data_root, "--max-drop", MAX_DROP]
             + val_frames + calib + quiet)
        backends = cpu_backends()
        for precision, name in files.items():
            log.info("measuring %s on the val split", name)
            # the backend enet-eval picks by default is measured once, and doubles as its CPU backend's figure
            default = resolve(t / name, measure=True).kind
            by_backend = {}
            for backend in dict.fromkeys((default,) + backends):
                report = t / f"{precision}.{backend}.json"
                _run(eval_main, [str(t / name), "--data-root", data_root, "--json", str(report), "-q",
                                 "--backend", backend] + frames)
                by_backend[backend] = json.loads(report.read_text())
            summary = by_backend[default]
            exports[precision] = {
                "file": name, "sha256": sha256_file(t / name), "val_miou": round(summary["miou"], 6),
                "val_frames": summary["frames"], "measured_with": f"enet-eval {name} (backend {summary['backend']})",
                "val_miou_by_backend": {b: round(by_backend[b]["miou"], 6) for b in backends},
                "command": " ".join(commands[precision]),
            }
        for name in files.values():
            shutil.copyfile(t / name, t / (name + ".final"))
            (t / (name + ".final")).replace(out_dir / name)
    json_path = out_dir / f"{stem}.json"
    doc = _base_doc(weights, pth, pretrained_dir() / f"{stem}.json")
    doc["exports"] = exports
    doc["exports_command"] = f"python -m tools.pretrained_build {args.name}"
    write_text(json_path, json.dumps(doc, indent=1) + "\n")
    for precision, e in exports.items():
        others = ", ".join(f"{b} {v * 100:.2f}" for b, v in e["val_miou_by_backend"].items())
        print(f"{e['file']}: val mIoU {e['val_miou'] * 100:.2f} % on {e['val_frames']} frames ({e['measured_with']}; "
              f"{others})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
