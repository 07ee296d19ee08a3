"""``enet-export``: checkpoint -> ONNX, with a TensorRT compatibility report and a parity check.

Building the parser imports nothing heavy (no torch, onnx or onnxruntime), so
``enet-export --help`` works anywhere; the export itself lives in
:mod:`enet.export.onnx`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from enet.cli import (MAX_SIDE, ArgumentParser, add_alias, add_data_root, add_frames, add_model, add_output,
                      add_verbosity, check_writable, guard, parse_size, positive_int, setup_logging)

DEFAULT_VERIFY = 3
#: the opsets the exporter writes (export/onnx.py's MIN_OPSET..MAX_OPSET; checked at parse time: exit 2)
OPSETS = (13, 20)


def opset(text: str) -> int:
    """argparse type: an ONNX opset the exporter writes."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected an opset number {OPSETS[0]}..{OPSETS[1]}, "
                                         "e.g. 17") from None
    if not OPSETS[0] <= value <= OPSETS[1]:
        raise argparse.ArgumentTypeError(f"{text}: expected {OPSETS[0]}..{OPSETS[1]} (17 for TensorRT >= 8.5, "
                                         "13 for TensorRT 8.0/8.2)")
    return value


def default_output(model: str | None) -> str:
    """Where ``enet-export`` writes without ``-o``: ``model.onnx`` beside a ``.pth`` (``$ENET_MODEL``'s too);
    ``NAME.onnx`` in the current folder for a shipped name (``camvid.onnx``)."""
    import os
    from pathlib import Path

    spec = model or os.environ.get("ENET_MODEL") or "camvid"
    p = Path(spec)
    if p.suffix.lower() == ".pth" or p.is_file():
        return str(p.with_suffix(".onnx"))
    return f"{p.name}.onnx"


def multiple_of_8(text: str) -> int:
    """argparse type: a height or width, a positive multiple of 8 up to MAX_SIDE."""
    value = positive_int(text)
    if value % 8 or value > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text}: expected a multiple of 8 up to {MAX_SIDE}, "
                                         f"e.g. {max(8, round(value / 8) * 8)}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="enet-export",
        description="Export an ENet checkpoint to ONNX. The default graph uses only ops TensorRT's ONNX "
                    "parser runs natively (exact indices-free unpooling); ONNX Runtime is checked against "
                    "PyTorch on real val frames of --data-root (CamVid by default) before the file is written.",
        epilog="examples:\n"
               "  enet-export runs/full/best.pth                      # writes runs/full/best.onnx beside it\n"
               "  enet-export -o enet.onnx                            # the shipped camvid weights\n"
               "  enet-export runs/full/best.pth -o enet.onnx --size 960x720\n"
               "  enet-export best.pth -o enet.op13.onnx --opset 13   # TensorRT 8.0/8.2 (JetPack 4.6)\n"
               "  enet-export best.pth -o enet.labels.onnx --labels --verify-frames 0",
    )
    add_model(p, positional=True, help="enet-rt checkpoint (.pth) or shipped weights name; default: the reference "
                                      "model camvid (or $ENET_MODEL)")
    add_output(p, "ONNX file to write (atomically; missing folders are created); default: MODEL.onnx beside a "
                  ".pth, NAME.onnx in the current folder for a shipped name (camvid.onnx)")
    p.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                   help="input size, multiples of 8, e.g. 960x720 (default: the checkpoint's)")
    add_alias(p, "--height", "--size WxH", "height", type=multiple_of_8)
    add_alias(p, "--width", "--size WxH", "width", type=multiple_of_8)
    p.on_parsed(_merge_size)
    b = p.add_mutually_exclusive_group()
    b.add_argument("--batch", type=positive_int, default=1, help="static batch size (default 1)")
    b.add_argument("--dynamic-batch", action="store_true", help="symbolic batch axis N")
    p.add_argument("--opset", type=opset, default=None,
                   help="ONNX opset, 13..20 (default 17: TensorRT >= 8.5; 13 for TensorRT 8.0/8.2, JetPack 4.6)")
    p.add_argument("--unpool", choices=("mask", "native"), default="mask",
                   help="mask (default): exact, TensorRT-native; native: ONNX MaxPool indices + MaxUnpool, "
                        "for ONNX Runtime/OpenVINO only")
    p.add_argument("--labels", action="store_true",
                   help="add an int32 'labels' output (N, H, W): in-graph argmax over classes")
    p.add_argument("--no-simplify", action="store_true", help="skip onnx-simplifier")
    add_frames(p, "--verify-frames", f"compare ONNX Runtime with PyTorch on N val frames of --data-root before "
                                     f"writing (default {DEFAULT_VERIFY}; 0 skips)",
               default=DEFAULT_VERIFY, zero=True, old=["--verify"])
    add_data_root(p, help="dataset whose val/ frames --verify-frames uses (default: $ENET_CAMVID or "
                          "../shared/data/camvid; random frames when absent)")
    add_verbosity(p)
    return p


def _merge_size(parser: ArgumentParser, args: argparse.Namespace) -> None:
    """``--size WxH`` and the deprecated ``--height``/``--width`` -> ``args.height``, ``args.width``."""
    if args.size is not None:
        if getattr(args, "height", None) is not None or getattr(args, "width", None) is not None:
            parser.error("give the size once: --size WxH (not with --height/--width)")
        args.height, args.width = args.size
    args.height, args.width = getattr(args, "height", None), getattr(args, "width", None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args, default=logging.WARNING, fmt="%(levelname)s %(name)s: %(message)s")
    return guard("enet-export", lambda: _export(args), interrupted="interrupted; nothing written")


def _export(args: argparse.Namespace) -> int:
    from enet._lazy import require, require_training_python

    if args.output is None:
        args.output = default_output(args.model)
        if not args.quiet:
            print(f"no -o given: writing {args.output}", file=sys.stderr)
    check_writable(args.output, what="-o")
    require_training_python("enet-export")
    require("torch")
    from enet.export.onnx import export_onnx, format_report

    result = export_onnx(
        args.model, args.output, height=args.height, width=args.width, batch=args.batch,
        dynamic_batch=args.dynamic_batch, opset=args.opset, unpool=args.unpool,
        simplify=not args.no_simplify, labels=args.labels, verify=args.verify_frames,
        camvid_root=args.data_root,
    )
    if not args.quiet:
        print(format_report(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
