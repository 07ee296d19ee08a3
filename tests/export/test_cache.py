"""cached_onnx: one export per checkpoint, size, batch and output set, in the user's cache folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest

from enet.cache import cache_root
from enet.export import cache as ec


def test_exports_once_into_the_cache_folder(tiny_checkpoint: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = ec.cached_onnx(tiny_checkpoint)
    assert p.parent == cache_root() / ec.MODELS and p.name.endswith("-96x64-b1.onnx")
    stamp = p.stat().st_mtime_ns
    assert ec.cached_onnx(tiny_checkpoint) == p and p.stat().st_mtime_ns == stamp  # reused, not rewritten
    labelled = ec.cached_onnx(tiny_checkpoint, height=32, width=48, labels=True)
    assert labelled.name.endswith("-48x32-b1-labels.onnx")
    assert [o.name for o in onnx.load(str(labelled)).graph.output] == ["logits", "labels"]
    assert list(tmp_path.iterdir()) == []  # nothing in the current folder

    # another checkpoint (other bytes) never reuses these files
    other = tmp_path / "other" / tiny_checkpoint.name
    other.parent.mkdir()
    shutil.copy(tiny_checkpoint, other)
    with other.open("ab") as f:
        f.write(b"\0")
    assert ec.cached_onnx_path(other, 64, 96) != p
