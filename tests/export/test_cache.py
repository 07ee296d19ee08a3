"""cached_onnx: one export per checkpoint, size, batch and output set, in the user's cache folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from enet.cache import cache_root
from enet.export import cache as ec


def test_exports_once_into_the_cache_folder(tiny_checkpoint: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    calls = []
    import enet.export.onnx as eo

    orig = eo.export_onnx

    def counting(*a, **k):
        calls.append(k)
        return orig(*a, **k)

    monkeypatch.setattr(eo, "export_onnx", counting)
    # once gi is imported (the GStreamer tests ran earlier in this process) the export runs in a child
    orig_sub = ec._export_in_subprocess

    def counting_sub(*a, **k):
        calls.append(a)
        return orig_sub(*a, **k)

    monkeypatch.setattr(ec, "_export_in_subprocess", counting_sub)
    p = ec.cached_onnx(tiny_checkpoint)
    assert p.parent == cache_root() / ec.MODELS and p.name.endswith("-96x64-b1.onnx")
    assert ec.cached_onnx(tiny_checkpoint) == p and len(calls) == 1  # reused
    labelled = ec.cached_onnx(tiny_checkpoint, height=32, width=48, labels=True)
    assert labelled.name.endswith("-48x32-b1-labels.onnx") and len(calls) == 2
    assert list(tmp_path.iterdir()) == []  # nothing in the current folder

    # another checkpoint (other bytes) never reuses these files
    other = tmp_path / "other" / tiny_checkpoint.name
    other.parent.mkdir()
    shutil.copy(tiny_checkpoint, other)
    with other.open("ab") as f:
        f.write(b"\0")
    assert ec.cached_onnx_path(other, 64, 96) != p
