"""Precision conversion and engine building, as plain functions.

* :func:`convert_onnx`: FP32 ONNX -> FP16 ONNX or INT8 Q/DQ ONNX (any machine).
* :func:`compare_val`: FP32 vs converted val mIoU with ONNX Runtime.
* :func:`build_engine_bytes`: ONNX -> serialized TensorRT engine through
  Polygraphy (``NetworkFromOnnxPath``, ``CreateConfig``, ``Calibrator``,
  ``EngineBytesFromNetwork``), configured by :func:`enet.engine.trt_compat.plan_build`.
* :func:`verify_engine`: per-pixel argmax agreement engine vs ONNX Runtime.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from enet._lazy import require
from enet.engine.calibration import DEFAULT_CALIB_IMAGES, evenly_spaced, iter_batches, select_calibration_images
from enet.engine.onnx_info import PRECISION_KEY, load_onnx, precision_of, read_meta, static_input_shape
from enet.engine.calib_stats import DEFAULT_PERCENTILE
from enet.engine.fp16 import convert_fp16
from enet.engine.quantize import QuantizeReport, quantize_int8
from enet.engine.trt_compat import BuildPlan
from enet.errors import EnetError
from enet.export.metadata import set_prop
from enet.fileio import atomic_path, write_text

log = logging.getLogger(__name__)

CACHE_FORMAT = "enet-rt-int8-ranges"


@dataclass
class CalibrationSpec:
    """Where calibration frames come from and how ranges are computed."""

    data: str | os.PathLike[str]
    images: int = DEFAULT_CALIB_IMAGES
    method: str = "max"
    percentile: float = DEFAULT_PERCENTILE
    cache: str | os.PathLike[str] | None = None


@dataclass
class ConvertResult:
    path: Path
    precision: str
    meta: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    report: QuantizeReport | None = None
    calib_images: list[Path] = field(default_factory=list)


def _batches_factory(paths: Sequence[Path], meta: dict[str, Any],
                     input_shape: Sequence[int]) -> Callable[[], Iterable[np.ndarray]]:
    return lambda: iter_batches(paths, meta, input_shape)


def _range_key(calib: CalibrationSpec, meta: dict[str, Any]) -> dict[str, Any]:
    # the checkpoint's sha256 (from the export metadata), not the ONNX's: ranges
    # carry over between exports of one checkpoint at other input sizes
    return {"method": calib.method, "percentile": calib.percentile if calib.method == "percentile" else None,
            "source_sha256": meta.get("source_sha256")}


def _read_range_cache(path: Path, key: dict[str, Any]) -> dict[str, float] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise EnetError(
            f"{path} is not an enet-rt calibration cache (a TensorRT calibrator cache?); "
            "pass another --calib-cache or delete it"
        ) from None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        raise EnetError(f"{path} is not an enet-rt calibration cache; pass another --calib-cache or delete it")
    stale = [k for k, v in key.items() if data.get(k) != v]
    if stale:
        log.warning("calibration cache %s differs in %s; recalibrating", path, ", ".join(stale))
        return None
    return {k: float(v) for k, v in data["amax"].items()}


def convert_onnx(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], *, precision: str,
                 calib: CalibrationSpec | None = None, keep_fp32: Iterable[str] = (),
                 reasons: dict[str, str] | None = None, ranges: dict[str, float] | None = None) -> ConvertResult:
    """Write the FP16 or INT8 Q/DQ version of a float32 ONNX model.

    The output keeps the model metadata and gains ``enet.precision`` (and, for
    INT8, ``enet.int8`` with the calibration facts). Written atomically.

    Args:
        onnx_path: float32 ONNX from ``enet-export``.
        output: ``.onnx`` path to write.
        precision: ``fp16`` or ``int8``.
        calib: calibration spec, required for ``int8`` (default method ``max``:
            on CamVid, entropy's clipping cost 1.6 pt mIoU, max 0.6 pt).
        keep_fp32: INT8 only: node names left in float32.
        reasons: why each of ``keep_fp32`` is kept (reported); default "on request".
        ranges: activation ranges from an earlier calibration of this model (skips calibrating).

    Raises:
        EnetError: bad model, missing calibration data, unwritable output.
    """
    model = load_onnx(onnx_path)
    meta = read_meta(model, str(onnx_path))
    shape = static_input_shape(model, None, meta)
    have = precision_of(model)
    if have != "fp32":
        raise EnetError(f"{onnx_path} is already {have}; convert the float32 ONNX from enet-export")
    report = None
    paths: list[Path] = []
    if precision == "fp16":
        out = convert_fp16(model)
    elif precision == "int8":
        if calib is None:
            raise EnetError("INT8 needs calibration frames: pass --calib-data (CamVid root or a folder of frames)")
        cache = Path(calib.cache) if calib.cache else None
        amax = dict(ranges) if ranges else (_read_range_cache(cache, _range_key(calib, meta)) if cache else None)
        if amax is None:
            paths = select_calibration_images(calib.data, calib.images)
            log.info("calibrating on %d frames from %s (%s)", len(paths), paths[0].parent, calib.method)
        out, report = quantize_int8(model, _batches_factory(paths, meta, shape), method=calib.method,
                                    percentile=calib.percentile, keep_float=keep_fp32, amax=amax)
        report.kept.update({k: v for k, v in (reasons or {}).items() if k in report.kept})
        if cache and amax is None:
            write_text(cache, json.dumps({"format": CACHE_FORMAT, **_range_key(calib, meta),
                                          "images": [p.name for p in paths], "amax": report.amax},
                                         indent=1, sort_keys=True) + "\n")
        set_prop(out, "enet.int8", {
            "method": calib.method, "calib_images": len(paths) or None,
            "kept_fp32": report.kept, "symmetric": True, "weights": "per-channel Conv, per-tensor ConvTranspose",
        })
    else:
        raise EnetError(f"cannot convert to {precision!r}; choose fp16 or int8")
    set_prop(out, PRECISION_KEY, precision)
    with atomic_path(output) as tmp:
        onnx.save(out, str(tmp))
    return ConvertResult(Path(output), precision, meta, shape, report, paths)


def edge_layers(onnx_path: str | os.PathLike[str]) -> list[str]:
    """Names of the first and the last weighted layer (input conv, output deconvolution)."""
    from enet.engine.qdq import ensure_node_names, quantizable_nodes

    model = load_onnx(onnx_path)
    ensure_node_names(model)
    nodes = quantizable_nodes(model)
    return list(dict.fromkeys([nodes[0].name, nodes[-1].name])) if nodes else []


def compare_val(reference: str | os.PathLike[str], candidate: str | os.PathLike[str],
                data_root: str | os.PathLike[str], *, limit: int | None = None,
                threads: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Val mIoU of two ONNX models with ONNX Runtime on the CPU (``progress``: a bar per model).

    Returns:
        ``{"reference": summary, "candidate": summary, "drop": pts, "frames": n}``
        (mIoU in percent points).
    """
    from enet.engine.backend import evaluate_backend
    from enet.engine.ort_backend import OrtBackend

    out: dict[str, Any] = {}
    for key, path in (("reference", reference), ("candidate", candidate)):
        with OrtBackend(path, providers="cpu", threads=threads) as b:
            out[key] = evaluate_backend(b, data_root, "val", limit=limit, progress=progress)
    ref, cand = _miou(out["reference"]), _miou(out["candidate"])
    out["drop"] = (ref - cand) if ref is not None and cand is not None else None
    out["frames"] = out["reference"].get("frames")
    return out


def _miou(summary: dict[str, Any]) -> float | None:
    for key in ("miou", "mIoU", "mean_iou"):
        if key in summary and summary[key] is not None:
            v = float(summary[key])
            return v * 100.0 if v <= 1.0 else v
    return None


# --------------------------------------------------------------------------- TensorRT


def build_engine_bytes(onnx_path: str | os.PathLike[str], plan: BuildPlan, *, workspace_mb: int | None = None,
                       dla_core: int | None = None, timing_cache: str | os.PathLike[str] | None = None,
                       calib_batches: Callable[[], Iterable[np.ndarray]] | None = None,
                       calib_cache: str | os.PathLike[str] | None = None, input_name: str = "input",
                       batch_size: int = 1) -> bytes:
    """Parse, configure and build with Polygraphy; returns the serialized engine.

    Never run on a GPU in this project's CI (see docs/engines.md).
    """
    trt = require("tensorrt")
    require("polygraphy")
    from polygraphy.backend.trt import (Calibrator, CreateConfig, EngineBytesFromNetwork,
                                        NetworkFromOnnxPath)

    # TRT 11 keeps STRONGLY_TYPED but ignores it (always strongly typed); set it only where it exists
    has_flag = hasattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED")
    network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=(plan.strongly_typed and has_flag) or None)
    kwargs: dict[str, Any] = {}
    if "FP16" in plan.flags:
        kwargs["fp16"] = True
    if "INT8" in plan.flags:
        kwargs["int8"] = True
    if plan.calibrator:
        if calib_batches is None:
            raise EnetError("the calibrator path needs calibration frames (--calib-data)")
        loader = ({input_name: x} for x in calib_batches())
        kwargs["calibrator"] = Calibrator(loader, cache=str(calib_cache) if calib_cache else None,
                                          BaseClass=trt.IInt8EntropyCalibrator2, batch_size=batch_size)
    if workspace_mb:
        kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: int(workspace_mb) << 20}
    if timing_cache:
        kwargs["load_timing_cache"] = str(timing_cache)
    if dla_core is not None:
        kwargs["use_dla"] = True
        kwargs["allow_gpu_fallback"] = True
    create = CreateConfig(**kwargs)

    def config(builder: Any, net: Any) -> Any:
        cfg = create(builder, net)
        if dla_core is not None:  # Polygraphy always picks DLA core 0
            if dla_core >= builder.num_DLA_cores:
                raise EnetError(f"--dla-core {dla_core}: this device has {builder.num_DLA_cores} DLA cores")
            cfg.DLA_core = int(dla_core)
        return cfg

    try:
        data = EngineBytesFromNetwork(network, config=config,
                                      save_timing_cache=str(timing_cache) if timing_cache else None)()
    except EnetError:
        raise
    except Exception as exc:  # noqa: BLE001 - Polygraphy raises PolygraphyException on build failure
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EnetError(f"TensorRT could not build {onnx_path} ({first}); run with -v for TensorRT's log") from None
    return bytes(data)


@dataclass
class EngineResult:
    """What :func:`build_engine` wrote."""

    engine: Path
    sidecar: Path
    onnx: Path  # the ONNX TensorRT compiled (the input, or the converted one beside the engine)
    plan: BuildPlan
    meta: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def converted_path(engine_path: str | os.PathLike[str], precision: str) -> Path:
    """Where the converted ONNX goes beside an engine: ``enet.engine`` -> ``enet.int8.onnx``."""
    p = Path(engine_path)
    return p.with_name(f"{p.stem}.{precision}.onnx")


def build_engine(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], *, precision: str = "fp32",
                 calib: CalibrationSpec | None = None, int8_mode: str = "auto", keep_fp32: Iterable[str] = (),
                 workspace_mb: int | None = None, dla_core: int | None = None,
                 timing_cache: str | os.PathLike[str] | None = None, rebuild_command: str | None = None,
                 extra: dict[str, Any] | None = None,
                 convert: Callable[[Path, Path, str], Any] | None = None) -> EngineResult:
    """ONNX -> engine + sidecar, as ``enet-build-engine -o X.engine`` does (needs TensorRT and a GPU).

    Plans the precision path for the installed TensorRT
    (:func:`enet.engine.trt_compat.plan_build`), converts the ONNX when the
    plan needs an FP16 or Q/DQ file (written beside the engine, see
    :func:`converted_path`), builds with Polygraphy, writes the engine
    atomically and its JSON sidecar.

    Args:
        convert: ``(model, out, precision)`` replacing the plain
            :func:`convert_onnx` call (the CLI uses it to report accuracy).

    Never run on a GPU in this project's CI (see docs/engines.md).
    """
    import shlex

    from enet.engine.onnx_info import input_dims
    from enet.engine.sidecar import make_sidecar, write_sidecar
    from enet.engine.cuda import gpu_info
    from enet.engine.trt_compat import plan_build, trt_features
    from enet.fileio import sha256_file, write_bytes

    trt = require("tensorrt")
    model, output = Path(onnx_path), Path(output)
    src = load_onnx(model)
    meta = read_meta(src, str(model))
    shape = static_input_shape(src, None, meta)
    input_name, _ = input_dims(src)
    plan = plan_build(trt_features(trt), precision, int8_mode=int8_mode, onnx_precision=precision_of(src),
                      dla=dla_core is not None)
    for note in plan.notes:
        log.info("%s", note)
    compiled = model
    if plan.onnx_precision != precision_of(src):
        compiled = converted_path(output, plan.onnx_precision)
        if convert is not None:
            convert(model, compiled, plan.onnx_precision)
        else:
            convert_onnx(model, compiled, precision=plan.onnx_precision, calib=calib, keep_fp32=keep_fp32)
    calib_batches = None
    if plan.calibrator:
        if calib is None:
            raise EnetError("INT8 needs calibration frames: pass --calib-data (CamVid root or a folder of frames)")
        paths = select_calibration_images(calib.data, calib.images)
        calib_batches = _batches_factory(paths, meta, shape)
    data = build_engine_bytes(compiled, plan, workspace_mb=workspace_mb, dla_core=dla_core,
                              timing_cache=timing_cache, calib_batches=calib_batches,
                              calib_cache=calib.cache if (calib and plan.calibrator) else None,
                              input_name=input_name, batch_size=shape[0])
    write_bytes(output, data)
    gpu, cc = gpu_info(0)
    rebuild = rebuild_command or shlex.join(
        ["enet-build-engine", str(model), *(["--" + precision] if precision != "fp32" else []), "-o", str(output)])
    info = {"plan": {"strongly_typed": plan.strongly_typed, "flags": list(plan.flags), "calibrator": plan.calibrator},
            "dla_core": dla_core}
    info.update(extra or {})
    side = write_sidecar(output, make_sidecar(
        tensorrt_version=trt.__version__, gpu_name=gpu, compute_capability=cc, precision=precision,
        input_shape=shape, input_name=input_name,
        onnx_path=os.path.relpath(compiled.resolve(), output.resolve().parent),
        onnx_sha256=sha256_file(compiled), meta=meta, rebuild_command=rebuild, extra=info,
    ))
    return EngineResult(output, side, compiled, plan, meta, shape, trt.__version__, gpu, cc)


def verify_engine(engine_path: str | os.PathLike[str], onnx_path: str | os.PathLike[str],
                  frames: Sequence[Path]) -> float:
    """Fraction of pixels whose argmax agrees between the engine and ONNX Runtime (CPU)."""
    from enet.engine.ort_backend import OrtBackend
    from enet.engine.trt_backend import TrtBackend

    agree = total = 0
    with TrtBackend(engine_path) as eng, OrtBackend(onnx_path, providers="cpu") as ref:
        for x in iter_batches(list(frames), eng.meta, eng.input_shape):
            a, b = eng.infer_labels(x), ref.infer_labels(x)
            agree += int((a == b).sum())
            total += a.size
    return agree / max(total, 1)


def engine_frames(meta: dict[str, Any], count: int, camvid_root: str | os.PathLike[str] | None) -> list[Path]:
    """A few frames to verify with: the dataset's val images if present, else none."""
    from enet.datasets import open_dataset

    if camvid_root is None or not Path(camvid_root).is_dir():
        return []
    info = open_dataset(camvid_root)
    if not info.has_split("val"):
        return []
    return evenly_spaced(info.image_paths("val"), count)


__all__ = ["CalibrationSpec", "ConvertResult", "convert_onnx", "compare_val", "edge_layers", "build_engine_bytes",
           "verify_engine", "engine_frames", "build_engine", "EngineResult", "converted_path"]
