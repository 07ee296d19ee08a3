"""``enet-demo`` (``make demo``): the car-camera pipeline on a short CamVid road clip.

1. builds ``demo_out/camvid_<sequence>.mp4`` from CamVid val frames (sequence
   0016E5, 15 fps: the SegNet release keeps every other frame of the 30 Hz video),
   or, when CamVid is not on this machine, takes the same clip bundled with the
   package (``enet/deploy/data/camvid_0016E5.mp4``);
2. runs it through :func:`enet.deploy.cli.run` with the reference model and the
   best available backend;
3. writes ``demo_out/enet_demo.mp4`` (overlay | mask | legend),
   ``demo_out/stats.jsonl`` and ``demo_out/contact_sheet.png``, and prints
   the throughput (every frame, as fast as possible);
4. plays the clip again as the camera delivered it (``enet-run --live``, at
   the clip's 15 fps) and prints what a car would see: fps out, frames
   dropped, capture-to-result latency (``demo_out/stats_live.jsonl``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CLIP_FPS = 15.0

#: Shipped copy of the clip (CamVid val sequence 0016E5, H.264), used when
#: CamVid itself is not on this machine.
BUNDLED_CLIP = Path(__file__).resolve().parent / "data" / "camvid_0016E5.mp4"


def camvid_frames(root: Path, split: str = "val", limit: int | None = None) -> list[Path]:
    """The frames of the first sequence in ``root/split``, in name order.

    Raises:
        EnetError: CamVid is not there.
    """
    from enet.errors import DataError

    folder = root / split
    frames = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not frames:
        raise DataError(f"CamVid not found at {root} (no {split}/*.png); set ENET_CAMVID or pass --data-root ROOT")
    seq = frames[0].name.split("_")[0]
    frames = [f for f in frames if f.name.startswith(seq + "_")]
    return frames[:limit] if limit else frames


def build_clip(frames: Sequence[Path], out: Path, *, fps: float = CLIP_FPS, writer: str = "auto") -> Path:
    """Encode ``frames`` (PNG) as a video file at ``out`` (all resized to the first frame's size)."""
    from enet._lazy import require
    from enet.deploy.errors import SourceError

    cv2 = require("cv2")
    from enet.deploy.sinks import VideoFileSink

    sink = VideoFileSink(out, fps=fps, writer=writer)
    size = None
    try:
        for f in frames:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SourceError(f"cannot decode image {f}")
            size = size or (bgr.shape[1], bgr.shape[0])
            if (bgr.shape[1], bgr.shape[0]) != size:
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            sink.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        sink.close()
    return out


def sheet_indices(n: int, k: int) -> list[int]:
    """``k`` frame numbers spread evenly over ``n`` frames (first and last included)."""
    if n <= 0 or k <= 0:
        return []
    if k == 1 or n == 1:
        return [0]
    k = min(k, n)
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _frame_count(clip: Path) -> int:
    from enet._lazy import require

    cv2 = require("cv2")

    cap = cv2.VideoCapture(str(clip))
    try:
        return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
    finally:
        cap.release()


def build_parser() -> argparse.ArgumentParser:
    from enet.cli import (ArgumentParser, add_alias, add_data_root, add_engine_precision, add_frames, add_model,
                          add_output, add_verbosity, non_negative_int, positive_int, size_text)
    from enet.engine.runtime.backend import BACKEND_CHOICES

    p = ArgumentParser(prog="enet-demo",
                       description="Run the car-camera pipeline on a short CamVid road clip: once as fast as "
                                   "possible (throughput, video written), once played live at the clip's 15 fps "
                                   "(the fps, drops and latency a car would see).",
                       epilog="examples:\n"
                              "  enet-demo                                  # what make demo runs\n"
                              "  enet-demo --frames 30 -o /tmp/demo --sheet 4\n"
                              "  enet-demo --no-live                        # throughput only\n"
                              "  enet-demo --model enet.int8.onnx --backend ort --size 480x352\n"
                              "  enet-demo --data-root ../shared/data/camvid --sheet 0   # no contact sheet")
    add_model(p, positional=False)
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                   help="default auto: the fastest available (with TensorRT and a GPU: an engine built on first "
                        "run and cached; on a CPU: OpenVINO when installed)")
    add_engine_precision(p)
    add_data_root(p, help="CamVid root (default: ../shared/data/camvid or ENET_CAMVID)")
    add_frames(p, "--frames", "clip length (default: the whole sequence)")
    add_output(p, "folder to write into (default demo_out; missing folders are created)", default="demo_out")
    add_alias(p, "--output-dir", "--output", "output")
    p.add_argument("--sheet", type=non_negative_int, default=6, metavar="K",
                   help="frames on the contact sheet (default 6; 0: no sheet)")
    p.add_argument("--size", type=size_text, metavar="WxH", help="inference size (default: the model's)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU inference threads (default: see enet-run --threads)")
    p.add_argument("--streams", type=positive_int, metavar="N", help="frames inferred at once, openvino only "
                                                                     "(default: see enet-run --streams)")
    p.add_argument("--no-live", dest="live", action="store_false",
                   help="skip the second pass that plays the clip live at its 15 fps (fps out, drops, latency)")
    add_verbosity(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from enet.cli import guard, setup_logging
    from enet.deploy.cli import LOG_FORMAT

    setup_logging(args, fmt=LOG_FORMAT)
    return guard("enet-demo", lambda: _demo(args))


def _demo(args: argparse.Namespace) -> int:
    from enet.defaults import default_camvid_root, what_is_wrong
    from enet.cli import check_writable
    from enet.errors import DataError, EnetError
    from enet.weights import resolve_model

    model = resolve_model(args.model)  # a shipped name is resolved again in the run (its packaged ONNX)
    if not model.is_file():
        raise EnetError(f"model {model} {what_is_wrong(model)}; pass --model or train one with enet-train")
    given_file = bool(args.model) and Path(args.model).exists()
    root = Path(args.data_root) if args.data_root else default_camvid_root()
    out = Path(args.output)
    check_writable(out, folder=True, what="-o")
    if given_file:
        _check_model(model)
    try:
        frames = camvid_frames(root, limit=args.frames)
    except DataError:
        if args.data_root or not BUNDLED_CLIP.is_file():
            raise
        frames = None
    clip = out / f"camvid_{_sequence(frames)}.mp4" if frames else BUNDLED_CLIP
    video, stats, sheet_path = out / "enet_demo.mp4", out / "stats.jsonl", out / "contact_sheet.png"
    live_stats = out / "stats_live.jsonl"
    new_dirs = [d for d in (out, *out.parents) if not d.exists()]  # innermost first
    new_files = [p for p in (clip, video, stats, sheet_path, live_stats) if not p.exists()]
    try:
        run_model = model if given_file else args.model
        summary = _build_and_run(args, run_model, root, frames, clip, video, stats, sheet_path)
        live = _run_live(args, run_model, clip, None if frames else args.frames, live_stats) if args.live else None
    except Exception:
        # a demo that fails (e.g. a backend that cannot run) leaves nothing it created
        for f in new_files:
            f.unlink(missing_ok=True)
        for d in new_dirs:
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty
        raise
    print(f"enet-demo: wrote {', '.join(str(p) for p in (video, stats, sheet_path, live_stats) if p.is_file())}")
    name = model.name if given_file else args.model or "the shipped model"
    print(f"enet-demo: throughput {summary.fps:.1f} fps with {summary.backend} ({name}): every frame, "
          "as fast as possible")
    if live is not None:
        t = live.total_ms
        lat = f"latency p50 {t['p50']:.0f} / p95 {t['p95']:.0f} ms" if t else "no latency"
        print(f"enet-demo: live at {CLIP_FPS:g} fps: {live.fps:.1f} fps out, dropped {live.dropped} of "
              f"{live.captured}, {lat} (capture to result)")
    return 0


def _sequence(frames: Sequence[Path]) -> str:
    return frames[0].name.split("_")[0]


def _build_and_run(args: argparse.Namespace, model: Path | str | None, root: Path, frames: list[Path] | None, clip: Path,
                   video: Path, stats: Path, sheet_path: Path) -> Any:
    """Build ``clip`` from ``frames`` (none: ``clip`` is the bundled one) and run the pipeline on it.

    Returns the run's summary.
    """
    from enet.deploy.cli import RunConfig, print_summary, run
    from enet.deploy.sinks import ContactSheet

    video.parent.mkdir(parents=True, exist_ok=True)
    if frames:
        build_clip(frames, clip)
        n_frames = len(frames)
        print(f"enet-demo: clip {clip} ({n_frames} CamVid val frames of sequence {_sequence(frames)} "
              f"at {CLIP_FPS:g} fps)")
    else:
        n_frames = args.frames or _frame_count(clip)
        print(f"enet-demo: CamVid not found at {root}; using the bundled clip {clip.name} "
              f"(CamVid val sequence 0016E5 at {CLIP_FPS:g} fps)")
    sheets = [ContactSheet(sheet_path, sheet_indices(n_frames, args.sheet), columns=2, thumb_width=560)
              ] if args.sheet else []
    summary = run(RunConfig(
        input=str(clip), outputs=[str(video)], model=None if model is None else str(model), backend=args.backend,
        precision=args.precision, size=args.size, calib_data=args.calib_data, min_agreement=args.min_agreement,
        visualize="overlay,mask", stats=str(stats), extra_sinks=sheets,
        output_rate=CLIP_FPS, max_frames=None if frames else args.frames, threads=args.threads,
        streams=args.streams,
    ), report=lambda s: print_summary(s, "enet-demo: throughput"))
    return summary


def _run_live(args: argparse.Namespace, model: Path | str | None, clip: Path, max_frames: int | None,
              stats: Path) -> Any:
    """The clip played at its rate as the camera delivered it: what a car would see (no video written)."""
    from enet.deploy.cli import RunConfig, print_summary, run

    return run(RunConfig(
        input=str(clip), model=None if model is None else str(model), backend=args.backend,
        precision=args.precision, size=args.size, visualize="overlay,mask", stats=str(stats), live=True, input_rate=CLIP_FPS, max_frames=max_frames,
        calib_data=args.calib_data, min_agreement=args.min_agreement,
        threads=args.threads, streams=args.streams,
    ), report=lambda s: print_summary(s, "enet-demo: live"))


def _check_model(model: Path) -> None:
    """Read the model's metadata before a clip is built (a broken file fails in one line, nothing written)."""
    from enet.engine.runtime.backend import backend_kind

    kind = backend_kind(model)
    if kind == "torch":
        from enet._lazy import require

        require("torch")  # a runtime-only install: one line naming the extra, not a traceback
        from enet.checkpoint import load_checkpoint

        load_checkpoint(model)
    elif kind == "ort":
        from enet.engine.runtime.onnx_info import load_onnx

        load_onnx(model, check=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
