"""The backends ``enet-bench`` knows, what each needs, and its artifacts.

A benchmark backend is a runtime plus a precision: ``torch`` (the
checkpoint), ``ort`` (float32 ONNX, as exported, default session options:
the CPU baseline), ``ort-int8`` (Q/DQ ONNX), ``ort-fast`` (the float32 ONNX
in its exact CPU form, :mod:`enet.export.cpu_graph`), ``openvino`` and
``openvino-int8`` (the same float32 and Q/DQ ONNX files in OpenVINO),
``trt-fp32``, ``trt-fp16``, ``trt-int8`` (TensorRT engines). Missing artifacts are built
with the toolkit's own functions (``enet.export.onnx.export_onnx``,
``enet.engine.quantize``, ``enet.engine.build``) and cached in
``<output>/artifacts`` under names that carry the model's hash, the input
shape and the precision, so a second run reuses them and a different model
never does.

:func:`unavailable_reason` says, without building anything, why a backend
cannot run here (TensorRT missing, no GPU, ONNX Runtime missing); the CLI
lists such backends as skipped with that reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enet.errors import EnetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchBackend:
    """One column of the benchmark: runtime ``kind`` at ``precision``."""

    name: str
    kind: str  # enet.engine.backend kind: torch | ort | ort-fast | openvino | trt
    precision: str  # fp32 | fp16 | int8
    needs: tuple[str, ...]  # importable modules it needs


BACKENDS: dict[str, BenchBackend] = {b.name: b for b in (
    BenchBackend("torch", "torch", "fp32", ("torch",)),
    BenchBackend("ort", "ort", "fp32", ("onnxruntime",)),
    BenchBackend("ort-int8", "ort", "int8", ("onnxruntime",)),
    BenchBackend("ort-fast", "ort-fast", "fp32", ("onnxruntime",)),
    BenchBackend("openvino", "openvino", "fp32", ("openvino",)),
    BenchBackend("openvino-int8", "openvino", "int8", ("openvino",)),
    BenchBackend("trt-fp32", "trt", "fp32", ("tensorrt",)),
    BenchBackend("trt-fp16", "trt", "fp16", ("tensorrt",)),
    BenchBackend("trt-int8", "trt", "int8", ("tensorrt",)),
)}
DEFAULT_BACKENDS = tuple(BACKENDS)
_ONNX_KINDS = ("ort", "ort-fast", "openvino")


def parse_backends(text: str) -> list[BenchBackend]:
    """``"torch,ort"`` -> specs, in the order given, duplicates dropped."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise EnetError(f"--backends is empty; choose from {','.join(BACKENDS)}")
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise EnetError(f"unknown backend {', '.join(bad)} in --backends; choose from {','.join(BACKENDS)}")
    return [BACKENDS[n] for n in dict.fromkeys(names)]


def _module_available(name: str) -> bool:
    from enet._lazy import available

    return available(name)


def gpu_available() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except Exception:  # noqa: BLE001
        pass
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvhost-gpu") or os.path.exists("/dev/nvgpu/igpu0/ctrl")


def unavailable_reason(spec: BenchBackend, device_kind: str, *,
                       available: Callable[[str], bool] = _module_available,
                       has_gpu: Callable[[], bool] = gpu_available) -> str | None:
    """Why ``spec`` cannot run on this machine, or None if it can (nothing is built)."""
    for mod in spec.needs:
        if not available(mod):
            fix = {"tensorrt": "pip install 'enet-rt[tensorrt]' (on Jetson: JetPack's TensorRT, venv with "
                               "--system-site-packages)",
                   "openvino": "pip install 'enet-rt[openvino]'"}.get(mod, f"pip install {mod}")
            return f"{mod} is not installed ({fix})"
    if spec.kind == "trt":
        if device_kind == "cpu":
            return "TensorRT needs an NVIDIA GPU; --device cpu was chosen (or no GPU was found)"
        if device_kind != "jetson" and not has_gpu():  # every Jetson has its integrated GPU
            return "no NVIDIA GPU found (TensorRT needs one)"
    return None


# ------------------------------------------------------------------ artifacts

def _short_hash(path: Path) -> str:
    from enet.fileio import sha256_file

    return sha256_file(path)[:10]


class Artifacts:
    """Builds and caches the files each backend runs, under ``folder``.

    Args:
        model: the ``.pth`` checkpoint everything is derived from.
        folder: cache folder (created).
        camvid: CamVid root for INT8 calibration (its ``train/``).
        calib_images: number of calibration frames.
        builders: override the build functions (tests): keys ``onnx``
            ``(target, height, width, batch)``, ``int8`` ``(onnx_path,
            target, height, width, batch)``, ``engine`` ``(onnx_path, target,
            precision)``.
    """

    def __init__(self, model: Path, folder: Path, *, camvid: Path | None = None, calib_images: int = 64,
                 builders: dict[str, Callable[..., Any]] | None = None) -> None:
        self.model = Path(model)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.camvid = camvid
        self.calib_images = calib_images
        self._builders = builders or {}
        self._tag = f"enet-{_short_hash(self.model)}"
        self.built: list[str] = []

    @property
    def calib_cache(self) -> Path:
        """INT8 activation ranges, shared by every resolution of this model."""
        return self.folder / f"{self._tag}.int8-ranges-{self.calib_images}.json"

    def path(self, spec: BenchBackend, height: int, width: int, batch: int) -> Path:
        """Where ``spec``'s artifact for ``(batch, 3, height, width)`` lives (the checkpoint for torch)."""
        if spec.kind == "torch":
            return self.model
        stem = f"{self._tag}-{width}x{height}-b{batch}"
        if spec.kind in _ONNX_KINDS:  # every ONNX runtime runs the same files
            return self.folder / (f"{stem}.onnx" if spec.precision == "fp32" else f"{stem}.{spec.precision}.onnx")
        return self.folder / f"{stem}.{spec.precision}.engine"

    def get(self, spec: BenchBackend, height: int, width: int, batch: int) -> Path:
        """The artifact, built first if missing.

        Raises:
            EnetError: a builder failed (or is not part of this toolkit).
        """
        target = self.path(spec, height, width, batch)
        if target.is_file():
            return target
        if spec.kind in _ONNX_KINDS and spec.precision == "fp32":
            self._call("onnx", target, height, width, batch)
        elif spec.kind in _ONNX_KINDS:
            onnx_path = self.get(BACKENDS["ort"], height, width, batch)
            self._call("int8", onnx_path, target, height, width, batch)
        else:
            onnx_path = self.get(BACKENDS["ort"], height, width, batch)
            self._call("engine", onnx_path, target, spec.precision)
        if not target.is_file():
            raise EnetError(f"building {target.name} produced no file")
        self.built.append(str(target))
        return target

    def _call(self, what: str, *args: Any) -> None:
        fn = self._builders.get(what) or getattr(self, f"_build_{what}")
        target = args[0] if what == "onnx" else args[1]
        log.info("building %s", Path(target).name)
        fn(*args)

    # The toolkit's own builders, imported only when a build is needed.

    def _build_onnx(self, target: Path, height: int, width: int, batch: int) -> None:
        from enet.export.onnx import export_onnx

        export_onnx(self.model, target, height=height, width=width, batch=batch)

    def _calib_spec(self) -> Any:
        from enet.defaults import default_camvid_root
        from enet.engine.build import CalibrationSpec

        return CalibrationSpec(data=self.camvid or default_camvid_root(), images=self.calib_images,
                               cache=self.calib_cache)

    def _build_int8(self, onnx_path: Path, target: Path, height: int, width: int, batch: int) -> None:
        """Q/DQ INT8 ONNX (``enet.engine.build.convert_onnx``).

        Activation ranges hardly depend on the input size, so they are
        calibrated once, at the checkpoint's own size (CamVid's 480x360), and
        reused from the range cache at every other size; this keeps a
        four-resolution run from calibrating at 1920x1080 on a CPU.
        """
        from enet.checkpoint import load_checkpoint
        from enet.engine.build import convert_onnx

        if not self.calib_cache.is_file():
            h0, w0 = (int(v) for v in load_checkpoint(self.model)["meta"]["input_size"])
            if (h0, w0, 1) != (height, width, batch):
                log.info("calibrating INT8 ranges at %dx%d on %d CamVid frames", w0, h0, self.calib_images)
                self.get(BACKENDS["ort-int8"], h0, w0, 1)
        convert_onnx(onnx_path, target, precision="int8", calib=self._calib_spec())

    def _build_engine(self, onnx_path: Path, target: Path, precision: str) -> None:
        """A TensorRT engine and its sidecar, as ``enet-build-engine`` builds one.

        The precision plan (strong typing, builder flags, Q/DQ or calibrator)
        comes from ``enet.engine.trt_compat.plan_build`` for the installed
        TensorRT; a converted ONNX it needs is cached beside the engine.
        """
        import shlex

        from enet._lazy import require
        from enet.engine.build import build_engine_bytes, convert_onnx
        from enet.engine.calibration import iter_batches, select_calibration_images
        from enet.engine.onnx_info import input_dims, load_onnx, read_meta, static_input_shape
        from enet.engine.sidecar import make_sidecar, write_sidecar
        from enet.engine.trt_backend import gpu_info
        from enet.engine.trt_compat import plan_build, trt_features
        from enet.fileio import sha256_file, write_bytes

        trt = require("tensorrt")
        src = load_onnx(onnx_path)
        meta = read_meta(src, str(onnx_path))
        shape = static_input_shape(src, None, meta)
        input_name, _ = input_dims(src)
        plan = plan_build(trt_features(trt), precision, onnx_precision="fp32")
        for note in plan.notes:
            log.info("%s", note)
        compiled = Path(onnx_path)
        if plan.onnx_precision == "int8":
            compiled = self.get(BACKENDS["ort-int8"], shape[2], shape[3], shape[0])
        elif plan.onnx_precision == "fp16":
            compiled = Path(onnx_path).with_name(Path(onnx_path).stem + ".fp16.onnx")
            if not compiled.is_file():
                convert_onnx(onnx_path, compiled, precision="fp16")
        calib_batches = None
        if plan.calibrator:
            paths = select_calibration_images(self._calib_spec().data, self.calib_images)
            calib_batches = lambda: iter_batches(paths, meta, shape)  # noqa: E731
        data = build_engine_bytes(compiled, plan, calib_batches=calib_batches, input_name=input_name,
                                  batch_size=shape[0])
        write_bytes(target, data)
        gpu, cc = gpu_info(0)
        argv = ["enet-build-engine", str(compiled), *(["--" + precision] if precision != "fp32" else []),
                "-o", str(target)]
        write_sidecar(target, make_sidecar(
            tensorrt_version=trt.__version__, gpu_name=gpu, compute_capability=cc, precision=precision,
            input_shape=shape, input_name=input_name, onnx_path=compiled, onnx_sha256=sha256_file(compiled),
            meta=meta, rebuild_command=shlex.join(argv),
            extra={"plan": {"strongly_typed": plan.strongly_typed, "flags": list(plan.flags),
                            "calibrator": plan.calibrator}, "built_by": "enet-bench"},
        ))
