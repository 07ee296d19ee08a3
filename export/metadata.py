"""ONNX metadata of an enet-rt export: writing and reading ``metadata_props``.

The checkpoint's metadata (classes, palette, mean/std, input size, resize
method, measured metrics) travels in the ONNX as JSON strings, with the
export's provenance. Engines, the benchmark and the camera pipeline read it
through :func:`read_onnx_metadata` and nowhere else.

Imports numpy/onnx only, never torch: running an ``.onnx`` must not need
PyTorch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from enet.defaults import what_is_wrong
from enet.errors import EnetError
from enet.transforms import DEFAULT_RESIZE

FORMAT = "enet-rt-onnx"
FORMAT_VERSION = 1


class OnnxMetadataError(EnetError):
    """An ONNX file is unreadable or lacks enet-rt metadata."""


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("enet-rt")
    except PackageNotFoundError:
        return "unknown"



def onnx_metadata(meta: dict[str, Any], *, height: int, width: int, unpool: str, source_sha256: str,
                  source_name: str = "", labels: bool = False) -> dict[str, str]:
    """``metadata_props`` for an export: checkpoint metadata plus provenance, JSON-encoded.

    Keys: ``classes``, ``palette``, ``void_index``, ``mean``, ``std``,
    ``resize`` (the checkpoint's, else :data:`enet.transforms.DEFAULT_RESIZE`),
    ``input_size`` ([H, W] of this graph), ``checkpoint_input_size``,
    ``metrics`` (when the checkpoint has them), ``source_sha256``,
    ``source_name``, ``toolkit_version``, ``unpool``, ``outputs``,
    ``format``, ``format_version``.
    """
    out: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": list(meta["classes"]),
        "palette": [list(c) for c in meta["palette"]],
        "void_index": meta.get("void_index"),
        "mean": list(meta["mean"]),
        "std": list(meta["std"]),
        "resize": meta.get("resize", DEFAULT_RESIZE),
        "input_size": [height, width],
        "checkpoint_input_size": list(meta["input_size"]),
        "source_sha256": source_sha256,
        "source_name": source_name,
        "toolkit_version": toolkit_version(),
        "unpool": unpool,
        "outputs": ["logits", "labels"] if labels else ["logits"],
    }
    if meta.get("metrics"):
        out["metrics"] = meta["metrics"]
    return {k: json.dumps(v) for k, v in out.items()}


def read_onnx_metadata(path_or_model: str | os.PathLike[str] | onnx.ModelProto) -> dict[str, Any]:
    """The enet-rt metadata of an exported ONNX model, JSON-decoded.

    Returns:
        The checkpoint metadata keys (``classes``, ``palette``, ``mean``,
        ``std``, ``input_size`` [H, W], ``void_index``) plus
        ``source_sha256``, ``toolkit_version``, ``unpool`` and the other keys
        of :func:`onnx_metadata`.

    Raises:
        OnnxMetadataError: missing or unreadable file, or no enet-rt metadata.
    """
    if isinstance(path_or_model, onnx.ModelProto):
        proto, name = path_or_model, "ONNX model"
    else:
        p = Path(path_or_model)
        name = str(p)
        if not p.is_file():
            raise OnnxMetadataError(f"ONNX file {p} {what_is_wrong(p)}")
        try:
            proto = onnx.load(str(p), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several types
            raise OnnxMetadataError(f"{p} is not a readable ONNX model ({type(exc).__name__}); "
                                    "expected a file written by enet-export") from None
    meta: dict[str, Any] = {}
    for prop in proto.metadata_props:
        try:
            meta[prop.key] = json.loads(prop.value)
        except ValueError:
            meta[prop.key] = prop.value
    if "classes" not in meta or "input_size" not in meta:
        raise OnnxMetadataError(f"{name} has no enet-rt metadata (classes, input_size); "
                                "re-export it with enet-export")
    return meta


def set_prop(model: onnx.ModelProto, key: str, value: Any) -> None:
    """Set (replace) one ``metadata_props`` entry in place, JSON-encoded as enet-export does."""
    value = json.dumps(value)
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = key, value
