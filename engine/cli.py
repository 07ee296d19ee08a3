"""enet-build-engine: precision conversion (any machine) and TensorRT engines.

::

    enet-build-engine MODEL.onnx --int8 -o enet.int8.onnx      # Q/DQ ONNX, runs in ONNX Runtime
    enet-build-engine MODEL.onnx --fp16 -o enet.fp16.onnx
    enet-build-engine MODEL.onnx --int8 -o enet.engine         # TensorRT engine (+ enet.int8.onnx, sidecar)
    enet-build-engine MODEL.onnx --int8 -o enet.engine --dry-run --trt-version 10.3   # the plan, no TensorRT
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from enet.cli import (ArgumentParser, add_data_root, add_frames, add_model, add_output, add_verbosity,
                      check_writable, guard, non_negative_int, percent, positive_int, setup_logging)
from enet.errors import EnetError

log = logging.getLogger("enet.engine.cli")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="enet-build-engine",
        description="Convert an ENet ONNX to FP16 or INT8 (Q/DQ, calibrated on the train images of --data-root) and "
                    "build a TensorRT engine. -o X.onnx writes only the converted ONNX (any machine); -o X.engine "
                    "builds with TensorRT, prints the build plan first, compares the engine with ONNX Runtime on "
                    "val frames and writes it only if they agree (--min-agreement).",
        epilog="examples:\n"
               "  enet-build-engine --int8        # the shipped model: an engine with TensorRT, else the INT8 ONNX\n"
               "  enet-build-engine enet.onnx --int8 -o enet.int8.onnx         # any machine: calibrate, Q/DQ, val mIoU\n"
               "  enet-build-engine road.onnx --int8 -o road.int8.onnx --data-root my_road_data\n"
               "  enet-build-engine enet.onnx --int8 -o enet.engine --dry-run --trt-version 10.3\n"
               "  enet-build-engine enet.onnx --fp16 -o enet.engine            # with TensorRT and a GPU\n"
               "  enet-build-engine enet.onnx --int8 -o enet.engine --min-agreement 99   # a stricter gate")
    add_model(p, positional=True, help="float32 ONNX (.onnx) from enet-export, or a shipped name; default: the "
                                      "shipped camvid model's ONNX (or $ENET_MODEL)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                      help="fp32 (default; an .engine only), fp16 (float32 inputs/outputs), or int8 (calibrated "
                           "on the dataset's train frames)")
    prec.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="--precision fp16")
    prec.add_argument("--int8", dest="precision", action="store_const", const="int8", help="--precision int8")
    add_output(p, ".onnx (converted ONNX only) or .engine (missing folders are created); default: "
                  "STEM.PRECISION.engine with TensorRT here, else the converted STEM.PRECISION.onnx, beside MODEL "
                  "(in the current folder for a shipped model)")
    add_data_root(p, help="dataset the model was trained on: its train frames calibrate INT8, its val split "
                          "gives --val-frames/--verify-frames (default: ../shared/data/camvid or $ENET_CAMVID)")
    g = p.add_argument_group("INT8 calibration")
    g.add_argument("--calib-data", metavar="DIR",
                   help="a folder of frames, or a dataset root (its train images are used); default: --data-root")
    add_frames(g, "--calib-frames", "frames, evenly spaced over the name-sorted folder (default 300)",
               old=["--calib-images"])
    g.add_argument("--calib-method", choices=("entropy", "percentile", "max"), default="max",
                   help="default max: the best on CamVid (entropy clips ENet activations; docs/engines.md)")
    g.add_argument("--percentile", type=percent, default=None, metavar="P",
                   help="for --calib-method percentile: the share of each activation's values kept in range, "
                        "0 < P <= 100 (default 99.99)")
    g.add_argument("--calib-cache", metavar="FILE",
                   help="reuse/save the INT8 activation ranges (JSON) the Q/DQ ONNX takes its scales from")
    g.add_argument("--keep-fp32", action="append", default=[], metavar="NODE",
                   help="leave this Conv/ConvTranspose node in float32 (repeatable)")
    g.add_argument("--max-drop", type=float, default=1.0, metavar="PT",
                   help="if INT8 loses more val mIoU points than this, retry with the input/output layers in FP32 "
                        "(default 1.0)")
    add_frames(g, "--val-frames", "report FP32 vs converted val mIoU on N val frames of --data-root, spaced "
                                  "evenly over the split (default all; 0 skips)", zero=True, old=["--val-images"])
    t = p.add_argument_group("TensorRT")
    t.add_argument("--workspace", type=positive_int, default=None, metavar="MB", help="builder workspace limit")
    t.add_argument("--dla-core", type=non_negative_int, default=None, metavar="N", help="build for DLA core N (Jetson), GPU fallback on")
    t.add_argument("--timing-cache", metavar="FILE", help="load and update a tactic timing cache")
    add_frames(t, "--verify-frames", "val frames of --data-root the finished engine is compared with ONNX "
                                     "Runtime on before it is written: argmax agreement and val mIoU (default 5; "
                                     "0 writes the engine unchecked)",
               default=5, zero=True, old=["--verify-images"])
    t.add_argument("--min-agreement", type=percent, default=None, metavar="PERCENT",
                   help="the gate: the least share of pixels whose argmax must agree with ONNX Runtime, else the "
                        "build fails and writes nothing (default 95; docs/engines.md)")
    t.add_argument("--batch", type=positive_int, default=None, metavar="N",
                   help="batch of the optimization profile for a dynamic-batch ONNX (default 1)")
    t.add_argument("--dry-run", action="store_true",
                   help="print the build plan (which ONNX, strong typing or flags, the gate) and exit; no TensorRT "
                        "needed with --trt-version")
    t.add_argument("--trt-version", metavar="X.Y", type=trt_version,
                   help="with --dry-run: plan for this TensorRT (8.5 .. 11), installed or not")
    add_verbosity(p)
    return p


def trt_version(text: str) -> str:
    """argparse type: a TensorRT version number (``8.6``, ``10.3.0``, ``11``); a bad one is a usage error (exit 2)."""
    from packaging.version import InvalidVersion, Version

    try:
        v = Version(text)
    except InvalidVersion:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number; e.g. 8.6, 10.3 or 11") from None
    if not Version("8") <= v < Version("12"):
        raise argparse.ArgumentTypeError(f"{text}: the plans cover TensorRT 8.x to 11.x; e.g. 8.6, 10.3 or 11")
    return text


def _default_model(spec: str | None) -> tuple[Path, bool]:
    """MODEL -> (the float32 ONNX, whether it is shipped package data). None: ``$ENET_MODEL``, else camvid;
    a shipped name (``camvid``) is its shipped FP32 ONNX."""
    import os

    from enet.weights import WEIGHTS

    spec = spec if spec is not None else (os.environ.get("ENET_MODEL") or "camvid")
    if not Path(spec).exists() and spec in WEIGHTS:
        files = WEIGHTS[spec].onnx_files()
        if "fp32" not in files:
            raise EnetError(f"shipped weights {spec} have no exported ONNX; export it first: "
                            f"enet-export {spec} -o {spec}.onnx, then enet-build-engine {spec}.onnx")
        return files["fp32"], True
    return Path(spec), False


def _default_output(model: Path, shipped: bool, precision: str, dry_run: bool = False) -> tuple[Path, str]:
    """Without -o: an engine where TensorRT is installed, else the converted ONNX (FP16/INT8), and which."""
    from enet._lazy import available

    stem = model.stem
    folder = Path(".") if shipped else model.parent
    if available("tensorrt") or dry_run:
        return folder / f"{stem}.{precision}.engine", "a TensorRT engine"
    if precision == "fp32":
        raise EnetError("no -o and no TensorRT here: an FP32 engine needs TensorRT; pass --fp16 or --int8 for a "
                        "converted ONNX that runs here, or -o X.engine on a machine with TensorRT")
    return folder / f"{stem}.{precision}.onnx", f"the {precision.upper()} ONNX (no TensorRT here, so no engine)"


def _precision(args: argparse.Namespace) -> str:
    return args.precision


def _calib_spec(args: argparse.Namespace) -> Any:
    from enet.defaults import default_camvid_root
    from enet.engine.quant.convert import CalibrationSpec
    from enet.engine.quant.calibration import DEFAULT_CALIB_IMAGES
    from enet.engine.quant.calib_stats import DEFAULT_PERCENTILE

    return CalibrationSpec(
        data=args.calib_data or args.data_root or default_camvid_root(),
        images=args.calib_frames if args.calib_frames is not None else DEFAULT_CALIB_IMAGES,
        method=args.calib_method,
        percentile=args.percentile if args.percentile is not None else DEFAULT_PERCENTILE,
        cache=args.calib_cache,
    )


def _report_int8(result: Any) -> None:
    rep = result.report
    if rep is None:
        return
    print(f"INT8: {len(rep.quantized)} Conv/ConvTranspose layers quantized ({rep.method}, "
          f"{len(result.calib_images) or 'cached'} calibration frames)")
    if rep.kept:
        for name, why in rep.kept.items():
            print(f"  kept in FP32: {name}: {why}")
    else:
        print("  no layer kept in higher precision")


#: The advice when the model's classes are not the val dataset's (enet-build-engine, not enet-eval).
CLASSES_FIX = "pass --data-root with the dataset the model was trained on, or --val-frames 0 to skip the val report"


def _val_root(args: argparse.Namespace) -> Path | None:
    """The dataset whose val split the FP32 vs converted report uses; None when there is none (or --val-frames 0)."""
    from enet.datasets import open_dataset
    from enet.defaults import default_camvid_root

    if args.val_frames == 0:
        return None
    root = Path(args.data_root) if args.data_root else default_camvid_root()
    if not root.is_dir() or not open_dataset(root).has_split("val"):
        return None
    return root


def _check_val_classes(args: argparse.Namespace, model: Path) -> None:
    """A model whose classes are not the val dataset's fails before calibration, in one line that fits this command."""
    from enet.datasets import open_dataset
    from enet.engine.runtime.onnx_info import load_onnx, read_meta

    root = _val_root(args)
    if root is not None:
        open_dataset(root).check_model(read_meta(load_onnx(model, check=False), str(model)), str(model),
                                       fix=CLASSES_FIX)


def _report_val(args: argparse.Namespace, reference: str, candidate: Path, precision: str,
                name: Path) -> float | None:
    """Print FP32 vs converted val mIoU (ONNX Runtime); returns the drop in points, None if not measured.

    ``candidate`` may be a temp file; messages call it ``name`` (the output it becomes).
    """
    from enet.engine.quant.convert import compare_val

    root = _val_root(args)
    if root is None:
        if args.val_frames != 0:
            log.warning("no val split found at %s; skipping the FP32 vs %s mIoU report",
                        args.data_root or "the default dataset", precision)
        return None
    log.info("val mIoU of FP32 and %s with ONNX Runtime (--val-frames 0 skips)", precision.upper())
    res = compare_val(reference, candidate, root, limit=args.val_frames, progress=not args.quiet,
                      names=(reference, str(name)))
    r, c = res["reference"]["miou"] * 100, res["candidate"]["miou"] * 100
    print(f"val mIoU (ONNX Runtime, {res['frames']} frames): FP32 {r:.2f}  {precision.upper()} {c:.2f}  "
          f"drop {r - c:+.2f} pt")
    return r - c


def _convert(args: argparse.Namespace, model: Path, out: Path, precision: str, calib: Any) -> Any:
    """Convert, report, and for INT8 over --max-drop retry with the edge layers in FP32.

    ``out`` appears only when the whole conversion, val report included, is done (temp file + rename):
    a failure or Ctrl-C on the way leaves nothing.
    """
    from enet.fileio import atomic_path

    with atomic_path(out, suffix=".tmp.onnx") as tmp:
        res = _convert_into(args, model, tmp, precision, calib, name=out)
    return dataclasses.replace(res, path=out)


def _convert_into(args: argparse.Namespace, model: Path, out: Path, precision: str, calib: Any, *,
                  name: Path) -> Any:
    from enet.engine.quant.convert import convert_onnx, edge_layers

    res = convert_onnx(model, out, precision=precision, calib=calib, keep_fp32=args.keep_fp32)
    _report_int8(res)
    drop = _report_val(args, str(model), out, precision, name)
    if precision != "int8" or drop is None or drop <= args.max_drop or args.keep_fp32:
        return res
    edges = edge_layers(model)
    why = (f"val mIoU drop {drop:.2f} pt > --max-drop {args.max_drop} with every layer INT8; the input conv "
           "(3 channels) and the output deconvolution (logits) are the most sensitive and the cheapest")
    print(f"drop over {args.max_drop} pt: retrying with {', '.join(edges)} in FP32")
    res = convert_onnx(model, out, precision=precision, calib=calib, keep_fp32=edges,
                       reasons=dict.fromkeys(edges, why), ranges=res.report.amax)
    _report_int8(res)
    drop = _report_val(args, str(model), out, precision, name)
    if drop is not None and drop > args.max_drop:
        log.warning("INT8 still loses %.2f pt; try --calib-method percentile/max, more --calib-frames, or --keep-fp32",
                    drop)
    return res


def run(args: argparse.Namespace) -> int:
    from enet._lazy import available

    precision = _precision(args)
    model, shipped = _default_model(args.model)
    if args.output is None:
        output, which = _default_output(model, shipped, precision, args.dry_run)
        print(f"no -o given: writing {output}, {which}")
    else:
        output = Path(args.output)
    suffix = output.suffix.lower()
    if suffix not in (".onnx", ".engine", ".plan"):
        raise EnetError(f"-o {output}: expected a .onnx (converted ONNX) or .engine path")
    if precision == "fp32" and suffix == ".onnx":
        raise EnetError("-o .onnx writes a precision-converted ONNX; add --fp16 or --int8")
    check_writable(output, what="-o")
    if precision == "int8" and args.calib_cache and not Path(args.calib_cache).is_file():
        check_writable(args.calib_cache, what="--calib-cache")  # an existing one is read first
    if suffix != ".onnx" and args.timing_cache:
        check_writable(args.timing_cache, what="--timing-cache")
    if suffix != ".onnx" and not available("tensorrt") and not args.dry_run:
        from enet._lazy import install_hint
        from enet.engine.trt.build import converted_path

        hint = ("" if precision == "fp32" else f"; for a {precision.upper()} model that runs here with ONNX Runtime: "
                f"enet-build-engine {model} --{precision} -o {converted_path(output, precision)}")
        raise EnetError(f"-o {output}: building a TensorRT engine needs TensorRT, which is not installed here "
                        f"({install_hint('tensorrt')}){hint}")
    calib = _calib_spec(args) if precision == "int8" else None
    if args.dry_run:
        return _dry_run(args, model, output, precision, calib)

    if suffix == ".onnx":
        if output.resolve() == model.resolve():
            raise EnetError(f"-o {output} would overwrite the input model; choose another name")
        _check_val_classes(args, model)
        res = _convert(args, model, output, precision, calib)
        print(f"wrote {output} ({precision}, input {tuple(res.input_shape)})")
        return 0

    return _build(args, model, output, precision, calib)


def _plan(args: argparse.Namespace, model: Path, output: Path, precision: str, calib: Any,
          features: Any = None) -> Any:
    from enet.engine.trt.build import DEFAULT_MIN_AGREEMENT, plan_engine

    agreement = DEFAULT_MIN_AGREEMENT if args.min_agreement is None else args.min_agreement
    return plan_engine(model, output, precision=precision, features=features, calib=calib, batch=args.batch,
                       dla_core=args.dla_core, workspace_mb=args.workspace, timing_cache=args.timing_cache,
                       verify_images=args.verify_frames, min_agreement=agreement, data_root=args.data_root)


def _dry_run(args: argparse.Namespace, model: Path, output: Path, precision: str, calib: Any) -> int:
    """Print the plan for --trt-version (or the installed TensorRT) and build nothing."""
    from enet._lazy import available
    from enet.engine.trt.build import describe
    from enet.engine.trt.compat import features_for_version

    if output.suffix.lower() == ".onnx":
        raise EnetError("--dry-run plans a TensorRT engine; pass -o X.engine")
    if args.trt_version:
        features = features_for_version(args.trt_version)
    elif available("tensorrt"):
        features = None  # the installed one
    else:
        raise EnetError("no TensorRT installed here; pass --trt-version (e.g. 8.6, 10.3 or 11) to plan for one")
    job = _plan(args, model, output, precision, calib, features)
    print("\n".join(describe(job, dry_run=True)))
    return 0


def _report_verification(res: Any) -> None:
    v = res.verification
    if v is None:
        return
    line = (f"engine vs the float32 model ({v.get('reference', res.onnx.name)}) on {v['frames']} "
            f"{v.get('frames_from', 'val frames')}: {v['agreement'] * 100:.2f}% argmax agreement")
    if v.get("miou_engine") is not None:
        line += (f"; val mIoU on these frames: engine {v['miou_engine'] * 100:.2f}, ONNX Runtime "
                 f"{v['miou_onnx'] * 100:.2f} ({v['labelled']} labelled)")
    print(line)


def _build(args: argparse.Namespace, model: Path, output: Path, precision: str, calib: Any) -> int:
    from enet.engine.trt.build import build_engine, describe

    _check_val_classes(args, model)
    job = _plan(args, model, output, precision, calib)
    print("\n".join(describe(job)))
    res = build_engine(job, keep_fp32=args.keep_fp32, rebuild_command=shlex.join(["enet-build-engine", *args.argv]),
                       convert=lambda m, out, prec: _convert(args, m, out, prec, calib))
    for note in res.notes:
        print(note)
    print(f"wrote {output} (TensorRT {res.tensorrt_version}, {res.gpu_name} sm {res.compute_capability}, "
          f"{precision}, {res.build_s:.0f} s) and {res.sidecar.name}")
    _report_verification(res)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.trt_version and not args.dry_run:
        parser.error("--trt-version plans for another TensorRT; it needs --dry-run")
    args.argv = argv
    setup_logging(args)
    return guard("enet-build-engine", lambda: run(args), interrupted="interrupted; nothing written")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
