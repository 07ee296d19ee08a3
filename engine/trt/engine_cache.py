"""TensorRT engines built on first run and cached, as jetson-inference does on first load.

``enet-run``, ``enet-eval`` and ``enet-demo`` with ``--backend auto`` hand a
``.pth`` or ``.onnx`` here when TensorRT and a GPU are present
(:func:`auto_engine`). The engine is built once through
:mod:`enet.engine.trt.build` (the same plan, sidecar and check against ONNX
Runtime as ``enet-build-engine``; FP16 by default, ``--precision int8`` for the
calibrated Q/DQ model) and kept in the user's cache folder
(:func:`enet.cache.cache_dir`, ``engines/``) under a key made of what makes
an engine valid: the ONNX's sha256, the TensorRT version, the GPU and the
precision. A later run reuses it only when the one authority,
:func:`enet.engine.runtime.sidecar.engine_mismatch`, accepts it for this
ONNX, precision, TensorRT and GPU; anything else builds anew. The lock of an
entry sits beside its folder (:func:`enet.cache.folder_lock`), and whether the
folder is this process's own (removed again when its build fails) is decided
under the lock.

The build's gate applies: the engine is compared with the float32 model on
the dataset's val frames, else its calibration frames; below
``min_agreement``, or with nothing to compare on, nothing is cached.
First-run INT8 is calibrated on the model's own data (``data_root``, else
the dataset recorded in the checkpoint or ONNX, else CamVid only for a model
with CamVid's classes, :func:`model_data_root`); without such data, or below
the gate, the FP16 engine is built and used instead, with a one-line note.
Without TensorRT, :func:`auto_engine` returns None and ``auto`` behaves as
before.

Never run on a GPU in this project's CI: see docs/engines.md.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
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


def _usable(engine: Path, onnx_sha256: str, precision: str) -> bool:
    """A cached pair that the one authority (:func:`enet.engine.runtime.sidecar.engine_mismatch`) accepts for
    this ONNX, precision, TensorRT and GPU, and that passed the gate."""
    from enet.engine.runtime.sidecar import engine_mismatch, read_sidecar, this_host

    if not engine.is_file():
        return False
    reason = engine_mismatch(engine, onnx_sha256=onnx_sha256, precision=precision, host=this_host())
    if reason is None and not read_sidecar(engine).get("check", {}).get("checked"):
        reason = "it was never checked against the float32 model"
    if reason:
        log.warning("cached engine %s is not usable (%s); building it again", engine, reason)
        return False
    return True


def first_run_engine(onnx_path: str | os.PathLike[str], *, precision: str = DEFAULT_PRECISION,
                     root: str | os.PathLike[str] | None = None,
                     data_root: str | os.PathLike[str] | None = None,
                     min_agreement: float | None = None,
                     say: Callable[[str], None] | None = None, calib_images: int | None = None,
                     fallback: bool = True) -> Path:
    """The cached engine for ``onnx_path``, built first when missing.

    Args:
        precision: ``fp16`` (default), ``int8`` (the calibrated Q/DQ model,
            calibrated on the model's own data: ``data_root``, else the dataset
            recorded in the model's metadata, :func:`model_data_root`) or ``fp32``.
        root: cache folder (default ``<cache_dir>/engines``).
        min_agreement: the gate in percent (default
            :data:`enet.engine.trt.build.DEFAULT_MIN_AGREEMENT`): argmax agreement with the float32 model.
        say: where the user-facing lines go (default: this module's log at INFO).
        calib_images: INT8 calibration frames (default: ``enet-build-engine``'s,
            :data:`enet.engine.quant.calibration.DEFAULT_CALIB_IMAGES`).
        fallback: INT8 that cannot be calibrated on the model's data or fails the gate gives the FP16
            engine (with a note); False (``enet-bench``): it fails.

    Raises:
        EnetError: TensorRT failed, the engine failed the gate (nothing is
            cached), or INT8 without the model's data.
    """
    from enet._lazy import require
    from enet.cache import folder_lock
    from enet.engine.runtime.cuda import gpu_info
    from enet.fileio import sha256_file

    say = say or log.info
    if precision not in PRECISIONS:
        raise EnetError(f"unknown engine precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    onnx_path = Path(onnx_path)
    sha = sha256_file(onnx_path)
    trt = require("tensorrt")
    key = engine_key(sha, trt.__version__, gpu_info(0)[0], precision)
    engine = engine_cache_root(root) / key / "enet.engine"
    if _usable(engine, sha, precision):
        say(f"using the cached TensorRT {precision} engine {engine}")
        return engine
    engine.parent.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(engine.parent):  # a second process building the same engine waits, then reuses it
        if _usable(engine, sha, precision):
            say(f"using the cached TensorRT {precision} engine {engine} (built by another process meanwhile)")
            return engine
        made = not engine.parent.exists()  # decided under the lock: only this process's own folder goes
        engine.parent.mkdir(parents=True, exist_ok=True)
        return _build_first_run(onnx_path, engine, precision=precision, data_root=data_root,
                                min_agreement=min_agreement, made=made, say=say, calib_images=calib_images,
                                fallback=fallback)


def model_data_root(onnx_path: str | os.PathLike[str], data_root: str | os.PathLike[str] | None = None) -> Path | None:
    """The dataset a first-run INT8 engine calibrates on and is checked on: ``data_root``, else the one
    recorded in the model (ONNX metadata ``data_root``, or the checkpoint's training config), else the
    default CamVid only when the model has CamVid's classes; None when the model's own data is unknown."""
    from enet.defaults import default_camvid_root
    from enet.engine.runtime.onnx_info import load_onnx, read_meta

    if data_root:
        return Path(data_root)
    meta = read_meta(load_onnx(onnx_path, check=False), str(onnx_path))
    recorded = meta.get("data_root")
    if recorded and Path(str(recorded)).is_dir():
        return Path(str(recorded))
    camvid = default_camvid_root()
    try:
        from enet.datasets import open_dataset

        info = open_dataset(camvid)
        if list(info.classes) == [str(c) for c in meta.get("classes", [])]:
            return Path(camvid)
    except Exception:  # noqa: BLE001 - no CamVid here, or not readable: the model's data is unknown
        pass
    return None


def checkpoint_data_root(model: str | os.PathLike[str]) -> Path | None:
    """The dataset a checkpoint was trained on (its training config's ``data_root``), if it is here."""
    try:
        from enet.checkpoint import load_checkpoint

        cfg = load_checkpoint(model)["meta"].get("train_config") or {}
    except Exception:  # noqa: BLE001 - no torch, or no training record: unknown
        return None
    root = cfg.get("data_root") if isinstance(cfg, dict) else None
    return Path(str(root)) if root and Path(str(root)).is_dir() else None


def _build_first_run(onnx_path: Path, engine: Path, *, precision: str, data_root: str | os.PathLike[str] | None,
                     min_agreement: float | None, made: bool, say: Callable[[str], None],
                     calib_images: int | None = None, fallback: bool = True) -> Path:
    """Build the first-run engine through the gate (the caller holds the entry's lock); ``made``: the
    cache folder was made for it (under the lock), and goes again when the build fails.

    INT8 is calibrated on the model's own data (:func:`model_data_root`) and checked against the float32
    model; when there is no such data, or the engine falls below the gate, nothing INT8 is written and the
    FP16 engine is built (and cached) instead, with a one-line note.
    """
    import shutil

    from enet.engine.quant.convert import CalibrationSpec
    from enet.engine.trt.build import DEFAULT_MIN_AGREEMENT, GateError, build_engine, describe, plan_engine

    calib = None
    data = model_data_root(onnx_path, data_root) if precision == "int8" else (Path(data_root) if data_root else None)
    if precision == "int8":
        if data is None and not fallback:
            raise EnetError(f"the INT8 engine for {onnx_path.name} needs the model's own data to calibrate on "
                            "and none is known; pass --data-root")
        if data is None:
            return _instead_fp16(onnx_path, engine, data_root, min_agreement, made, say,
                                 f"the INT8 engine for {onnx_path.name} needs the model's own data to calibrate "
                                 "on and none is known (pass --data-root)")
        calib = CalibrationSpec(data=data, cache=engine.parent / "int8-ranges.json",
                                **({"images": int(calib_images)} if calib_images else {}))
    say(f"first run with TensorRT: building a {precision} engine for {onnx_path.name} into {engine.parent} "
        "(once; the next run reuses it)")
    try:
        job = plan_engine(onnx_path, engine, precision=precision, calib=calib, data_root=data,
                          min_agreement=DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement)
        for line in describe(job):
            log.debug("%s", line)
        rebuild = ["enet-build-engine", str(onnx_path), f"--{precision}", *(
            ["--calib-data", str(calib.data), "--calib-frames", str(calib.images)] if calib else []),
            *(["--data-root", str(data)] if data else []), "-o", str(engine)]
        res = build_engine(job, extra={"built_by": "first run", "calibrated_on": str(data) if calib else None},
                           rebuild_command=shlex.join(rebuild))
    except GateError as exc:
        if made:
            shutil.rmtree(engine.parent, ignore_errors=True)
        if precision == "int8" and fallback:
            return _instead_fp16(onnx_path, engine, data_root, min_agreement, made, say, str(exc).split(";")[0])
        raise
    except BaseException:
        if made:  # nothing of a failed build stays in the cache (the folder is this process's own)
            shutil.rmtree(engine.parent, ignore_errors=True)
        raise
    v = res.verification
    check = (f"; vs the float32 model on {v['frames']} {v.get('frames_from', 'frames')}: "
             f"{v['agreement'] * 100:.2f}% argmax agreement" if v else "")
    say(f"built the TensorRT {precision} engine in {res.build_s:.0f} s{check}")
    for note in res.notes:
        say(note)
    return engine


def _instead_fp16(onnx_path: Path, engine: Path, data_root: str | os.PathLike[str] | None,
                  min_agreement: float | None, made: bool, say: Callable[[str], None], why: str) -> Path:
    """No INT8 engine is cached: say why in one line and use the FP16 one."""
    import shutil

    if made:
        shutil.rmtree(engine.parent, ignore_errors=True)
    log.warning("%s; using the FP16 engine instead (nothing INT8 was cached)", why)
    return first_run_engine(onnx_path, precision="fp16", root=engine.parent.parent, data_root=data_root,
                            min_agreement=min_agreement, say=say)


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
    if data_root is None and model.suffix.lower() != ".onnx":
        data_root = checkpoint_data_root(model)
    try:
        onnx_path = model if model.suffix.lower() == ".onnx" else onnx_for_checkpoint(model, size=size, root=root)
        return first_run_engine(onnx_path, precision=precision, root=root, data_root=data_root,
                                min_agreement=min_agreement, say=say)
    except EnetError as exc:
        log.warning("no TensorRT engine for %s (%s); running it without TensorRT", model.name, exc)
        return None
