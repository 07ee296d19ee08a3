"""``enet-eval``: metrics of a checkpoint, ONNX model or TensorRT engine on a dataset split.

It opens a backend, so it lives in the engine layer; the metrics loop itself
is the core's :func:`enet.evaluate.evaluate`, given the backend's predictor.
Building the parser imports nothing heavy; an ``.onnx`` or ``.engine``
imports no torch.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from enet.engine.runtime.backend import BACKEND_CHOICES
from enet.cli import (ArgumentParser, add_data_root, add_dataset_kind, add_engine_precision, add_frames, add_model,
                      add_verbosity, check_writable, cli)
from enet.errors import EnetError

log = logging.getLogger("enet.eval")


def eval_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="enet-eval",
        description="Per-class IoU, mIoU, class-average and global accuracy (void excluded) of a "
                    "checkpoint (.pth), ONNX model (.onnx) or TensorRT engine (.engine) on a dataset split. "
                    "Classes come from the model; they must match the dataset's.",
        epilog="examples:\n"
               "  enet-eval --split val --json val.json      # the shipped camvid weights\n"
               "  enet-eval camvid-v1                        # the camvid weights shipped before (v1)\n"
               "  enet-eval enet.int8.onnx --frames 20\n"
               "  enet-eval enet.onnx --precision int8      # with TensorRT: first-run INT8 engine, cached\n"
               "  enet-eval runs/full/best.pth --save-predictions preds/\n"
               "  enet-eval runs/road/best.pth --data-root my_road_data --split val")
    add_model(p, positional=True)
    add_data_root(p, help="dataset folder, as for enet-train (default: ../shared/data/camvid)", camvid_alias=False)
    add_dataset_kind(p)
    p.add_argument("--split", choices=("train", "val", "test"), default="val")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="default auto: from the file type; with TensorRT and a GPU, a .pth/.onnx runs as a "
                        "TensorRT engine built on first run and cached; else an .onnx without a CUDA "
                        "onnxruntime runs in the fastest installed CPU backend (openvino, else ort-fast)")
    add_engine_precision(p, measure=True)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where a .pth model runs: auto, cpu, cuda")
    p.add_argument("--json", default=None, metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--save-predictions", default=None, metavar="DIR",
                   help="write one 8-bit class-index PNG per image (same name and size as its label)")
    add_frames(p, "--frames", "the first N frames of the split only", old=["--limit"])
    add_verbosity(p)
    return p


def check_dataset(data_root: Any, split: str, kind: str) -> None:
    """Fail in one line, before any model is loaded, when ``--data-root`` is no dataset with ``split``."""
    from enet.datasets import open_dataset

    open_dataset(data_root, kind).samples(split)


def refuse_dataset_folder(folder: str, data_root: Any) -> None:
    """``--save-predictions`` must not write into the dataset (its images or ground-truth labels)."""
    from pathlib import Path

    out = Path(folder).resolve()
    root = Path(data_root).resolve()
    # the root itself, or one of its folders (train/, valannot/, leftImg8bit/...) or anything in them:
    # the predictions folder is replaced as a whole when written
    folders = [c.resolve() for c in root.iterdir() if c.is_dir()]
    if out == root or out in root.parents or any(out == f or f in out.parents for f in folders):
        raise EnetError(f"--save-predictions {folder} is a folder of the dataset {data_root} (or holds it): its "
                        "frames or ground-truth labels would be replaced; choose a folder outside the dataset, "
                        "e.g. preds/")


@cli(eval_parser)
def main(args: argparse.Namespace) -> int:
    """enet-eval."""
    from enet.defaults import default_camvid_root
    from enet.engine.runtime.backend import evaluate_backend, open_backend
    from enet.engine.runtime.resolve import resolve
    from enet.fileio import write_text
    from enet.metrics import format_table

    if args.json:
        check_writable(args.json, what="--json")
    if args.save_predictions:
        check_writable(args.save_predictions, folder=True, what="--save-predictions")
    data_root = args.data_root or default_camvid_root()
    # the command line and the dataset first, the model (and its backend line) after
    check_dataset(data_root, args.split, args.dataset)
    if args.save_predictions:
        refuse_dataset_folder(args.save_predictions, data_root)
    choice = resolve(args.model, backend=args.backend, precision=args.precision,
                     data_root=args.calib_data or data_root, min_agreement=args.min_agreement, measure=True)
    model = str(choice.path)
    opts: dict[str, Any] = {"device": args.device} if choice.kind == "torch" else {}
    with open_backend(choice.path, choice.kind, **opts) as backend:
        log.debug("running %s in %s (%s)", model, choice.kind, choice.why)
        summary = evaluate_backend(backend, data_root, args.split, save_predictions=args.save_predictions,
                                   limit=args.frames, progress=not args.quiet, dataset=args.dataset,
                                   model_name=model)
    summary["model"] = model
    print(format_table(summary, f"{model} on {args.split} ({summary['frames']} frames, {summary['backend']}):"))
    if args.json:
        write_text(args.json, json.dumps(summary, indent=2) + "\n")
    return 0
