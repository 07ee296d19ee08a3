"""``enet-run`` with several cameras or a live view: open the cameras, the one model and the outputs.

:func:`run_rig` is what :func:`enet.deploy.cli.run` calls when the run has
cameras (``RunConfig.cameras``) or an ``http://`` output; the pipeline itself
is :class:`enet.deploy.rig.RigPipeline`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


def live_view_api() -> tuple[Any, Callable[[str], tuple[str, int, str | None]]]:
    """``(LiveView, parse_live_uri)`` from :mod:`enet.deploy.live` (imported only for an ``http://`` output).

    Raises:
        MissingDependencyError: this build has no live view module.
    """
    try:
        from enet.deploy.live import LiveView, parse_live_uri  # type: ignore[import-not-found]
    except ImportError:
        from enet.errors import MissingDependencyError

        raise MissingDependencyError("an http:// output needs the live view (enet.deploy.live), which this "
                                     "installation lacks; update enet-rt") from None
    return LiveView, parse_live_uri


def run_rig(cfg: Any, *, report: Callable[[Any], None] | None = None) -> Any:
    """Run ``cfg.cameras`` (or ``cfg.input`` with a live view) through one model; see :func:`enet.deploy.cli.run`."""
    from enet.deploy.backends import open_predictor
    from enet.deploy.cli import _say_if_nowhere, _stop_on_signals, check_not_inputs, check_run_options, open_camera
    from enet.deploy.overlay import Renderer
    from enet.deploy.rig import CameraRun, RigPipeline
    from enet.deploy.rigfile import CameraSpec
    from enet.deploy.sinks import DisplaySink, StatsWriter, make_output
    from enet.deploy.uri import parse_input, parse_output, parse_size
    from enet.errors import EnetError

    specs = list(cfg.cameras) or [CameraSpec("cam0" if "://" in cfg.input else _stem(cfg.input), cfg.input,
                                             size=cfg.input_size, rate=cfg.input_rate)]
    for spec in specs:
        parse_input(spec.uri)  # a bad URI fails before anything is opened
    cam_outputs = [[parse_output(o) for o in spec.outputs] for spec in specs]
    whole = [parse_output(o) for o in cfg.outputs]
    live_uris = [u for u in whole if u.kind == "live"]
    mosaic_uris = [u for u in whole if u.kind != "live"]
    all_files = [u for outs in cam_outputs for u in outs] + mosaic_uris
    check_not_inputs([s.uri for s in specs], all_files)
    size = parse_size(cfg.size) if cfg.size else None
    modes = [m.strip() for m in cfg.visualize.split(",") if m.strip()]
    check_run_options(cfg, all_files)
    live_parsed = []
    if live_uris:
        LiveView, parse_live_uri = live_view_api()
        live_parsed = [parse_live_uri(u.text) for u in live_uris]
        if len(live_parsed) > 1:
            raise EnetError("one http:// live view per run; it shows every camera")
    names = [s.name for s in specs]
    log.info("%d camera(s): %s", len(specs), ", ".join(f"{s.name}={s.uri}" for s in specs))

    stop = threading.Event()

    def open_one(spec: Any) -> Any:
        return open_camera(cfg, spec.uri, size=spec.size, rate=spec.rate, stop=stop)

    # every camera opens at once: one that is slow to answer delays the start by its own timeout only
    sources: list[Any] = []
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = [pool.submit(open_one, s) for s in specs]
        errors = []
        for spec, f in zip(specs, futures):
            try:
                sources.append(f.result())
            except EnetError as exc:
                errors.append(EnetError(f"camera {spec.name}: {' '.join(str(exc).split())}"))
                sources.append(None)
    if errors:
        for src in sources:
            if src is not None:
                with contextlib.suppress(Exception):
                    src.close()
        raise errors[0]
    cams: list[Any] = []
    view = None
    stats = None
    try:
        batch = max(1, int(cfg.batch or 1))
        ctx, choice = open_predictor(cfg.model, backend=cfg.backend, size=size, cache_dir=cfg.cache_dir,
                                     threads=cfg.threads, streams=cfg.streams, precision=cfg.precision,
                                     batch=batch, data_root=cfg.calib_data, min_agreement=cfg.min_agreement)
        with ctx as predictor:
            _say_if_nowhere(cfg, all_files + live_uris)  # once the inputs and the model are known to open
            log.info("model %s on %s (%s); one model for %d camera(s), %s", choice.path, choice.kind, choice.why,
                     len(specs), f"up to {predictor.batch} frames per inference" if predictor.batch > 1
                     else "one frame per inference")
            meta = predictor.meta
            renderer = Renderer(meta["classes"], meta["palette"], modes=modes, alpha=cfg.alpha, hud=cfg.hud,
                                legend=cfg.legend)
            pipeline_ref: list[Any] = []

            def quit_() -> None:
                if pipeline_ref:
                    pipeline_ref[0].request_stop("window closed")

            for spec, src, outs in zip(specs, sources, cam_outputs):
                fps = cfg.output_rate or src.fps or 30.0
                cams.append(CameraRun(spec.name, src, [make_output(u, fps=fps, writer=cfg.writer, on_quit=quit_)
                                                        for u in outs]))
            rates = [s.fps for s in sources if s.fps]
            mosaic_rate = cfg.output_rate or (max(rates) if rates else 10.0)
            mosaic_sinks = [make_output(u, fps=mosaic_rate, writer=cfg.writer, on_quit=quit_) for u in mosaic_uris]
            if cfg.display and not any(u.kind == "display" for u in mosaic_uris):
                mosaic_sinks.append(DisplaySink(fps=mosaic_rate, required=False, on_quit=quit_))
            mosaic_sinks += cfg.extra_sinks
            stats = StatsWriter(cfg.stats) if cfg.stats else None
            if live_parsed:
                host, port, token = live_parsed[0]
                view = LiveView(host, port, token=token, cameras=names, classes=list(meta["classes"]),
                                palette=[tuple(int(v) for v in c) for c in meta["palette"]])
                view.start()
                log.warning("live view: %s", view.url)
            pipeline = RigPipeline(cams, predictor, renderer=renderer, mosaic_sinks=mosaic_sinks,
                                   mosaic_rate=mosaic_rate, live_view=view, stats=stats,
                                   max_frames=cfg.max_frames, on_frame=cfg.on_frame, stop_event=stop,
                                   fit=cfg.fit)
            pipeline_ref.append(pipeline)
            with _stop_on_signals(pipeline.request_stop):
                try:
                    summary = pipeline.run()
                finally:
                    if report is not None and pipeline.summary is not None:
                        report(pipeline.summary)
    except BaseException:
        for c in cams:
            for s in c.sinks:
                with contextlib.suppress(Exception):
                    s.close()
        if stats is not None:
            with contextlib.suppress(Exception):
                stats.close()
        for src in sources:
            with contextlib.suppress(Exception):
                src.close()
        raise
    finally:
        if view is not None:
            with contextlib.suppress(Exception):
                view.close()
    summary.outputs = [u.location for u in all_files if u.kind == "file"]  # type: ignore[attr-defined]
    return summary


def _stem(text: str) -> str:
    from enet.deploy.rigfile import default_name

    return default_name(text, 0)
