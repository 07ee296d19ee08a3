"""The backends ``enet-bench`` knows, what each needs, and its artifacts.

A benchmark backend is a runtime plus a precision: ``torch`` (the
checkpoint), ``torch-fp16`` (the checkpoint in half precision, CUDA only),
``ort`` (float32 ONNX, as exported, default session options: the CPU
baseline), ``ort-int8`` (Q/DQ ONNX), ``ort-fast`` (the float32 ONNX in its
exact CPU form, :mod:`enet.export.cpu_graph`), ``openvino`` and
``openvino-int8`` (the same float32 and Q/DQ ONNX files in OpenVINO),
``trt-fp32``, ``trt-fp16``, ``trt-int8`` (TensorRT engines). Missing artifacts are built
with the toolkit's own functions (``enet.export.cache.cached_onnx``,
``enet.engine.quant.convert.convert_onnx``, and for engines
``enet.engine.trt.build.plan_engine``/``build_engine``, the same as
``enet-build-engine``: same plan, same sidecar, same check against ONNX
Runtime; no TensorRT build code lives in ``enet.bench``) and cached in the
user's cache folder (:mod:`enet.cache`) under names that carry the model's hash, the input
shape and the precision, so a second run reuses them and a different model
never does. The model is a checkpoint, or an ONNX file (then no PyTorch is
needed, at the ONNX's own input shape).

:func:`unavailable_reason` says, without building anything, why a backend
cannot run here (TensorRT missing, no GPU, ONNX Runtime missing); the CLI
lists such backends as skipped with that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enet.engine.runtime.cuda import gpu_available
from enet.errors import EnetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchBackend:
    """One column of the benchmark: runtime ``kind`` at ``precision``."""

    name: str
    kind: str  # enet.engine.runtime.backend kind: torch | ort | ort-fast | openvino | trt
    precision: str  # fp32 | fp16 | int8
    needs: tuple[str, ...]  # importable modules it needs


BACKENDS: dict[str, BenchBackend] = {b.name: b for b in (
    BenchBackend("torch", "torch", "fp32", ("torch",)),
    BenchBackend("torch-fp16", "torch", "fp16", ("torch",)),
    BenchBackend("ort", "ort", "fp32", ("onnxruntime",)),
    BenchBackend("ort-int8", "ort", "int8", ("onnxruntime",)),
    BenchBackend("ort-fast", "ort-fast", "fp32", ("onnxruntime",)),
    BenchBackend("openvino", "openvino", "fp32", ("openvino",)),
    BenchBackend("openvino-int8", "openvino", "int8", ("openvino",)),
    BenchBackend("trt-fp32", "trt", "fp32", ("tensorrt",)),
    BenchBackend("trt-fp16", "trt", "fp16", ("tensorrt",)),
    BenchBackend("trt-int8", "trt", "int8", ("tensorrt",)),
)}
DEFAULT_BACKENDS = tuple(b for b in BACKENDS if b != "torch-fp16")  # torch-fp16: CUDA only, opt-in
_ONNX_KINDS = ("ort", "ort-fast", "openvino")  # every ONNX runtime runs the same files


def parse_backends(text: str) -> list[BenchBackend]:
    """``"torch,ort"`` -> specs, in the order given, duplicates dropped."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise EnetError(f"--backend is empty; choose from {','.join(BACKENDS)}")
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise EnetError(f"unknown backend {', '.join(bad)} in --backend; choose from {','.join(BACKENDS)}")
    return [BACKENDS[n] for n in dict.fromkeys(names)]


def _module_available(name: str) -> bool:
    from enet._lazy import available

    return available(name)


def _torch_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def unavailable_reason(spec: BenchBackend, device_kind: str, *,
                       available: Callable[[str], bool] = _module_available,
                       has_gpu: Callable[[], bool] = gpu_available,
                       torch_cuda: Callable[[], bool] = _torch_cuda) -> str | None:
    """Why ``spec`` cannot run on this machine, or None if it can (nothing is built)."""
    from enet._lazy import install_hint

    for mod in spec.needs:
        if not available(mod):
            # the shared hint: torch is the project's CPU build or NVIDIA's Jetson wheel, never a bare pip install
            return f"{mod} is not installed ({install_hint(mod)})"
    if spec.kind == "torch" and spec.precision == "fp16":
        if device_kind == "cpu":
            return "FP16 PyTorch runs on CUDA only; --device cpu was chosen (or no GPU was found)"
        if not torch_cuda():
            return "FP16 PyTorch runs on CUDA only, and this PyTorch sees no CUDA GPU (a CPU build of torch?)"
    if spec.kind == "trt":
        if device_kind == "cpu":
            return "TensorRT needs an NVIDIA GPU; --device cpu was chosen (or no GPU was found)"
        if device_kind != "jetson" and not has_gpu():  # every Jetson has its integrated GPU
            return "no NVIDIA GPU found (TensorRT needs one)"
    return None


# ------------------------------------------------------------------ artifacts

class Artifacts:
    """Builds and caches the files each backend runs, in the user's cache folder.

    The model is a checkpoint (``.pth``: every size can be exported) or an
    ONNX file (``.onnx``: its one static input shape, and no PyTorch needed).
    The float32 ONNX of a checkpoint is :func:`enet.export.cache.cached_onnx`
    (shared with the camera pipeline); the INT8 ONNX and the engines built
    from it sit beside it, named after it.

    Args:
        model: the ``.pth`` checkpoint or ``.onnx`` model everything is derived from.
        folder: cache folder (default: ``enet.cache.cache_dir("models")``).
        camvid: CamVid root for INT8 calibration (its ``train/``).
        calib_images: number of calibration frames.
        builders: override the build functions (tests): keys ``onnx``
            ``(target, height, width, batch)``, ``int8`` ``(onnx_path,
            target, height, width, batch)``, ``engine`` ``(onnx_path, target,
            precision)``.
    """

    def __init__(self, model: Path, folder: Path | None = None, *, camvid: Path | None = None,
                 calib_images: int | None = None, builders: dict[str, Callable[..., Any]] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        from enet.cache import cache_dir
        from enet.engine.runtime.backend import backend_kind
        from enet.export.cache import MODELS, model_key

        self.model = Path(model)
        self.kind = backend_kind(self.model)
        if self.kind not in ("torch", "ort"):
            raise EnetError(f"enet-bench runs a checkpoint (.pth) or an ONNX model (.onnx), not {self.model.name}")
        self.folder = Path(folder) if folder is not None else cache_dir(MODELS)
        self.folder.mkdir(parents=True, exist_ok=True)
        from enet.engine.quant.calibration import DEFAULT_CALIB_IMAGES

        self.camvid = camvid
        self.calib_images = DEFAULT_CALIB_IMAGES if calib_images is None else int(calib_images)
        self._builders = builders or {}
        self._say = say or log.info
        self._key = model_key(self.model)
        self.onnx_shape: tuple[int, ...] | None = None
        if self.kind == "ort":
            from enet.engine.runtime.onnx_info import load_onnx, read_meta, static_input_shape

            src = load_onnx(self.model, check=False)
            self.onnx_shape = static_input_shape(src, None, read_meta(src, str(self.model)))
        self.built: list[str] = []

    @property
    def calib_cache(self) -> Path:
        """INT8 activation ranges, shared by every resolution of this model."""
        return self.folder / f"{self._key}.int8-ranges-{self.calib_images}.json"

    def unsupported(self, spec: BenchBackend, height: int, width: int, batch: int) -> str | None:
        """Why this model cannot give ``spec``'s artifact at that shape, or None (nothing is built)."""
        if self.kind == "torch":
            return None
        if spec.kind == "torch":
            return f"the torch backend runs a checkpoint (.pth); {self.model.name} is an ONNX model"
        assert self.onnx_shape is not None
        if tuple(self.onnx_shape) != (batch, 3, height, width):
            n, _, h, w = self.onnx_shape
            return (f"{self.model.name} takes {w}x{h} batch {n}; pass a checkpoint (.pth) as --model "
                    "to benchmark other sizes")
        return None

    def _stem(self, height: int, width: int, batch: int) -> str:
        if self.kind == "ort":  # the ONNX has one shape: its name says enough
            return self._key
        return self.onnx(height, width, batch).stem

    def onnx(self, height: int, width: int, batch: int) -> Path:
        """The float32 ONNX at that shape: the model itself, or the checkpoint's cached export."""
        if self.kind == "ort":
            return self.model
        from enet.export.cache import cached_onnx_path

        return cached_onnx_path(self.model, height, width, batch=batch, folder=self.folder)

    def engine_onnx(self, height: int, width: int, batch: int) -> Path:
        """The float32 ONNX a TensorRT engine is built from: the one ``enet-run`` builds its first-run engine
        from (the model itself, or the checkpoint's export with the ``labels`` output), so both use one
        engine file; exported first when missing."""
        if self.kind == "ort":
            return self.model
        from enet.export.cache import cached_onnx_path

        target = cached_onnx_path(self.model, height, width, batch=batch, labels=True, folder=self.folder)
        if not target.is_file():
            self._call("onnx_labels", target, height, width, batch)
            if not target.is_file():
                raise EnetError(f"building {target.name} produced no file")
        return target

    def path(self, spec: BenchBackend, height: int, width: int, batch: int) -> Path:
        """Where ``spec``'s artifact for ``(batch, 3, height, width)`` lives (the checkpoint for torch).

        A TensorRT engine lives in the one engine cache, under the one key
        (:func:`enet.engine.trt.engine_cache.cached_engine_path`: ONNX hash, TensorRT, GPU, precision),
        the file ``enet-run`` builds and uses on first run (needs TensorRT and a GPU).
        """
        if spec.kind == "torch":
            return self.model
        if spec.kind == "trt":
            from enet.engine.trt.engine_cache import cached_engine_path

            return cached_engine_path(self.engine_onnx(height, width, batch), spec.precision)
        if spec.kind in _ONNX_KINDS and spec.precision == "fp32":
            return self.onnx(height, width, batch)
        stem = self._stem(height, width, batch)
        if spec.kind in _ONNX_KINDS:
            return self.folder / f"{stem}.{spec.precision}.onnx"
        return self.folder / f"{stem}.{spec.precision}.engine"

    def get(self, spec: BenchBackend, height: int, width: int, batch: int) -> Path:
        """The artifact, built first if missing.

        Raises:
            EnetError: a builder failed (or is not part of this toolkit), or
                the model cannot give this shape (see :meth:`unsupported`).
        """
        reason = self.unsupported(spec, height, width, batch)
        if reason:
            raise EnetError(reason)
        if spec.kind == "trt":
            return self._engine(spec, height, width, batch)
        target = self.path(spec, height, width, batch)
        if target.is_file():
            return target
        if spec.kind in _ONNX_KINDS and spec.precision == "fp32":
            self._call("onnx", target, height, width, batch)
        elif spec.kind in _ONNX_KINDS:
            onnx_path = self.get(BACKENDS["ort"], height, width, batch)
            self._call("int8", onnx_path, target, height, width, batch)
        if not target.is_file():
            raise EnetError(f"building {target.name} produced no file")
        self.built.append(str(target))
        return target

    def _engine(self, spec: BenchBackend, height: int, width: int, batch: int) -> Path:
        """The engine from the one cache when the one authority accepts it here, else built (again)."""
        from enet.engine.runtime.sidecar import engine_mismatch, this_host
        from enet.fileio import sha256_file

        onnx_path = self.engine_onnx(height, width, batch)
        target = self.path(spec, height, width, batch)
        sha = sha256_file(onnx_path)

        def mismatch() -> str | None:
            return engine_mismatch(target, onnx_sha256=sha, precision=spec.precision, host=this_host())

        why = mismatch()
        if why is None:
            return target
        if target.exists():
            self._say(f"rebuilding {target}: {why}")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._call("engine", onnx_path, target, spec.precision)
        why = mismatch()
        if why is not None:
            raise EnetError(f"building the {spec.name} engine for {onnx_path.name} gave no valid engine ({why})")
        self.built.append(str(target))
        return target

    def _call(self, what: str, *args: Any) -> None:
        fn = self._builders.get(what) or getattr(self, f"_build_{what}")
        target = args[0] if what in ("onnx", "onnx_labels") else args[1]
        log.info("building %s", Path(target).name)
        fn(*args)

    # The toolkit's own builders, imported only when a build is needed.

    def _build_onnx(self, target: Path, height: int, width: int, batch: int) -> None:
        from enet.export.cache import cached_onnx

        cached_onnx(self.model, height=height, width=width, batch=batch, folder=target.parent)

    def _build_onnx_labels(self, target: Path, height: int, width: int, batch: int) -> None:
        from enet.export.cache import cached_onnx

        cached_onnx(self.model, height=height, width=width, batch=batch, labels=True, folder=target.parent)

    def _calib_spec(self) -> Any:
        from enet.defaults import default_camvid_root
        from enet.engine.quant.convert import CalibrationSpec

        return CalibrationSpec(data=self.camvid or default_camvid_root(), images=self.calib_images,
                               cache=self.calib_cache)

    def _build_int8(self, onnx_path: Path, target: Path, height: int, width: int, batch: int) -> None:
        """Q/DQ INT8 ONNX (``enet.engine.quant.convert.convert_onnx``).

        Activation ranges hardly depend on the input size, so for a
        checkpoint they are calibrated once, at its own size (CamVid's
        480x360), and reused from the range cache at every other size; this
        keeps a four-resolution run from calibrating at 1920x1080 on a CPU.
        """
        from enet.engine.quant.convert import convert_onnx

        if self.kind == "torch" and not self.calib_cache.is_file():
            from enet.checkpoint import load_checkpoint

            h0, w0 = (int(v) for v in load_checkpoint(self.model)["meta"]["input_size"])
            if (h0, w0, 1) != (height, width, batch):
                log.info("calibrating INT8 ranges at %dx%d on %d CamVid frames", w0, h0, self.calib_images)
                self.get(BACKENDS["ort-int8"], h0, w0, 1)
        convert_onnx(onnx_path, target, precision="int8", calib=self._calib_spec())

    def _build_engine(self, onnx_path: Path, target: Path, precision: str) -> None:
        """A TensorRT engine built as ``enet-run`` builds it on first run, into the one cache
        (:func:`enet.engine.trt.engine_cache.first_run_engine`: the same plan, calibration, gate against
        the float32 model and sidecar as ``enet-build-engine``). An INT8 engine below the gate fails here
        (the bench times what was asked, never an FP16 stand-in)."""
        from enet.engine.trt.engine_cache import first_run_engine

        first_run_engine(onnx_path, precision=precision, root=target.parent.parent, data_root=self.camvid,
                         calib_images=self.calib_images, fallback=False, say=self._say)
