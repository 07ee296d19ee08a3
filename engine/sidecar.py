"""The JSON sidecar written beside every engine, and the check made on load.

A TensorRT engine runs only on the TensorRT version and GPU model it was
built with; loading it elsewhere fails deep inside ``deserialize_cuda_engine``
or, worse, runs slowly. The sidecar (``<engine>.json``) records where it was
built, so loading elsewhere fails in one line with the command that rebuilds
it. It also carries the model metadata the backend needs (classes, palette,
mean, std, ...), copied from the ONNX.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from enet.errors import EnetError
from enet.fileio import write_text

FORMAT = "enet-rt-engine"
FORMAT_VERSION = 1


def sidecar_path(engine_path: str | os.PathLike[str]) -> Path:
    """``enet.engine`` -> ``enet.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def make_sidecar(*, tensorrt_version: str, gpu_name: str, compute_capability: str, precision: str,
                 input_shape: tuple[int, ...], input_name: str, onnx_path: str | os.PathLike[str],
                 onnx_sha256: str, meta: dict[str, Any], rebuild_command: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble the sidecar dict (JSON-able)."""
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "precision": precision,
        "input_name": input_name,
        "input_shape": [int(v) for v in input_shape],
        "onnx": str(onnx_path),  # relative to the engine's folder
        "onnx_sha256": onnx_sha256,
        "rebuild_command": rebuild_command,
        "meta": meta,
    }
    if extra:
        data.update(extra)
    return data


def write_sidecar(engine_path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    path = sidecar_path(engine_path)
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


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
    missing = [k for k in ("tensorrt_version", "gpu_name", "compute_capability", "input_shape", "meta")
               if k not in data]
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
    if not _same_version(str(data["tensorrt_version"]), tensorrt_version):
        raise EnetError(
            f"{engine_path} was built with TensorRT {data['tensorrt_version']}, this machine has "
            f"TensorRT {tensorrt_version}; rebuild it here: {rebuild}"
        )
    if str(data["gpu_name"]) != gpu_name or str(data["compute_capability"]) != compute_capability:
        raise EnetError(
            f"{engine_path} was built for {data['gpu_name']} (sm {data['compute_capability']}), this GPU is "
            f"{gpu_name} (sm {compute_capability}); rebuild it here: {rebuild}"
        )
