"""The user's cache folder: environment precedence, never the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from enet.cache import cache_dir, cache_root
from enet.errors import EnetError


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENET_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "enet-rt"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "enet-rt"
    monkeypatch.setenv("ENET_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.chdir(tmp_path)
    assert cache_dir("models") == tmp_path / "mine" / "models" and (tmp_path / "mine" / "models").is_dir()


def test_unwritable_cache_is_one_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ENET_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(EnetError, match="ENET_CACHE_DIR"):
        cache_dir("models")
