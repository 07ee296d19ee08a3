"""The enet-rt checkpoint format.

A checkpoint is a ``torch.save``'d dict that loads with
``torch.load(path, weights_only=True)``::

    {
      "format": "enet-rt-checkpoint",
      "format_version": 1,
      "arch": {"name": "enet", "version": 1, "num_classes": 11},
      "state_dict": {...},                 # ENet weights (float32, CPU)
      "meta": {
        "classes": [...], "palette": [[r, g, b], ...], "void_index": 11,
        "mean": [r, g, b], "std": [r, g, b],   # applied to RGB in [0, 1]
        "input_size": [360, 480],              # (height, width)
        "resize": "area",                      # enet.transforms.RESIZE_METHODS; absent
                                               # in older files: DEFAULT_RESIZE
        "train_config": {...}, "metrics": {...}
                                               # (an average of checkpoints has
                                               # "average_of": [...] instead)
      },
      "train_state": {...}                 # only in resumable checkpoints:
                                           # optimizer, scheduler, epoch, RNG
    }

Files are written atomically (temp file + rename). ``meta`` holds only
JSON-able values, so export copies it into ONNX ``metadata_props`` as is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from enet.defaults import env_note, what_is_wrong
from enet.errors import CheckpointError
from enet.fileio import atomic_path
from enet.model import ARCH_NAME, ARCH_VERSION, ENet, UnpoolMode

log = logging.getLogger(__name__)

FORMAT = "enet-rt-checkpoint"
FORMAT_VERSION = 1
_META_KEYS = ("classes", "palette", "mean", "std", "input_size")


def make_checkpoint(model: ENet, meta: dict[str, Any], train_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble the checkpoint dict (see module docstring)."""
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    if len(meta["classes"]) != model.num_classes:
        raise ValueError("metadata classes do not match the model's num_classes")
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": {"name": ARCH_NAME, "version": ARCH_VERSION, "num_classes": model.num_classes},
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    if train_state is not None:
        ckpt["train_state"] = train_state
    return ckpt


def save_checkpoint(path: str | os.PathLike[str], ckpt: dict[str, Any]) -> None:
    """Write ``ckpt`` atomically: a crash never leaves a broken file at ``path``.

    Serialised in memory first: ``torch.save`` to a full disk fails with an
    opaque ``RuntimeError`` ("unexpected pos ..."), a plain write with
    ``ENOSPC``, which :func:`enet.fileio.atomic_path` reports in one line.
    """
    import io

    buf = io.BytesIO()
    torch.save(ckpt, buf)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buf.getbuffer())
        f.flush()
        os.fsync(f.fileno())


def average_checkpoints(paths: list[str | os.PathLike[str]]) -> dict[str, Any]:
    """The uniform average of checkpoints' weights (a "model soup", Wortsman et al. 2022).

    All must be ENet checkpoints of the same classes, normally fine-tuned from
    one start (weights far apart average to a poor model). Floating-point
    tensors, BatchNorm running statistics included, are averaged in float64
    and stored in their own dtype; integer buffers (BatchNorm's step counts)
    are taken from the first. The result is a plain checkpoint (no
    ``train_state``) whose metadata is the first one's, with ``train_config``
    and ``metrics`` (which describe one run) replaced by ``average_of``: each
    ingredient's path, sha256, training config and metrics.

    Raises:
        CheckpointError: fewer than two files, one unreadable, or the classes
            or layers differ.
    """
    from enet.fileio import sha256_file

    if len(paths) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    for p, c in zip(paths[1:], ckpts[1:]):
        if c["meta"]["classes"] != first["meta"]["classes"]:
            raise CheckpointError(f"{p} has other classes than {paths[0]}; only checkpoints of one model average")
        if c["state_dict"].keys() != first["state_dict"].keys():
            raise CheckpointError(f"{p} has other layers than {paths[0]}")
        for k, v in first["state_dict"].items():
            shape = tuple(c["state_dict"][k].shape)
            if shape != tuple(v.shape):
                raise CheckpointError(f"{p} is another network than {paths[0]}: {k} is {shape}, not {tuple(v.shape)}; "
                                      "only checkpoints of one model (same size and classes) average")
    state: dict[str, torch.Tensor] = {}
    for k, v in first["state_dict"].items():
        if v.is_floating_point():
            total = sum(c["state_dict"][k].double() for c in ckpts)
            state[k] = (total / len(ckpts)).to(v.dtype)
        else:
            state[k] = v.clone()
    meta = {k: v for k, v in first["meta"].items() if k not in ("train_config", "metrics")}
    meta["average_of"] = [{"file": str(p), "sha256": sha256_file(p),
                           "train_config": c["meta"].get("train_config"), "metrics": c["meta"].get("metrics")}
                          for p, c in zip(paths, ckpts)]
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": dict(first["arch"]),
            "state_dict": state, "meta": meta}


def _why_unreadable(p: Path) -> str:
    """What is wrong with a file torch.load refused, in the user's words."""
    with open(p, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "a damaged or truncated PyTorch file"
    if head.startswith(b"\x08") or b"onnx" in head.lower():
        return "it looks like an ONNX model, not a PyTorch checkpoint"
    return "not a PyTorch file"


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: missing, corrupt, or not an enet-rt checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}{env_note(p)} {what_is_wrong(p)}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the weights_only unpickler raises anything on garbage
        # (IndexError, struct.error, UnicodeDecodeError, ... depending on the bytes): all mean unreadable;
        # PyTorch's own text (a weights_only upgrade notice, miniz internals) says nothing to a user
        log.debug("torch.load(%s): %s", p, exc)
        raise CheckpointError(f"{p}{env_note(p)} is not a readable checkpoint ({_why_unreadable(p)}); "
                              "expected a .pth file written by enet-train") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{p} is not an enet-rt checkpoint (no '{FORMAT}' marker); expected a file written by enet-train"
        )
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{p} has checkpoint format {ckpt['format_version']}, newer than this toolkit's "
            f"{FORMAT_VERSION}; upgrade enet-rt"
        )
    arch = ckpt.get("arch", {})
    if arch.get("name") != ARCH_NAME or arch.get("version") != ARCH_VERSION:
        raise CheckpointError(f"{p} holds architecture {arch!r}, expected {ARCH_NAME} v{ARCH_VERSION}")
    meta = ckpt.get("meta")
    if not isinstance(meta, dict) or any(k not in meta for k in _META_KEYS):
        raise CheckpointError(f"{p} lacks metadata {list(_META_KEYS)}; re-save it with enet-train")
    if len(meta["classes"]) != arch.get("num_classes"):
        raise CheckpointError(
            f"{p} is inconsistent: {len(meta['classes'])} class names for a {arch.get('num_classes')}-class model"
        )
    return ckpt


def load_model(path: str | os.PathLike[str], *, num_classes: int | None = None,
               unpool: UnpoolMode = "indices") -> tuple[ENet, dict[str, Any]]:
    """Build an ENet from a checkpoint; returns ``(model in eval mode, meta)``.

    Raises:
        CheckpointError: see :func:`load_checkpoint`; also when ``num_classes``
            is given and differs from the checkpoint's.
    """
    ckpt = load_checkpoint(path)
    n = ckpt["arch"]["num_classes"]
    if num_classes is not None and num_classes != n:
        raise CheckpointError(f"{path} has {n} classes, expected {num_classes}")
    return model_from_checkpoint(ckpt, unpool=unpool, name=str(path)), ckpt["meta"]


def model_from_checkpoint(ckpt: dict[str, Any], *, unpool: UnpoolMode = "indices",
                          name: str = "the checkpoint") -> ENet:
    """The ENet (in eval mode) of a checkpoint dict already in memory (:func:`load_checkpoint`'s, or a new one).

    Raises:
        CheckpointError: the weights do not fit the network (``name`` says whose).
    """
    model = ENet(ckpt["arch"]["num_classes"], unpool=unpool)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{name}: weights do not fit ENet ({str(exc).splitlines()[0][:160]})"
        ) from None
    return model.eval()
