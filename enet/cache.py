"""The user's cache folder for files enet-rt derives and reuses (exported ONNX, INT8 models, engines).

``$ENET_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/enet-rt``, else
``~/.cache/enet-rt``; never the current folder. Each kind of artifact keeps
a sub-folder (``models/`` for ONNX exports and what is built from them).
Cached files are named by what makes them valid (the source file's sha256,
the input shape, the precision), so a changed model never picks up a stale
file, and are written atomically (:mod:`enet.fileio`).
"""

from __future__ import annotations

import os
from pathlib import Path

from enet.errors import EnetError


def cache_root() -> Path:
    """The cache folder (not created)."""
    env = os.environ.get("ENET_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "enet-rt"


def cache_dir(*parts: str) -> Path:
    """``cache_root()/parts...``, created.

    Raises:
        EnetError: the folder cannot be created (names ``$ENET_CACHE_DIR`` as the fix).
    """
    folder = cache_root().joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnetError(f"cannot create the cache folder {folder} ({exc.strerror}); "
                        "set ENET_CACHE_DIR to a writable folder") from None
    return folder
