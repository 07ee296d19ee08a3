"""``enet-run``: the car-camera pipeline (camera in, segmented video out, in real time).

Examples::

    enet-run csi://0 out.mp4 --stats run.jsonl          # Jetson CSI camera
    enet-run v4l2:///dev/video0 udp://192.168.1.10:5000 # USB camera, stream to a laptop
    enet-run clip.mp4 seg.mp4 --visualize overlay,mask --no-display
    enet-run ../shared/data/camvid/val seg.mp4 --backend torch
    enet-run clip.mp4 seg.mp4 --live --stats run.jsonl  # the clip played as the camera would deliver it
    enet-run a.mp4 b.mp4 c.mp4 d.mp4 --live http://127.0.0.1:8080   # four cameras, live view in a browser
    enet-run --rig rig.toml --stats rig.jsonl           # cameras, sizes, rates, outputs from a file

Building the parser imports nothing heavy, so ``--help`` works without
OpenCV, GStreamer or TensorRT.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from enet.engine.runtime.backend import BACKEND_CHOICES
from enet.cli import (ArgumentParser, add_engine_precision, add_frames, add_model, capture_size_text, check_writable,
                      guard, non_negative_float, non_negative_int, positive_float, positive_int, setup_logging,
                      size_text, unit_float)

log = logging.getLogger(__name__)

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


@dataclass
class RunConfig:
    """Everything :func:`run` needs (the CLI's options, parsed)."""

    input: str
    outputs: list[str] = field(default_factory=list)
    model: str | None = None
    backend: str = "auto"
    precision: str = "auto"
    calib_data: str | None = None  # first-run TensorRT engine: the model's data (calibration, the gate)
    min_agreement: float | None = None  # first-run TensorRT engine: the gate
    size: str | None = None
    alpha: float = 0.5
    visualize: str = "overlay"
    stats: str | None = None
    max_frames: int | None = None
    display: bool = False
    capture: str = "auto"
    writer: str = "auto"
    input_size: str | None = None
    input_rate: float | None = None
    input_codec: str | None = None
    input_flip: int = 0
    input_latency: int | None = None
    live: bool = False
    output_rate: float | None = None
    cache_dir: str | None = None
    hud: bool = True
    legend: bool = True
    threads: int | None = None
    reconnect_timeout: float = 30.0
    stall_timeout: float = 2.0
    streams: int | None = None
    #: a rig: frames of up to this many cameras in one inference (1: one at a time)
    batch: int = 1
    #: a rig (several cameras, or a live view): the cameras, each with its own outputs; ``input`` and
    #: ``outputs`` are then unused except for rig-wide outputs (mosaic, live view) in ``outputs``
    cameras: list[Any] = field(default_factory=list)
    fit: str = "letterbox"
    extra_sinks: list[Any] = field(default_factory=list)
    on_frame: Callable[[int, dict[str, Any]], None] | None = None


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """SIGINT/SIGTERM request a clean stop; a second SIGINT interrupts at once."""
    if not threading_main():
        yield
        return
    seen: dict[str, int] = {}

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        seen[name] = seen.get(name, 0) + 1
        if signum == signal.SIGINT and seen[name] > 1:
            raise KeyboardInterrupt
        log.warning("%s: stopping, finishing the output files", name)
        stop(name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def has_display() -> bool:
    """True when a window can be opened: an X11 or Wayland display is named in the environment."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run(cfg: RunConfig, *, report: Callable[[Any], None] | None = None) -> Any:
    """Open the input, the model and the outputs, and run the pipeline.

    Args:
        cfg: the run.
        report: called with the :class:`enet.deploy.pipeline.RunSummary` however
            the run ends once frames flow: end of input, a stop (Ctrl-C,
            SIGTERM, ``--frames``), or an error such as a lost camera given
            up on (then before the error is raised).

    Returns:
        :class:`enet.deploy.pipeline.RunSummary` (plus ``outputs``, the
        files written).

    Raises:
        EnetError: bad URI, unreadable input, model missing or not matching, ...
    """
    import threading

    from enet.deploy.backends import open_predictor
    from enet.deploy.overlay import Renderer
    from enet.deploy.pipeline import Pipeline
    from enet.deploy.sinks import DisplaySink, StatsWriter, make_output
    from enet.deploy.uri import parse_input, parse_output, parse_size

    outputs = [parse_output(o) for o in cfg.outputs]
    if cfg.cameras or any(u.kind == "live" for u in outputs):
        from enet.deploy.rigrun import run_rig

        return run_rig(cfg, report=report)
    parse_input(cfg.input)  # a bad URI fails before anything is opened
    check_not_inputs([cfg.input], outputs)
    size = parse_size(cfg.size) if cfg.size else None
    modes = [m.strip() for m in cfg.visualize.split(",") if m.strip()]
    check_run_options(cfg, outputs)
    model = cfg.model  # a file or a shipped name (None: the default): resolved with the backend below
    _explain_rates(cfg, parse_input(cfg.input))

    stop = threading.Event()
    source = open_camera(cfg, cfg.input, size=cfg.input_size, rate=cfg.input_rate, stop=stop)
    if source.live:
        log.info("%s: live, newest frame only (dropped frames are counted)", source.name)
    sinks: list[Any] = []
    stats = None
    try:
        ctx, choice = open_predictor(model, backend=cfg.backend, size=size,
                                     cache_dir=cfg.cache_dir, threads=cfg.threads, streams=cfg.streams,
                                     precision=cfg.precision, data_root=cfg.calib_data,
                                     min_agreement=cfg.min_agreement, live=source.live)
        log.info("model %s on %s (%s)", choice.path, choice.kind, choice.why)
        with ctx as predictor:
            _say_if_nowhere(cfg, outputs)  # once the input and the model are known to open
            renderer = Renderer(predictor.meta["classes"], predictor.meta["palette"], modes=modes, alpha=cfg.alpha,
                                hud=cfg.hud, legend=cfg.legend)
            fps = cfg.output_rate or source.fps or 30.0
            pipeline_ref: list[Any] = []

            def quit_() -> None:
                if pipeline_ref:
                    pipeline_ref[0].request_stop("window closed")

            sinks = [make_output(u, fps=fps, writer=cfg.writer, on_quit=quit_) for u in outputs]
            if cfg.display and not any(u.kind == "display" for u in outputs):
                sinks.append(DisplaySink(fps=fps, required=False, on_quit=quit_))
            sinks += cfg.extra_sinks
            stats = StatsWriter(cfg.stats) if cfg.stats else None
            pipeline = Pipeline(source, predictor, sinks=sinks, renderer=renderer, stats=stats,
                                max_frames=cfg.max_frames, on_frame=cfg.on_frame, stop_event=stop, fit=cfg.fit)
            pipeline_ref.append(pipeline)

            def request(reason: str) -> None:
                pipeline.request_stop(reason)

            with _stop_on_signals(request):
                try:
                    summary = pipeline.run()
                finally:
                    if report is not None and pipeline.summary is not None:
                        report(pipeline.summary)
    except BaseException:
        for s in [*sinks, stats]:
            if s is not None:
                with contextlib.suppress(Exception):
                    s.close()
        with contextlib.suppress(Exception):
            source.close()
        raise
    summary.outputs = [u.location for u in outputs if u.kind == "file"]  # type: ignore[attr-defined]
    return summary


def check_run_options(cfg: RunConfig, outputs: Sequence[Any]) -> None:
    """A run's numeric options and every output location (parsed URIs), checked before a source, the model or a
    frame opens: the one check of a one-camera run and of a rig (:func:`enet.deploy.rigrun.run_rig`).

    Raises:
        EnetError: a bad value, an unwritable output, or a window asked for where there is no display.
    """
    from enet.errors import EnetError

    for opt, value in (("--threads", cfg.threads), ("--streams", cfg.streams)):
        if value is not None and value < 1:
            raise EnetError(f"{opt} must be at least 1, not {value}")
    if cfg.max_frames is not None and cfg.max_frames <= 0:
        raise EnetError(f"--frames must be positive, not {cfg.max_frames}")
    if cfg.stats and not cfg.stats.endswith(".jsonl"):
        raise EnetError(f"--stats {cfg.stats}: expected a .jsonl file name")
    for u in outputs:
        if u.kind == "file":
            check_writable(u.location, what="output video")
        elif u.kind == "display" and not has_display():
            # a window opened without a display crashes inside the GUI toolkit (segfault, no message)
            raise EnetError(f"{u.text}: no display here (DISPLAY and WAYLAND_DISPLAY are unset); write a video "
                            "file (out.mp4), a stream (rtsp://, udp://) or a live view (http://127.0.0.1:8080) "
                            "instead")
    if cfg.stats:
        check_writable(cfg.stats, what="--stats")
    if cfg.input_latency is not None and cfg.input_latency < 0:
        raise EnetError(f"--input-latency must be 0 or more milliseconds, not {cfg.input_latency}")


def open_camera(cfg: RunConfig, uri: str, *, size: str | None, rate: float | None, stop: Any) -> Any:
    """Open one input with the run's capture options (codec, flip, latency, timeouts, --live): the one opener of
    a one-camera run and of each camera of a rig; ``size``/``rate`` are that camera's."""
    from enet.deploy.gstpipes import CaptureOptions
    from enet.deploy.sources import open_source
    from enet.deploy.uri import parse_size

    opts = CaptureOptions(size=parse_size(size) if size else None, rate=rate, codec=cfg.input_codec,
                          flip=cfg.input_flip,
                          **({} if cfg.input_latency is None else {"latency_ms": cfg.input_latency}))
    return open_source(uri, capture=cfg.capture, opts=opts, stop=stop, reconnect_timeout_s=cfg.reconnect_timeout,
                       stall_timeout_s=cfg.stall_timeout, play_live=cfg.live)


def check_not_inputs(inputs: Sequence[str], outputs: Sequence[Any]) -> None:
    """Refuse an output file that is one of the inputs, or one written twice (issue 29.5).

    Raises:
        UsageError: the same file named as input and output, or as two outputs.
    """
    from enet.deploy.uri import parse_input
    from enet.errors import UsageError

    def key(path: str) -> str:
        return os.path.normcase(os.path.realpath(path))

    ins = {}
    for text in inputs:
        u = parse_input(text)
        if u.kind in ("file", "folder"):
            ins[key(u.location)] = text
    seen: dict[str, str] = {}
    for u in outputs:
        if u.kind != "file":
            continue
        k = key(u.location)
        if k in ins:
            raise UsageError(f"output {u.text} is the input {ins[k]}: it would be overwritten; choose another "
                             "output name")
        if k in seen:
            raise UsageError(f"output {u.text} is named twice (also as {seen[k]}); give each camera its own, "
                             "e.g. -o 'seg_{camera}.mp4'")
        seen[k] = u.text


def _say_if_nowhere(cfg: RunConfig, outputs: Sequence[Any]) -> None:
    """No output and no window: say so, once, before the run (issue 29.20)."""
    if outputs or cfg.display or cfg.extra_sinks or cfg.on_frame is not None or cfg.stats:
        return  # --stats alone is a result the user asked for (class areas, latencies per frame)
    log.warning("no output and no display: the segmented video goes nowhere (only the summary is printed); add an "
                "output such as out.mp4, --stats FILE.jsonl, http://127.0.0.1:8080 or udp://HOST:PORT")


def _explain_rates(cfg: RunConfig, uri: Any) -> None:
    """Say what --input-rate / --live / --input-latency do for this input (nothing is ignored silently)."""
    if cfg.live and uri.live:
        log.info("--live: %s is live already", cfg.input)
    if cfg.input_rate and not cfg.live and not uri.live:
        if uri.kind == "folder":
            log.warning("--input-rate %g on a folder without --live: frames are read as fast as possible; the rate "
                        "only sets their timestamps and the written video's rate (add --live to play it as a "
                        "%g fps camera)", cfg.input_rate, cfg.input_rate)
        else:
            log.warning("--input-rate %g on %s without --live: frames are read as fast as possible and the rate is "
                        "not used (add --live to play it as a %g fps camera)", cfg.input_rate, uri.kind,
                        cfg.input_rate)
    if cfg.input_latency is not None and uri.kind != "rtsp":
        log.warning("--input-latency is the RTSP jitter buffer; %s has none", cfg.input)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="enet-run",
        description="Segment a camera, video, image folder or stream with ENet in real time. "
                    "Ctrl-C (or SIGTERM) stops cleanly: the outputs are finalised, then the exit status is "
                    "130 (143 for SIGTERM); a second Ctrl-C stops at once.",
        epilog="examples:\n"
               "  enet-run csi://0 out.mp4 --stats run.jsonl            # Jetson CSI camera\n"
               "  enet-run v4l2:///dev/video0 udp://192.168.1.10:5000   # USB camera, stream to a laptop\n"
               "  enet-run clip.mp4 seg.mp4 --visualize overlay,mask --no-display\n"
               "  enet-run ../shared/data/camvid/val seg.mp4 --backend torch --input-rate 15\n"
               "  enet-run rtsp://cam/stream out.mp4 --reconnect-timeout 0   # retry forever\n"
               "  enet-run clip.mp4 seg.mp4 --live               # play the file as its camera delivered it\n"
               "  enet-run rtsp://127.0.0.1:8554/cam --input-latency 50 --no-display\n"
               "  enet-run rec.mp4 --no-display out.mp4          # options may stand between the positionals\n"
               "several cameras (a rig):\n"
               "  enet-run a.mp4 b.mp4 c.mp4 d.mp4 --live http://127.0.0.1:8080   # 4 files played as cameras, browser view\n"
               "  enet-run rtsp://10.0.0.11/front rtsp://10.0.0.12/rear -o 'seg_{camera}.mp4' -o rig.mp4\n"
               "  enet-run --rig rig.toml --stats rig.jsonl --stall-timeout 2 --reconnect-timeout 60\n"
               "which positional is what: http://, display://, udp://, rtp:// are always outputs; the others are\n"
               "  inputs (cameras, named after the file or path), except that exactly two, without -o, --rig or\n"
               "  an http:// live view, whose second is a video file or rtsp://, are INPUT OUTPUT (as ever).\n"
               "  -o with {camera} is one output per camera; a file or stream output without {camera} in a rig\n"
               "  is the mosaic of all cameras.\n"
               "inputs: file://clip.mp4 | clip.mp4 | FOLDER/ | v4l2:///dev/video0 | csi://0 | rtsp://host/path |\n"
               "  gst://'... ! appsink' | test://?size=96x64&frames=100\n"
               "outputs: out.mp4 | display://0 | rtsp://server:8554/path | udp://host:port | http://@:8080 (live view)\n"
               "see docs/deploy.md",
    )
    p.add_argument("paths", metavar="INPUT", nargs="*",
                   help="input URIs or paths (several: a rig of cameras), and OUTPUT URIs or video files among "
                        "them (see 'which positional is what' below)")
    p.add_argument("-o", "--output", action="append", default=[], metavar="OUTPUT",
                   help="an output (repeatable); {camera} in it is replaced by each camera's name")
    p.add_argument("--rig", metavar="FILE.toml",
                   help="cameras from a rig file: name, uri, size, rate, output per camera (docs/deploy.md)")
    add_model(p, positional=False)
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                   help="inference backend (default: auto, the fastest available: with TensorRT and a GPU a "
                        ".pth/.onnx becomes a TensorRT engine on first run, cached for the next; else OpenVINO, "
                        "else ONNX Runtime; the log says which)")
    add_engine_precision(p)
    p.add_argument("--size", type=size_text, metavar="WxH", help="inference size, e.g. 480x360 (default: the model's)")
    p.add_argument("--fit", choices=("letterbox", "crop", "stretch"), default="letterbox",
                   help="frames whose aspect ratio is not the model's: letterbox (default: scaled to fit, padded), "
                        "crop (scaled to cover, centre cut) or stretch")
    p.add_argument("--alpha", type=unit_float, default=0.5, help="mask opacity on the overlay (default 0.5)")
    p.add_argument("--visualize", default="overlay", metavar="LIST",
                   help="panels, comma-separated from overlay,mask,input (default overlay)")
    p.add_argument("--stats", metavar="FILE.jsonl", help="per-frame JSON lines: timestamp, latencies, class areas")
    add_frames(p, "--frames", "stop after N output frames", old=["--max-frames"])
    p.add_argument("--no-display", action="store_true", help="no window even when a display exists")
    p.add_argument("--no-hud", action="store_true", help="no fps/latency text")
    p.add_argument("--no-legend", action="store_true", help="no class legend panel")
    g = p.add_argument_group("capture")
    g.add_argument("--capture", default="auto", choices=["auto", "gst", "opencv"],
                   help="capture through GStreamer or OpenCV (default: GStreamer when installed)")
    g.add_argument("--input-size", type=capture_size_text, metavar="WxH", help="camera capture size (csi default 1280x720)")
    g.add_argument("--input-rate", type=positive_float, metavar="FPS",
                   help="camera frame rate; with --live, the rate a file or folder is played at (default: the "
                        "file's own; folders 30); without --live a folder's timestamps only")
    g.add_argument("--live", action="store_true",
                   help="play a file, folder or test:// as a camera would: frames released at their rate, the "
                        "pipeline takes the newest and drops the rest (counted); reports the fps, drops and "
                        "latency a car would see (default: as fast as possible, every frame)")
    g.add_argument("--input-latency", type=non_negative_int, metavar="MS",
                   help="RTSP jitter buffer in milliseconds, counted in the reported latency (default 200; lower "
                        "on a wired network)")
    g.add_argument("--input-codec", choices=["h264", "h265", "mjpeg", "mpeg4", "vp8", "vp9", "raw"],
                   help="stream codec (Jetson hardware decode of files and RTSP; mjpeg for USB cameras)")
    g.add_argument("--reconnect-timeout", type=non_negative_float, default=30.0, metavar="S",
                   help="live inputs (RTSP, cameras): how long to retry with backoff, at start (RTSP) and after "
                        "a drop, before failing with exit status 1 (default 30; 0 retries forever)")
    g.add_argument("--stall-timeout", type=positive_float, default=2.0, metavar="S",
                   help="live inputs: no frame for this long declares the camera stalled; it is then reopened "
                        "(shown as reconnecting) for --reconnect-timeout (default 2)")
    g.add_argument("--input-flip", type=int, choices=range(8), default=0, metavar="0-7", help="csi:// nvvidconv flip-method")
    g = p.add_argument_group("output")
    g.add_argument("--writer", default="auto", choices=["auto", "gst", "opencv"],
                   help="video file writer: GStreamer H.264 or OpenCV MPEG-4 (default: H.264 when available)")
    g.add_argument("--output-rate", type=positive_float, metavar="FPS", help="frame rate of written video (default: input's)")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="where an ONNX exported on the fly is cached (default: the user's cache folder, "
                        "$ENET_CACHE_DIR or ~/.cache/enet-rt)")
    g.add_argument("--threads", type=positive_int, metavar="N",
                   help="CPU inference threads, shared among the streams (default: every CPU this process may "
                        "use; one fewer with --streams 1)")
    g.add_argument("--streams", type=positive_int, metavar="N",
                   help="frames inferred at once on a CPU backend (openvino, ort-fast, ort) (default: 1 on "
                        "every CPU for one live camera, the lowest latency; otherwise 2 on 2+ CPUs, sharing "
                        "every CPU; 1 when --threads is given; see docs/deploy.md)")
    g.add_argument("--batch", type=positive_int, metavar="N",
                   help="several cameras: infer the newest frames of up to N cameras in one call (OpenVINO; "
                        "other backends run one frame at a time). Default 1: one frame per call, on every "
                        "--streams at once, which measured faster and lower-latency on a 2-core CPU "
                        "(docs/deploy.md, \"Rigs\")")
    from enet.cli import add_verbosity  # -v/-q: counters, one or the other, as in every command (docs/cli.md)
    add_verbosity(p)
    return p


def split_positionals(paths: Sequence[str], *, explicit_outputs: bool = False) -> tuple[list[str], list[str]]:
    """``enet-run``'s positionals -> ``(inputs, outputs)``; the rule of docs/deploy.md ("Rigs").

    Output-only forms (``http://``, ``display://``, ``udp://``, ``rtp://``) are
    outputs wherever they stand. The others are all inputs (cameras), except
    in the form of every earlier release: exactly two of them, no ``-o`` or
    ``--rig``, no ``http://`` live view, and the second one an output
    (a video file name or ``rtsp://``): then they are ``INPUT OUTPUT``.
    """
    from enet.deploy.uri import UriError, is_output_only, parse_output

    outputs = [p for p in paths if is_output_only(p)]
    rest = [p for p in paths if not is_output_only(p)]
    live_view = any(o.lower().startswith("http://") for o in outputs)
    if len(rest) == 2 and not explicit_outputs and not live_view:
        try:
            parse_output(rest[1])
        except UriError:  # a folder, test://, v4l2://...: it can only be a second camera
            return rest, outputs
        return rest[:1], rest[1:] + outputs
    return rest, outputs


def plan_cameras(inputs: Sequence[str], outputs: Sequence[str], rig: str | None,
                 *, input_size: str | None = None, input_rate: float | None = None) -> tuple[list[Any], list[str]]:
    """The cameras of a run and its rig-wide outputs.

    Returns ``([], outputs)`` for today's one-camera run (one input, no
    ``{camera}`` and no live view: :class:`enet.deploy.pipeline.Pipeline`
    unchanged); else one :class:`enet.deploy.rig.CameraSpec` per camera
    (``{camera}`` outputs expanded into each) and the outputs left for the
    whole rig (the mosaic, the live view).
    """
    from enet.deploy.rigfile import CameraSpec, default_name, expand_output, load_rig, unique_names
    from enet.deploy.uri import is_output_only

    if rig:
        specs, rig_outputs = load_rig(rig)
        outputs = [*rig_outputs, *outputs]
    else:
        names = unique_names([default_name(u, i) for i, u in enumerate(inputs)])
        specs = [CameraSpec(n, u, size=input_size, rate=input_rate) for n, u in zip(names, inputs)]
    per_camera = [o for o in outputs if "{camera}" in o]
    whole = [o for o in outputs if "{camera}" not in o]
    live = any(o.lower().startswith("http://") for o in whole)
    if not rig and len(specs) == 1 and not per_camera and not live:
        return [], list(outputs)
    if len(specs) == 1 and not rig:  # one camera with a live view: its outputs stay its own
        specs[0].outputs += [o for o in whole if not is_output_only(o) or o.startswith(("udp", "rtp"))]
        whole = [o for o in whole if o not in specs[0].outputs]
    for spec in specs:
        spec.size = spec.size or input_size
        spec.rate = spec.rate or input_rate
        spec.outputs += [expand_output(o, spec.name) for o in per_camera]
    return specs, whole


def main(argv: Sequence[str] | None = None) -> int:
    from enet.errors import EnetError

    parser = build_parser()
    # intermixed: an output after the options (enet-run rec.mp4 --no-display out.mp4) is a positional too
    args = parser.parse_intermixed_args(argv)
    setup_logging(args, fmt=LOG_FORMAT)
    display = not args.no_display and has_display()
    if args.rig and any(not _output_only(p) for p in args.paths):
        parser.error("--rig names the cameras; give no INPUT positionals with it (outputs such as "
                     "http://@:8080 may stay)")
    if not args.rig and not args.paths:
        parser.error("no INPUT; e.g. enet-run clip.mp4 out.mp4, or several inputs, or --rig rig.toml")
    inputs, outputs = split_positionals(args.paths, explicit_outputs=bool(args.output) or bool(args.rig))
    if not args.rig and not inputs:
        parser.error(f"no INPUT among {' '.join(args.paths)}: http://, display://, udp:// and rtp:// are outputs")
    from enet.deploy.uri import camera_device_hint

    for text in inputs:
        hint = camera_device_hint(text)
        if hint:
            parser.error(hint)
    try:
        cameras, rest = plan_cameras(inputs, [*outputs, *args.output], args.rig, input_size=args.input_size,
                                     input_rate=args.input_rate)
    except EnetError as exc:
        from enet.cli import one_line

        print(f"enet-run: error: {one_line(exc)}", file=sys.stderr)
        return 1
    cfg = RunConfig(
        input=inputs[0] if inputs else "", outputs=rest, model=args.model, backend=args.backend,
        precision=args.precision, size=args.size, calib_data=args.calib_data, min_agreement=args.min_agreement,
        alpha=args.alpha, visualize=args.visualize, stats=args.stats, max_frames=args.frames,
        display=display, capture=args.capture, writer=args.writer, input_size=args.input_size,
        input_rate=args.input_rate, input_codec=args.input_codec, input_flip=args.input_flip,
        input_latency=args.input_latency, live=args.live,
        output_rate=args.output_rate, cache_dir=args.cache_dir, hud=not args.no_hud, legend=not args.no_legend,
        threads=args.threads, reconnect_timeout=args.reconnect_timeout, stall_timeout=args.stall_timeout,
        streams=args.streams, cameras=cameras, batch=args.batch, fit=args.fit,
    )
    return guard("enet-run", lambda: _run_and_report(cfg))


def _output_only(text: str) -> bool:
    from enet.deploy.uri import is_output_only

    return is_output_only(text)


def _run_and_report(cfg: RunConfig) -> int:
    summary = run(cfg, report=print_summary)
    for path in summary.outputs:  # type: ignore[attr-defined]
        print(f"enet-run: wrote {path}")
    if cfg.stats and os.path.exists(cfg.stats):
        print(f"enet-run: wrote {cfg.stats}")
    return signal_exit_status(summary.stopped_by)


def print_summary(summary: Any, prog: str = "enet-run") -> None:
    """The end-of-run line, the same however the run ended; a rig adds one line per camera."""
    print(f"{prog}: {summary.line()}; stopped by {summary.stopped_by}", flush=True)
    for c in getattr(summary, "cameras", None) or []:
        t = c["total_ms"]
        lat = f"latency p50 {t['p50']:.0f} / p95 {t['p95']:.0f} / max {t['max']:.0f} ms" if t else "latency n/a"
        extra = f"; reconnects {c['reconnects']}" if c["reconnects"] else ""
        print(f"{prog}:   camera {c['name']}: {c['frames']} frames out in {c['seconds']:.1f} s: {c['fps']:.1f} fps; "
              f"dropped {c['dropped']} of {c['captured']} captured; {lat}{extra}; {c['state']}"
              + (f" ({c['error']})" if c["error"] else ""), flush=True)


def signal_exit_status(stopped_by: str) -> int:
    """README "Exit codes": a run stopped by a signal exits 128 + its number (Ctrl-C 130), outputs finalised."""
    sig = getattr(signal.Signals, stopped_by, None) if stopped_by.startswith("SIG") else None
    return 128 + int(sig) if sig is not None else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
