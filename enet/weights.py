"""Shipped weights, addressed by name (as torchvision's weights enums) or by path.

The reference model is package data (``enet/pretrained/``), so a normal
``pip install`` has it: ``resolve_model("camvid")``, or ``None`` for the
default. Each entry pins the file's sha256, checked before the path is
handed out, and its metadata sits beside it as JSON (readable without
PyTorch; ``tests/enet/test_weights.py`` checks it against the checkpoint):
classes, palette, mean/std, input size, resize method, measured val mIoU,
the training recipe.

``$ENET_MODEL`` (a path or a name) overrides the default everywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from enet.errors import EnetError
from enet.fileio import sha256_file

DEFAULT_WEIGHTS = "camvid"


@dataclass(frozen=True)
class Weights:
    """One shipped checkpoint.

    Attributes:
        name: what users type (``enet-eval camvid``).
        filename: the ``.pth`` in ``enet/pretrained/``; its metadata is the
            ``.json`` of the same stem.
        sha256: of the ``.pth``.
        description: one line.
    """

    name: str
    filename: str
    sha256: str
    description: str

    def path(self) -> Path:
        """The checkpoint file, its sha256 verified (once per process).

        Raises:
            EnetError: the file is missing or not the one this release shipped.
        """
        return _verified(self.filename, self.sha256)

    def meta(self) -> dict[str, Any]:
        """The JSON metadata shipped beside the checkpoint (no PyTorch needed)."""
        data = _resource(self.filename.rsplit(".", 1)[0] + ".json").read_text(encoding="utf-8")
        return json.loads(data)

    def onnx_files(self) -> dict[str, Path]:
        """The exported ONNX files shipped with these weights, by precision (``fp32``, ``int8``), sha256 verified.

        Listed in the JSON's ``exports`` section, which
        ``python -m enet.engine.pretrained_build NAME`` writes with the files;
        an entry whose files were never generated has none (its ``.pth`` runs).

        Raises:
            EnetError: a listed file is missing or not the one the JSON names.
        """
        exports = self.meta().get("exports", {})
        return {precision: _verified(e["file"], e["sha256"]) for precision, e in exports.items()}


WEIGHTS: dict[str, Weights] = {w.name: w for w in (
    Weights("camvid", "enet_camvid.pth", "c5b8dacba2c33f850b68fd74e35d054b531a34b35112ebcb7258e0cde3fc01ce",
            "ENet on CamVid (SegNet 11 classes), 480x360, val mIoU 68.07 %"),
    Weights("camvid-v2", "enet_camvid_v2.pth", "c56e6508cd4c742d7188010dc867a3cf2796afd4e265319ed2c8ceef2addf6fa",
            "the second shipped camvid weights (one fine-tune of camvid-v1), val mIoU 66.38 %"),
    Weights("camvid-v1", "enet_camvid_v1.pth", "ef920c8ae12cc4e61284e4c22ca199be2dfeebacb50cdbfd6f66641cd9ffc2ee",
            "the first shipped camvid weights (make reference-model-v1), val mIoU 64.96 %"),
)}


def pretrained_dir() -> Path:
    """The package's ``pretrained/`` folder (shipped checkpoints, their JSON and exported ONNX)."""
    # beside this module: the package is installed as files (setuptools, never zipped), and
    # importlib.resources.files is Python 3.9+ (JetPack 5.1 runs 3.8)
    return Path(__file__).resolve().parent / "pretrained"


def _resource(filename: str) -> Path:
    return pretrained_dir() / filename


@lru_cache(maxsize=None)
def _verified(filename: str, sha256: str) -> Path:
    p = _resource(filename)
    if not p.is_file():
        raise EnetError(f"the packaged model file {filename} is missing from {p.parent}; reinstall enet-rt "
                        "or pass a checkpoint path")
    got = sha256_file(p)
    if got != sha256:
        raise EnetError(f"the packaged weights {p} have sha256 {got[:16]}..., expected {sha256[:16]}...; "
                        "the file is damaged or replaced: reinstall enet-rt")
    return p


def get_weights(name: str) -> Weights:
    """The registered weights ``name``.

    Raises:
        EnetError: no such name (lists the known ones).
    """
    if name not in WEIGHTS:
        raise EnetError(f"no shipped weights named {name!r}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def resolve_model(spec: str | os.PathLike[str] | None) -> Path:
    """A model argument -> a file path.

    ``None``: ``$ENET_MODEL`` if set (a path or a name), else the shipped
    ``camvid``. A string naming an existing file is that file; a registered
    name (``camvid``) is its packaged checkpoint; anything else is returned as
    a path, for the caller to report as missing.
    """
    if spec is None:
        env = os.environ.get("ENET_MODEL")
        if not env:
            return get_weights(DEFAULT_WEIGHTS).path()
        p = resolve_model(env)
        if p.is_dir():
            raise EnetError(f"ENET_MODEL={env} is a folder, not a model file; set ENET_MODEL to a .pth/.onnx/.engine "
                            "file in it or a weights name, unset it, or pass the model explicitly")
        if not p.exists():
            raise EnetError(f"ENET_MODEL={env} names no file and no shipped weights (known: {', '.join(WEIGHTS)}); "
                            "set ENET_MODEL to a .pth/.onnx/.engine file or a weights name, unset it, "
                            "or pass the model explicitly")
        return p
    p = Path(spec)
    if not p.exists() and str(spec) in WEIGHTS:
        return WEIGHTS[str(spec)].path()
    return p
