"""Command lines of the core package (enet-train, enet-summary, enet-plot) and the helpers of every enet-* CLI.

Building a parser imports nothing heavy; user errors print one line and exit
with status 1 (2 for a bad command line, 130 for Ctrl-C), bugs keep their
traceback. :func:`setup_logging` (over :func:`configure_logging`) and
:func:`guard` are the same for every enet-* command. ``enet-eval`` opens
backends, so it lives with them: :mod:`enet.engine.eval_cli`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from enet.errors import EnetError, UsageError

log = logging.getLogger("enet")


# -- shared helpers (also used by the tool CLIs) ---------------------------
#: Largest width or height any command accepts (checked before anything is
#: allocated: ENet's activations at 4096x4096 already take gigabytes).
MAX_SIDE = 4096


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the enet-* contract for a bad command line: one line ``prog: error: ...``, exit 2.

    No usage dump (``--help`` shows it); examples go in ``epilog``, kept as written.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        ns, rest = super().parse_known_args(args, namespace)
        for finish in getattr(self, "_finishers", ()):
            finish(self, ns)
        return ns, rest

    def on_parsed(self, finish: Callable[[ArgumentParser, argparse.Namespace], None]) -> None:
        """Run ``finish(parser, args)`` after parsing (merging an option with its positional form, ...)."""
        self.__dict__.setdefault("_finishers", []).append(finish)


# -- the shared vocabulary (docs/cli.md): one spelling per concept -------------
class DeprecatedAlias(argparse.Action):
    """A former spelling kept so that users' scripts keep working: hidden from ``--help``, one warning line.

    It stores into the new option's ``dest``, so the command sees one value.
    ``replacement`` is the spelling to use instead (named in the warning).
    """

    def __init__(self, option_strings: Sequence[str], dest: str, *, replacement: str, **kwargs: Any) -> None:
        kwargs["help"] = argparse.SUPPRESS
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_alias(p: argparse.ArgumentParser | argparse._ActionsContainer, old: str, replacement: str, dest: str,
              **kwargs: Any) -> None:
    """Keep ``old`` working as a hidden, deprecated spelling of ``replacement`` (same ``dest``, same type)."""
    p.add_argument(old, dest=dest, action=DeprecatedAlias, replacement=replacement, default=argparse.SUPPRESS,
                   **kwargs)


def add_model(p: ArgumentParser, *, positional: bool, help: str | None = None, metavar: str = "MODEL") -> None:
    """The model: ``--model`` in every command; commands whose one input is the model also take it positionally.

    ``enet-export model.pth`` and ``enet-export --model model.pth`` are the same; giving both is an error.
    ``args.model`` is None when neither is given (the shipped default, resolved by the command).
    """
    text = help or ("checkpoint (.pth), ONNX (.onnx), TensorRT engine (.engine) or shipped weights name "
                    "(default: camvid, or $ENET_MODEL)")
    if not positional:
        p.add_argument("--model", default=None, metavar=metavar, help=text)
        return
    p.add_argument("model", nargs="?", default=None, metavar=metavar, help=text)
    p.add_argument("--model", dest="model_option", default=None, metavar=metavar,
                   help=f"the same as the positional {metavar}")

    def merge(parser: ArgumentParser, ns: argparse.Namespace) -> None:
        option = ns.__dict__.pop("model_option", None)
        if option is not None:
            if ns.model is not None and ns.model != option:
                parser.error(f"two models given ({ns.model} and --model {option}); give one")
            ns.model = option

    p.on_parsed(merge)


def add_data_root(p: argparse.ArgumentParser, help: str | None = None, *, camvid_alias: bool = True) -> None:
    """``--data-root DIR`` (the dataset: SegNet layout, your own classes or Cityscapes).

    ``camvid_alias``: the command used to accept ``--camvid``, kept as a deprecated alias.
    """
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help=help or "dataset folder (default: $ENET_CAMVID or ../shared/data/camvid)")
    if camvid_alias:
        add_alias(p, "--camvid", "--data-root", "data_root", metavar="DIR")


def add_frames(p: argparse.ArgumentParser | argparse._ActionsContainer, option: str, help: str, *,
               default: int | None = None, zero: bool = False, old: Sequence[str] = ()) -> None:
    """A frame count ``--<purpose>-frames N`` (``--frames``, ``--verify-frames``, ``--val-frames``, ...).

    ``zero=True``: 0 is allowed (it turns the step off). ``old``: former spellings, kept as deprecated aliases.
    """
    cast = non_negative_int if zero else positive_int
    dest = option.lstrip("-").replace("-", "_")
    p.add_argument(option, type=cast, default=default, metavar="N", help=help)
    for name in old:
        add_alias(p, name, option, dest, type=cast, metavar="N")


def add_output(p: argparse.ArgumentParser, help: str, *, required: bool = False, default: Any = None,
               type: Callable[[str], Any] | None = None) -> None:
    """``-o/--output``: where the command writes; missing folders above it are created (docs/cli.md)."""
    kwargs: dict[str, Any] = {"type": type} if type else {}
    p.add_argument("-o", "--output", required=required, default=default, help=help, **kwargs)


def _number(cast: Callable[[str], Any], text: str, low: float, *, strict: bool, high: float | None = None) -> Any:
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or (value <= low if strict else value < low) or (high is not None and value > high):
        rng = f"> {low:g}" if strict else f">= {low:g}"
        if high is not None:
            rng += f" and <= {high:g}"
        raise argparse.ArgumentTypeError(f"{text} is out of range; expected a value {rng}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(int, text, 0, strict=True)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(int, text, 0, strict=False)


def positive_float(text: str) -> float:
    """argparse type: a float > 0 (not NaN)."""
    return _number(float, text, 0.0, strict=True)


def non_negative_float(text: str) -> float:
    """argparse type: a float >= 0 (not NaN)."""
    return _number(float, text, 0.0, strict=False)


def unit_float(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    return _number(float, text, 0.0, strict=False, high=1.0)


def percent(text: str) -> float:
    """argparse type: a percentage in (0, 100]."""
    return _number(float, text, 0.0, strict=True, high=100.0)


def _size(text: str, multiple: int) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 480x360") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"{text}: width and height must be positive, e.g. 480x360")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text} is too large; width and height are at most {MAX_SIDE}")
    if w % multiple or h % multiple:
        near = f"{max(multiple, round(w / multiple) * multiple)}x{max(multiple, round(h / multiple) * multiple)}"
        raise argparse.ArgumentTypeError(
            f"{text}: width and height must be multiples of {multiple} (ENet downsamples 3 times), e.g. {near}")
    return h, w


def parse_size(text: str) -> tuple[int, int]:
    """``"480x360"`` (WxH, as cameras and the paper write it) -> ``(H, W)``; multiples of 8, at most MAX_SIDE."""
    return _size(text, 8)


def size_text(text: str) -> str:
    """argparse type: a model input size ``WxH`` checked as :func:`parse_size`, kept as written."""
    _size(text, 8)
    return text


def capture_size_text(text: str) -> str:
    """argparse type: a camera capture size ``WxH`` (any positive size up to MAX_SIDE), kept as written."""
    _size(text, 1)
    return text


def check_writable(path: str | os.PathLike[str], *, folder: bool = False, what: str = "output") -> None:
    """Fail early (exit 1) when ``path`` cannot be written, before any long work; creates nothing.

    ``folder=False``: a file; ``folder=True``: a folder. Either may lie in
    folders that do not exist yet (they are created when the output is
    written, docs/cli.md); the nearest existing one must be writable.
    Probed by creating and removing a temp file (mode bits lie to root).

    Raises:
        EnetError: not writable, or the wrong kind of thing is there.
    """
    import tempfile
    from pathlib import Path

    p = Path(path)
    if folder:
        if p.exists() and not p.is_dir():
            raise EnetError(f"cannot write {what} {p}: it exists and is not a folder; choose another location")
        probe = p
    else:
        if p.is_dir():
            raise EnetError(f"cannot write {what} {p}: it is a folder; give a file name")
        probe = p.parent if str(p.parent) else Path(".")
    # one rule for every command (docs/cli.md): missing folders are created when the file is written
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise EnetError(f"cannot write {what} {p}: {probe} is not a folder; choose another location")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".enet-probe.", dir=probe)
    except OSError as exc:
        raise EnetError(f"cannot write {what} {p}: {probe} is not writable ({exc.strerror}); "
                        "choose a writable location") from None
    os.close(fd)
    os.unlink(tmp)


def add_dataset_kind(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=("auto", "camvid", "custom", "cityscapes"), default="auto",
                   help="dataset kind; auto: custom when DATA_ROOT/classes.json exists, cityscapes when "
                        "leftImg8bit/ and gtFine/ do, else CamVid")


VERBOSE_HELP = "more log output (debug; the runtimes' own logs too); -v and -q are counters in every command"
QUIET_HELP = "warnings and errors only, no progress bars (-qq: errors only)"


def add_verbosity(p: argparse.ArgumentParser) -> None:
    """``-v/--verbose`` and ``-q/--quiet``: counters in every command (docs/cli.md), one or the other."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    g.add_argument("-q", "--quiet", action="count", default=0, help=QUIET_HELP)


def add_engine_precision(p: argparse.ArgumentParser, *, measure: bool = False) -> None:
    """``--precision`` (enet-eval, enet-run, enet-demo): what :func:`enet.engine.runtime.resolve.resolve` takes.

    ``measure=True`` (enet-eval): ``auto`` measures the model as named (FP32) on a CPU backend.
    """
    cpu = ("on a CPU backend, the model as named (FP32; a shipped model's FP32 ONNX, not its INT8 one)" if measure
           else "on a CPU backend that runs INT8 faster (OpenVINO), a shipped model (camvid) runs its calibrated "
                "INT8 ONNX")
    p.add_argument("--precision", choices=("auto", "fp16", "int8", "fp32"), default="auto",
                   help="auto (default): with TensorRT and a GPU, the engine --backend auto builds on first run is "
                        f"fp16; {cpu}. int8: the calibrated Q/DQ model; fp32: the model as exported. A "
                        "precision the chosen backend cannot run is refused, never swapped")
    p.add_argument("--calib-data", default=None, metavar="DIR",
                   help="a TensorRT engine built on first run with --precision int8 calibrates on, and every "
                        "first-run engine is checked on, this dataset (or folder of frames); default: the dataset "
                        "recorded in the model, else CamVid for a model of CamVid's classes, else FP16 is used")
    p.add_argument("--min-agreement", type=float, default=None, metavar="PCT",
                   help="a TensorRT engine built on first run must agree with the float32 model on at least PCT%% "
                        "of pixels (argmax; default 95, as enet-build-engine); below it nothing is cached")


def configure_logging(level: int, fmt: str = "%(message)s") -> None:
    """A command's logging: to the *current* stderr, replacing earlier handlers.

    ``force=True``: a second ``main()`` in one process (tests) must not log
    to the stream the first one captured, which may be closed by then.
    """
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)


def log_level(verbose: int | bool = 0, quiet: int | bool = 0, default: int = logging.INFO) -> int:
    """``-v`` (once or more) -> DEBUG; each ``-q`` one level above ``default``."""
    if verbose:
        return logging.DEBUG
    return min(logging.CRITICAL, default + 10 * int(quiet))


def setup_logging(args: argparse.Namespace, *, default: int = logging.INFO, fmt: str = "%(message)s") -> None:
    """A command's logging from its ``-v/--verbose`` and ``-q/--quiet`` (flags or counts)."""
    configure_logging(log_level(getattr(args, "verbose", 0), getattr(args, "quiet", 0), default), fmt)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (whitespace runs collapsed)."""
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def guard(prog: str, body: Callable[[], int], *, interrupted: str = "interrupted") -> int:
    """Run a command's body with the exit codes every enet-* command shares.

    0 ok (or whatever ``body`` returns), 1 for an :class:`EnetError` (one
    line on stderr, no traceback), 2 for a :class:`UsageError` (options that
    contradict each other), 130 for Ctrl-C (the interrupt's own
    message, else ``interrupted``). argparse exits 2 on a bad command line
    before this runs. Any other exception is a bug and keeps its traceback.
    """
    try:
        return body()
    except EnetError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt as exc:
        print(f"{prog}: {str(exc) or interrupted}", file=sys.stderr)
        return 130
    except OSError as exc:
        # a full, read-only or failing disk met outside enet.fileio (a library's own write): the
        # machine's fault, not a bug, so one line and status 1 like every other file problem
        import errno

        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{prog}: error: storage failed{where}: {exc.strerror}; free space or choose a writable "
              "location, then run again", file=sys.stderr)
        return 1


def run_cli(body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
            argv: Sequence[str] | None) -> int:
    """Parse, set up logging, run ``body(args)`` under :func:`guard`."""
    args = parser.parse_args(argv)
    setup_logging(args)
    return guard(parser.prog, lambda: body(args))


def cli(make_parser: Callable[[], argparse.ArgumentParser]) -> Callable[[Callable[[argparse.Namespace], int]],
                                                                         Callable[[Sequence[str] | None], int]]:
    def wrap(body: Callable[[argparse.Namespace], int]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(body)
        def main(argv: Sequence[str] | None = None) -> int:
            return run_cli(body, make_parser(), argv)
        return main
    return wrap


# -- enet-train --------------------------------------------------------------
def train_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="enet-train",
        description="Train ENet on CamVid, Cityscapes or your own classes (SegNet layout plus classes.json). "
                    "Writes last.pth (resumable), best.pth (best val mIoU) and log.jsonl to --output; the "
                    "checkpoints carry the dataset's classes and palette. Ctrl-C saves a resumable checkpoint. "
                    "Under torchrun, trains on every process with DistributedDataParallel.",
        epilog="examples:\n"
               "  enet-train --data-root ../shared/data/camvid --epochs 1\n"
               "  enet-train --data-root DIR --size 240x176 --batch 8 --epochs 150 -o runs/half\n"
               "  enet-train --data-root DIR --init-from runs/half/best.pth --lr 2e-4 -o runs/full\n"
               "  enet-train --data-root DIR --resume runs/full/last.pth\n"
               "  enet-train --data-root my_road_data -o runs/road --size 480x352 --epochs 10   # has classes.json\n"
               "  enet-train --data-root CITYSCAPES --dataset cityscapes --size 1024x512 --val-size 1024x512\n"
               "  torchrun --nproc-per-node 4 --no-python enet-train --data-root DIR -o runs/ddp\n"
               "see docs/custom_data.md")
    add_data_root(p, help="dataset folder: SegNet layout (train/ trainannot/ val/ valannot/, plus classes.json "
                          "for your own classes) or Cityscapes (default: ../shared/data/camvid)",
                  camvid_alias=False)
    add_dataset_kind(p)
    add_output(p, "run folder (default runs/enet); one that holds an earlier run is refused unless --resume "
                  "or --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in an -o folder that holds an earlier one (its last.pth, best.pth and "
                        "log.jsonl are deleted)")
    p.add_argument("--epochs", type=positive_int, default=None, help="total epochs (default 100)")
    p.add_argument("--batch", type=positive_int, default=8, metavar="N", help="batch size per process (default 8)")
    add_alias(p, "--batch-size", "--batch", "batch", type=positive_int, metavar="N")
    p.add_argument("--size", type=parse_size, default=(360, 480), metavar="WxH",
                   help="training crop size, multiples of 8 (default 480x360)")
    p.add_argument("--val-size", type=parse_size, default=(360, 480), metavar="WxH",
                   help="validation size (default 480x360)")
    p.add_argument("--lr", type=positive_float, default=5e-4, help="Adam learning rate (paper: 5e-4)")
    p.add_argument("--weight-decay", type=non_negative_float, default=2e-4, help="(paper: 2e-4)")
    p.add_argument("--schedule", choices=("poly", "step", "constant"), default="poly")
    p.add_argument("--step-size", type=positive_int, default=100, help="epochs per x0.1 for --schedule step")
    p.add_argument("--warmup-epochs", type=non_negative_int, default=0)
    p.add_argument("--encoder-epochs", type=non_negative_int, default=0,
                   help="first train the encoder alone on labels subsampled by 8 for N epochs (paper 5.2)")
    p.add_argument("--weighting", choices=("enet", "median", "none"), default="enet",
                   help="class weights: ENet's 1/ln(1.02+p), median frequency, or none")
    p.add_argument("--loss", choices=("ce", "ce+lovasz", "lovasz", "ohem", "ohem+lovasz"), default="ce",
                   help="ce: class-weighted cross-entropy (paper); ohem: the same on the hard pixels only "
                        "(true class below 70%% probability, at least 1/16 of the pixels); +lovasz adds the "
                        "Lovasz-softmax loss, a surrogate of per-class IoU, when fine-tuning (docs/training.md)")
    p.add_argument("--ema", type=unit_float, default=0.0, metavar="DECAY",
                   help="validate and save an exponential moving average of the weights, e.g. 0.998 "
                        "(default 0: off)")
    p.add_argument("--scale", type=positive_float, nargs=2, default=(0.75, 1.5), metavar=("MIN", "MAX"),
                   help="random scale range")
    p.add_argument("--jitter", type=non_negative_float, default=0.2, help="photometric jitter amplitude")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where it runs: auto (cuda when a GPU is visible), cpu, cuda")
    p.add_argument("--workers", type=non_negative_int, default=0, help="data loader worker processes")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for PyTorch")
    p.add_argument("--val-every", type=positive_int, default=1, help="validate every N epochs")
    p.add_argument("--init-from", default=None, metavar="CKPT",
                   help="start from these weights (fine-tuning): a checkpoint or a shipped name (camvid, camvid-v1)")
    p.add_argument("--resume", default=None, metavar="LAST.pth", help="continue an interrupted run exactly")
    add_frames(p, "--train-frames", "train on the first N train frames only (quick trials)")
    add_frames(p, "--val-frames", "validate on N val frames spaced evenly over the split (default all; quick "
                                  "trials)")
    add_verbosity(p)
    return p


#: Files of a run folder that mean an earlier run is there.
RUN_FILES = ("last.pth", "best.pth", "log.jsonl")


def refuse_earlier_run(output: str | os.PathLike[str]) -> None:
    """``enet-train -o DIR`` over an earlier run: refused, naming --resume and --overwrite (nothing is replaced).

    Raises:
        EnetError: ``output`` holds a checkpoint or log of an earlier run (exit 1: the files decide).
    """
    from pathlib import Path

    found = [n for n in RUN_FILES if (Path(output) / n).exists()]
    if found:
        resume = Path(output) / "last.pth"
        raise EnetError(f"-o {output} holds an earlier run ({', '.join(found)}); continue it with --resume {resume}, "
                         "start over with --overwrite, or choose another -o")


@cli(train_parser)
def train_main(args: argparse.Namespace) -> int:
    """enet-train."""
    from enet._lazy import require, require_training_python
    from enet.defaults import default_camvid_root

    require_training_python("enet-train")
    require("torch")
    from enet.distributed import env_world_size
    from enet.train import Trainer, TrainConfig

    if env_world_size() > 1 and int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)  # rank 0 reports for everyone
    if args.scale[0] > args.scale[1]:
        raise UsageError(f"--scale {args.scale[0]:g} {args.scale[1]:g}: MIN is larger than MAX")
    data_root = str(args.data_root or default_camvid_root())
    output = args.output or "runs/enet"
    if args.output or not args.resume:
        check_writable(output, folder=True, what="run folder")
    if not args.resume and not args.overwrite:
        refuse_earlier_run(output)
    if args.resume:
        trainer = Trainer(resume=args.resume, progress=not args.quiet, overrides={
            "data_root": args.data_root, "output": args.output, "epochs": args.epochs, "device": args.device,
            "workers": args.workers, "threads": args.threads})
    else:
        cfg = TrainConfig(
            data_root=data_root, dataset=args.dataset, output=output, epochs=args.epochs or 100, batch_size=args.batch,
            size=args.size, val_size=args.val_size, lr=args.lr, weight_decay=args.weight_decay,
            schedule=args.schedule, step_size=args.step_size, warmup_epochs=args.warmup_epochs, encoder_epochs=args.encoder_epochs,
            weighting=args.weighting, loss=args.loss, ema=args.ema, scale=tuple(args.scale), jitter=args.jitter, seed=args.seed,
            device=args.device, workers=args.workers, threads=args.threads, val_every=args.val_every,
            init_from=args.init_from, train_limit=args.train_frames, val_limit=args.val_frames)
        trainer = Trainer(cfg, progress=not args.quiet)
        if args.overwrite and trainer.main:  # the earlier run's files go once the new run has checked its inputs
            for name in RUN_FILES:
                (trainer.out / name).unlink(missing_ok=True)
    try:
        metrics = trainer.fit()
    finally:
        trainer.close()
    from enet.metrics import format_table

    if not trainer.main:
        return 0
    if metrics:
        print(format_table(metrics, f"val metrics after epoch {trainer.epoch}:"))
    if trainer.history_best_epoch < 0:
        raise EnetError(f"no epoch gave a usable model (non-finite or collapsed; see the warnings above), so no "
                        f"best.pth was written; {trainer.out / 'last.pth'} holds the end of the run; train longer, "
                        "lower --lr or check the data")
    print(f"best val mIoU {100 * trainer.best:.1f}% (epoch {trainer.history_best_epoch}); "
          f"checkpoints in {trainer.out}/ (best.pth, last.pth), log {trainer.out / 'log.jsonl'}")
    return 0


# -- enet-summary -------------------------------------------------------------
def summary_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="enet-summary",
                       description="Parameters and GFLOPs of ENet beside the paper's Table 3.",
                       epilog="examples:\n"
                              "  enet-summary                       # the paper's 640x360, 11 classes\n"
                              "  enet-summary --size 480x360 --classes 19")
    p.add_argument("--size", type=parse_size, default=(360, 640), metavar="WxH",
                   help="input size, multiples of 8 (default 640x360)")
    p.add_argument("--classes", type=positive_int, default=11, help="number of classes (default 11)")
    add_verbosity(p)
    return p


def model_summary(height: int, width: int, num_classes: int = 11) -> dict[str, Any]:
    from enet.model import ENet, count_flops, count_parameters

    m = ENet(num_classes)
    return {"parameters": count_parameters(m), "gflops": count_flops(m, height, width) / 1e9,
            "paper_parameters": 0.37e6, "paper_gflops": 3.83, "size_hw": [height, width]}


@cli(summary_parser)
def summary_main(args: argparse.Namespace) -> int:
    """enet-summary."""
    from enet._lazy import require

    require("torch")
    h, w = args.size
    s = model_summary(h, w, args.classes)
    print(f"ENet, {args.classes} classes, input {w}x{h}")
    print(f"  parameters  {s['parameters'] / 1e6:.3f} M   (paper Table 3: 0.37 M)")
    print(f"  GFLOPs      {s['gflops']:.2f}     (paper Table 3 at 640x360: 3.83; counted here as "
          "2 x conv/deconv multiply-adds)")
    return 0


# -- enet-plot -----------------------------------------------------------------
def plot_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="enet-plot", description="Training curves (loss, val mIoU) from log.jsonl files.",
                       epilog="examples:\n"
                              "  enet-plot runs/enet/log.jsonl -o curve.png\n"
                              "  enet-plot runs/half/log.jsonl runs/full/log.jsonl -o runs/training_curve.png")
    p.add_argument("logs", nargs="+", metavar="LOG", help="one or more log.jsonl (stages are drawn one after the other)")
    add_output(p, "PNG file (missing folders are created)", required=True)
    add_verbosity(p)
    return p


@cli(plot_parser)
def plot_main(args: argparse.Namespace) -> int:
    """enet-plot."""
    from enet.plot import plot_training

    check_writable(args.output)
    plot_training(args.logs, args.output)
    print(f"wrote {args.output}")
    return 0


# -- enet-average ----------------------------------------------------------------
def average_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="enet-average",
                       description="Average the weights of checkpoints fine-tuned from one start (a model soup, "
                                   "Wortsman et al. 2022) into one checkpoint. Same network, same size and speed; "
                                   "measure the result with enet-eval (docs/training.md).",
                       epilog="examples:\n"
                              "  enet-average runs/a/best.pth runs/b/best.pth -o runs/soup.pth\n"
                              "  enet-average runs/a/best.pth runs/b/best.pth -o runs/soup.pth "
                              "--data-root ../shared/data/camvid\n"
                              "  enet-eval runs/soup.pth --split val")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="two or more .pth checkpoints (or shipped names) of the same classes")
    add_output(p, ".pth file to write (missing folders are created)", required=True)
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="also measure the average on this dataset's val split and store the metrics in it, "
                        "as enet-train does for best.pth (default: not measured)")
    add_verbosity(p)
    return p


@cli(average_parser)
def average_main(args: argparse.Namespace) -> int:
    """enet-average."""
    from enet._lazy import require

    require("torch")
    from enet.checkpoint import average_checkpoints, save_checkpoint
    from enet.weights import resolve_model

    if len(args.checkpoints) < 2:
        raise UsageError("give at least two checkpoints to average")
    if not str(args.output).endswith(".pth"):
        raise UsageError(f"-o {args.output}: the output is a checkpoint; give it a .pth name")
    check_writable(args.output)
    from pathlib import Path

    out = Path(args.output).resolve()
    for c in args.checkpoints:
        if resolve_model(c).resolve() == out:
            raise UsageError(f"-o {args.output} is one of the checkpoints averaged; it would be replaced: "
                             "give the average another name")
    data = None
    if args.data_root is not None:
        from enet.datasets import open_dataset

        data = open_dataset(args.data_root)  # a missing dataset stops the command before any work
    paths = [resolve_model(c) for c in args.checkpoints]
    ckpt = average_checkpoints(paths)
    measured = ""
    if data is not None:
        from enet.train import checkpoint_val_metrics

        ckpt["meta"]["metrics"] = metrics = checkpoint_val_metrics(ckpt, data)
        measured = f"; val mIoU {100 * metrics['miou']:.2f} % on {args.data_root}"
    save_checkpoint(args.output, ckpt)
    print(f"wrote {args.output}: the average of {len(paths)} checkpoints{measured}")
    return 0
