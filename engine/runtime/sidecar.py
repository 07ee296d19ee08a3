"""The JSON sidecar written beside every engine, and the check made on load.

A TensorRT engine runs only on the TensorRT version and GPU model it was
built with; loading it elsewhere fails deep inside ``deserialize_cuda_engine``
or, worse, runs slowly. The sidecar (``<engine>.json``) records where it was
built, so loading elsewhere fails in one line with the command that rebuilds
it. It also carries the model metadata the backend needs (classes, palette,
mean, std, ...), copied from the ONNX, and the names of the input and output
tensors, which the runner uses instead of guessing by dtype or position.

Engine and sidecar are written as a pair (:func:`write_engine_pair`): the
sidecar records the engine's sha256, so an engine whose sidecar belongs to
another build (a crash between the two renames, a copied file) is refused
on load instead of running with the wrong facts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from enet.errors import EnetError
from enet.fileio import new_file_mode, write_text

FORMAT = "enet-rt-engine"
FORMAT_VERSION = 2  # 2: output names and the engine's sha256


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``enet.engine`` -> ``enet.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def make_sidecar(*, tensorrt_version: str, gpu_name: str, compute_capability: str, precision: str,
                 input_shape: tuple[int, ...], input_name: str, outputs: dict[str, str | None],
                 onnx_path: str | os.PathLike[str], onnx_sha256: str, meta: dict[str, Any], rebuild_command: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble the sidecar dict (JSON-able).

    Args:
        outputs: ``{"logits": name or None, "labels": name or None}``, the
            ONNX output names (:func:`enet.engine.runtime.onnx_info.output_roles`).
    """
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "precision": precision,
        "input_name": input_name,
        "input_shape": [int(v) for v in input_shape],
        "outputs": {"logits": outputs.get("logits"), "labels": outputs.get("labels")},
        "onnx": str(onnx_path),  # relative to the engine's folder
        "onnx_sha256": onnx_sha256,
        "rebuild_command": rebuild_command,
        "meta": meta,
    }
    if extra:
        data.update(extra)
    return data


def write_sidecar(engine_path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Rewrite the sidecar of an existing engine (atomically); the pair stays matched by ``engine_sha256``."""
    path = sidecar_path(engine_path)
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def write_engine_pair(engine_path: str | os.PathLike[str], engine: bytes, data: dict[str, Any]) -> Path:
    """Write an engine and its sidecar so that neither exists without the other.

    Both are written to temporary files beside their final names first. The
    old sidecar is removed, the new engine renamed into place, then the new
    sidecar; if anything fails (or Ctrl-C) in between, the new engine is
    removed again. Renames are atomic, two of them together are not, so the
    sidecar also records the engine's sha256 and :func:`check_engine_bytes`
    refuses a pair that does not match.

    Returns:
        The sidecar path.

    Raises:
        EnetError: the folder does not exist or cannot be written.
    """
    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    folder = engine_path.parent if str(engine_path.parent) else Path(".")
    if not folder.is_dir():
        raise EnetError(f"cannot write {engine_path}: folder {folder} does not exist")
    from enet.fileio import clean_stale_temps

    clean_stale_temps(engine_path)  # temps of a build killed while writing
    data = dict(data, engine_sha256=hashlib.sha256(engine).hexdigest())
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    tmps: list[Path] = []
    try:
        for payload in (engine, text.encode("utf-8")):
            fd, tmp = tempfile.mkstemp(prefix=f".{engine_path.name}.", suffix=".tmp", dir=folder)
            tmps.append(Path(tmp))
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, new_file_mode())
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
        os.replace(tmps[0], engine_path)
        try:
            os.replace(tmps[1], side)
        except BaseException:
            with contextlib.suppress(OSError):
                engine_path.unlink()
            raise
    except OSError as exc:
        raise EnetError(f"cannot write {engine_path}: {exc.strerror}") from None
    finally:
        for t in tmps:
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
    return side


def check_engine_bytes(engine_path: str | os.PathLike[str], engine: bytes, data: dict[str, Any]) -> None:
    """Refuse an engine whose bytes are not the ones its sidecar was written for.

    Raises:
        EnetError: with the rebuild command.
    """
    if hashlib.sha256(engine).hexdigest() != data.get("engine_sha256"):
        raise EnetError(
            f"{engine_path} does not match its sidecar {sidecar_path(engine_path).name} (an interrupted build or "
            f"a file copied over?); rebuild it: {data.get('rebuild_command') or 'enet-build-engine'}"
        )


def read_sidecar(engine_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate ``<engine>.json``.

    Raises:
        EnetError: missing, unreadable or not an enet-rt engine sidecar.
    """
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise EnetError(
            f"{engine_path} has no sidecar {path.name} (TensorRT version, GPU, model metadata); "
            "rebuild the engine with enet-build-engine"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnetError(f"cannot read engine sidecar {path} ({exc}); rebuild with enet-build-engine") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EnetError(f"{path} is not an enet-rt engine sidecar; rebuild with enet-build-engine")
    if int(data.get("format_version", 1)) < FORMAT_VERSION:
        raise EnetError(f"engine sidecar {path} is from an older enet-rt (no output names, no engine hash); "
                        f"rebuild the engine: {data.get('rebuild_command') or 'enet-build-engine'}")
    missing = [k for k in ("tensorrt_version", "gpu_name", "compute_capability", "input_shape", "input_name",
                           "outputs", "engine_sha256", "meta") if k not in data]
    if missing:
        raise EnetError(f"engine sidecar {path} lacks {', '.join(missing)}; rebuild with enet-build-engine")
    return data


def sidecar_onnx(engine_path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """The ONNX the engine was compiled from, resolved against the engine's folder."""
    p = Path(data["onnx"])
    return p if p.is_absolute() else Path(engine_path).parent / p


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def check_sidecar(data: dict[str, Any], *, tensorrt_version: str, gpu_name: str, compute_capability: str,
                  engine_path: str | os.PathLike[str] = "the engine") -> None:
    """Fail in one line when the engine was built for another TensorRT or GPU.

    TensorRT engines are tied to the exact TensorRT release (8.6.1 and 8.6.2
    differ) and the GPU model; the compute capability alone is not enough
    (an engine's tactics are timed on one SM count and clock).

    Raises:
        EnetError: naming both sides and the rebuild command.
    """
    rebuild = data.get("rebuild_command") or "enet-build-engine MODEL.onnx -o ENGINE"
    reason = host_mismatch(data, tensorrt_version=tensorrt_version, gpu_name=gpu_name,
                           compute_capability=compute_capability)
    if reason:
        raise EnetError(f"{engine_path} was {reason}; rebuild it here: {rebuild}")


# --------------------------------------------------------------------------- the one authority


def this_host(device: int = 0) -> dict[str, str]:
    """The TensorRT version, GPU name and compute capability here (needs TensorRT and a GPU)."""
    from enet._lazy import require
    from enet.engine.runtime import cuda

    trt = require("tensorrt")
    name, cc = cuda.gpu_info(device)
    return {"tensorrt_version": str(trt.__version__), "gpu_name": str(name), "compute_capability": str(cc)}


def engine_mismatch(engine_path: str | os.PathLike[str], *, onnx_sha256: str | None = None,
                    checkpoint_sha256: str | None = None, precision: str | None = None, size: tuple[int, int] | None = None,
                    host: dict[str, str] | None = None, dla_core: int | None | str = "any",
                    check_bytes: bool = True) -> str | None:
    """The one answer to "is this engine valid for this model, here?": None when it is, else what differs.

    Every path that picks an engine asks this (the engine beside a model in
    :func:`enet.engine.runtime.resolve.resolve`, the first-run cache
    :mod:`enet.engine.trt.engine_cache`, ``enet-bench``'s engines, ``enet-batch``
    and :class:`enet.Segmenter` through the resolution); :class:`TrtBackend`
    asks it for the host part on load.

    Args:
        onnx_sha256: the sha256 of the ONNX the engine must have been built from: the
            float32 source the build was given (``source_onnx_sha256``) or the
            ONNX TensorRT compiled (``onnx_sha256``); None: not checked.
        checkpoint_sha256: the sha256 of the checkpoint the engine's ONNX was exported from (the ONNX
            metadata's ``source_sha256``, copied into the sidecar); None: not checked.
        precision: ``fp32|fp16|int8`` the engine must run; None or ``auto``: any.
        size: ``(H, W)`` the engine must take; None: any.
        host: :func:`this_host` (TensorRT version, GPU name, compute capability); None: not checked
            (no TensorRT here: the backend checks again on load).
        dla_core: the DLA core the engine must target (None: the GPU); ``"any"``: not checked.
        check_bytes: the engine's bytes must be the ones its sidecar was written for.

    Returns:
        None, or one phrase naming the mismatch (``"built from another ONNX (sha256 1234abcd..., this
        model 5678ef01...)"``), to which callers add the rebuild command.
    """
    path = Path(engine_path)
    if not path.is_file():
        return f"{path} does not exist"
    try:
        data = read_sidecar(path)
    except EnetError as exc:
        return str(exc).split(";")[0]
    if checkpoint_sha256 is not None:
        was = str(data.get("meta", {}).get("source_sha256") or "")
        if was != checkpoint_sha256:
            return f"built from another checkpoint (sha256 {was[:12] or 'not recorded'}, this model {checkpoint_sha256[:12]})"
    if onnx_sha256 is not None:
        known = {str(data.get("source_onnx_sha256") or ""), str(data.get("onnx_sha256") or "")} - {""}
        if onnx_sha256 not in known:
            was = str(data.get("source_onnx_sha256") or data.get("onnx_sha256") or "?")
            return f"built from another ONNX (sha256 {was[:12]}, this model {onnx_sha256[:12]})"
    if precision not in (None, "auto") and str(data.get("precision")) != precision:
        return f"built as {data.get('precision')}, {precision} was asked"
    if size is not None:
        hw = tuple(int(v) for v in data["input_shape"][2:4])
        if hw != tuple(int(v) for v in size):
            return f"built for input {hw[1]}x{hw[0]}, {int(size[1])}x{int(size[0])} was asked"
    if dla_core != "any":
        built = data.get("dla_core")
        if (None if built is None else int(built)) != (None if dla_core is None else int(dla_core)):
            where = lambda c: "the GPU" if c is None else f"DLA core {c}"  # noqa: E731
            return f"built for {where(built)}, {where(dla_core)} was asked"
    if host is not None:
        reason = host_mismatch(data, **host)
        if reason:
            return reason
    if check_bytes:
        import hashlib

        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != data.get("engine_sha256"):
            return f"{path.name} does not match its sidecar (an interrupted build or a file copied over?)"
    return None


def host_mismatch(data: dict[str, Any], *, tensorrt_version: str, gpu_name: str,
                  compute_capability: str) -> str | None:
    """What differs between the TensorRT and GPU an engine was built for and these; None when nothing."""
    if not _same_version(str(data["tensorrt_version"]), tensorrt_version):
        return f"built with TensorRT {data['tensorrt_version']}, this machine has TensorRT {tensorrt_version}"
    if str(data["gpu_name"]) != gpu_name or str(data["compute_capability"]) != compute_capability:
        return (f"built for {data['gpu_name']} (sm {data['compute_capability']}), this GPU is {gpu_name} "
                f"(sm {compute_capability})")
    return None


def rebuild_command(engine_path: str | os.PathLike[str]) -> str:
    """The command that rebuilds ``engine_path`` (from its sidecar when readable)."""
    try:
        return str(read_sidecar(engine_path).get("rebuild_command") or "enet-build-engine MODEL.onnx -o ENGINE")
    except EnetError:
        return f"enet-build-engine MODEL.onnx -o {engine_path}"
