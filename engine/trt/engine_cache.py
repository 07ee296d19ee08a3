"""TensorRT engines built on first run and cached, as jetson-inference does on first load.

``enet-run``, ``enet-eval`` and ``enet-demo`` with ``--backend auto`` hand a
``.pth`` or ``.onnx`` here when TensorRT and a GPU are present
(:func:`auto_engine`). The engine is built once through
:mod:`enet.engine.trt.build` (the same plan, sidecar and check against ONNX
Runtime as ``enet-build-engine``; FP16 by default, ``--precision int8`` for the
calibrated Q/DQ model) and kept in the user's cache folder
(:func:`enet.cache.cache_dir`, ``engines/``) under a key made of what makes
an engine valid: the ONNX's sha256, the TensorRT version, the GPU and the
precision. A later run with the same four reuses it; anything else builds
anew. The build's gate applies: an engine that disagrees with ONNX Runtime
on val frames (below ``min_agreement``) is not cached, the folder made for
it is removed, and the run goes on without TensorRT. Without TensorRT, :func:`auto_engine` returns None and ``auto``
behaves as before.

Never run on a GPU in this project's CI: see docs/engines.md.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from enet.errors import EnetError

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "int8", "fp32")
DEFAULT_PRECISION = "fp16"


def engine_key(onnx_sha256: str, tensorrt_version: str, gpu_name: str, precision: str) -> str:
    """Folder name of one cached engine, e.g. ``3f2a...-trt10.3.0-nvidia-geforce-rtx-4090-fp16``."""
    gpu = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    ver = re.sub(r"[^0-9A-Za-z.]+", "-", str(tensorrt_version))
    return f"{onnx_sha256[:16]}-trt{ver}-{gpu}-{precision}"


def engine_cache_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else the ``engines/`` sub-folder of the user's cache folder (:mod:`enet.cache`)."""
    from enet.cache import cache_root

    return Path(root) if root else cache_root() / "engines"


def cached_engine_path(onnx_path: str | os.PathLike[str], precision: str, *,
                       root: str | os.PathLike[str] | None = None) -> Path:
    """Where the engine for ``onnx_path`` at ``precision`` lives for this TensorRT and GPU (needs both)."""
    from enet._lazy import require
    from enet.engine.runtime.cuda import gpu_info
    from enet.fileio import sha256_file

    trt = require("tensorrt")
    gpu, _ = gpu_info(0)
    key = engine_key(sha256_file(onnx_path), trt.__version__, gpu, precision)
    return engine_cache_root(root) / key / "enet.engine"


def _usable(engine: Path, data_root: str | os.PathLike[str] | None) -> bool:
    """A cached pair that matches, and was checked against ONNX Runtime unless there is still nothing to check on.

    An engine cached unchecked (no val frames at its first run) is built
    again, through the gate, once val frames are there.
    """
    from enet.defaults import default_camvid_root
    from enet.engine.runtime.sidecar import check_engine_bytes, read_sidecar
    from enet.engine.trt.verify import engine_frames

    if not engine.is_file():
        return False
    try:
        side = read_sidecar(engine)
        check_engine_bytes(engine, engine.read_bytes(), side)
    except EnetError as exc:
        log.warning("cached engine %s is not usable (%s); building it again", engine, exc)
        return False
    if not side.get("check", {}).get("checked") and engine_frames(1, data_root or default_camvid_root()):
        log.warning("cached engine %s was never checked against ONNX Runtime and val frames are here now; "
                    "building it again, through the check", engine)
        return False
    return True


def first_run_engine(onnx_path: str | os.PathLike[str], *, precision: str = DEFAULT_PRECISION,
                     root: str | os.PathLike[str] | None = None,
                     data_root: str | os.PathLike[str] | None = None,
                     min_agreement: float | None = None,
                     say: Callable[[str], None] | None = None) -> Path:
    """The cached engine for ``onnx_path``, built first when missing.

    Args:
        precision: ``fp16`` (default), ``int8`` (the calibrated Q/DQ model,
            calibrated on CamVid train, ``data_root`` or the shared CamVid)
            or ``fp32``.
        root: cache folder (default ``<cache_dir>/engines``).
        min_agreement: the gate in percent (default
            :data:`enet.engine.trt.build.DEFAULT_MIN_AGREEMENT`).
        say: where the user-facing lines go (default: this module's log at INFO).

    Raises:
        EnetError: TensorRT failed, the engine failed the gate (nothing is
            cached), or INT8 without calibration frames.
    """
    from enet.cache import entry_lock

    say = say or log.info
    if precision not in PRECISIONS:
        raise EnetError(f"unknown engine precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    onnx_path = Path(onnx_path)
    engine = cached_engine_path(onnx_path, precision, root=root)
    if _usable(engine, data_root):
        say(f"using the cached TensorRT {precision} engine {engine}")
        return engine
    made = not engine.parent.exists()
    engine.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(engine):  # a second process building the same engine waits, then reuses it
        if _usable(engine, data_root):
            say(f"using the cached TensorRT {precision} engine {engine} (built by another process meanwhile)")
            return engine
        engine.parent.mkdir(parents=True, exist_ok=True)  # a failed build by the other process removed it
        return _build_first_run(onnx_path, engine, precision=precision, data_root=data_root,
                                min_agreement=min_agreement, made=made, say=say)


def _build_first_run(onnx_path: Path, engine: Path, *, precision: str, data_root: str | os.PathLike[str] | None,
                     min_agreement: float | None, made: bool, say: Callable[[str], None]) -> Path:
    """Build the first-run engine through the gate (the caller holds the entry's lock); ``made``: the
    cache folder was made for it, and goes again when the build fails."""
    import shutil

    from enet.defaults import default_camvid_root
    from enet.engine.quant.convert import CalibrationSpec
    from enet.engine.trt.build import DEFAULT_MIN_AGREEMENT, build_engine, describe, plan_engine

    calib = None
    if precision == "int8":
        calib = CalibrationSpec(data=data_root or default_camvid_root(), cache=engine.parent / "int8-ranges.json")
    say(f"first run with TensorRT: building a {precision} engine for {onnx_path.name} into {engine.parent} "
        "(once; the next run reuses it)")
    try:
        job = plan_engine(onnx_path, engine, precision=precision, calib=calib, data_root=data_root,
                          min_agreement=DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement)
        for line in describe(job):
            log.debug("%s", line)
        res = build_engine(job, extra={"built_by": "first run"})
    except BaseException:
        if made:  # nothing of a failed build stays in the cache
            shutil.rmtree(engine.parent, ignore_errors=True)
        raise
    v = res.verification
    check = (f"; vs ONNX Runtime on {v['frames']} val frames: {v['agreement'] * 100:.2f}% argmax agreement"
             if v else "")
    say(f"built the TensorRT {precision} engine in {res.build_s:.0f} s{check}")
    for note in res.notes:
        say(note)
    return engine


def onnx_for_checkpoint(model: str | os.PathLike[str], *, size: tuple[int, int] | None = None,
                        root: str | os.PathLike[str] | None = None) -> Path:
    """A checkpoint exported to ONNX once (at ``size`` (H, W), default its own, with the ``labels`` output).

    The export is :func:`enet.export.cache.cached_onnx`, shared with
    ``enet-run`` and ``enet-bench``; with ``root`` (tests) it is kept in
    ``root/onnx`` instead of the user's cache folder.
    """
    from enet.export.cache import cached_onnx

    h, w = size if size else (None, None)
    return cached_onnx(model, height=h, width=w, labels=True, folder=Path(root) / "onnx" if root else None)


def auto_engine(model: str | os.PathLike[str], *, precision: str = DEFAULT_PRECISION,
                size: tuple[int, int] | None = None, root: str | os.PathLike[str] | None = None,
                data_root: str | os.PathLike[str] | None = None, min_agreement: float | None = None,
                say: Callable[[str], None] | None = None) -> Path | None:
    """``--backend auto``'s engine for a ``.pth``/``.onnx``: cached or built now; None without TensorRT.

    ``data_root``: the dataset INT8 calibrates on and the engine is compared
    on (default: the shared CamVid); ``min_agreement``: the gate in percent.

    A build that fails is reported as a warning and None is returned, so
    ``auto`` falls back to ONNX Runtime or PyTorch as it did before.
    """
    from enet.engine.runtime import resolve

    model = Path(model)
    if model.suffix.lower() not in (".pth", ".pt", ".onnx") or not resolve.trt_ready():
        return None
    try:
        onnx_path = model if model.suffix.lower() == ".onnx" else onnx_for_checkpoint(model, size=size, root=root)
        return first_run_engine(onnx_path, precision=precision, root=root, data_root=data_root,
                                min_agreement=min_agreement, say=say)
    except EnetError as exc:
        log.warning("no TensorRT engine for %s (%s); running it without TensorRT", model.name, exc)
        return None
