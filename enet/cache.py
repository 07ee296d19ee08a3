"""The user's cache folder for files enet-rt derives and reuses (exported ONNX, INT8 models, engines).

``$ENET_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/enet-rt``, else
``~/.cache/enet-rt``; never the current folder. Each kind of artifact keeps
a sub-folder (``models/`` for ONNX exports and what is built from them).
Cached files are named by what makes them valid (the source file's sha256,
the input shape, the precision), so a changed model never picks up a stale
file, and are written atomically (:mod:`enet.fileio`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
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
    chosen = "set by ENET_CACHE_DIR" if os.environ.get("ENET_CACHE_DIR") else "the default location"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a folder that exists but is read-only (or on a full or read-only disk) fails here, in one
        # line naming the variable, not later in the middle of an export
        fd, probe = tempfile.mkstemp(prefix=".enet-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EnetError(f"cannot write the cache folder {folder} ({chosen}; {exc.strerror}); "
                        "set ENET_CACHE_DIR to a writable folder") from None
    return folder


def entry_lock(path: str | os.PathLike[str]) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock for filling the cache entry ``path`` (``fcntl.flock`` on ``.<name>.lock``).

    Two processes filling one entry at once (two ``enet-run`` on the same new
    model) take turns: the second waits, then finds the first one's file and
    reuses it, so both succeed and share one result. The lock dies with its
    process (SIGKILL included), so a killed fill never blocks the next one.
    Where ``fcntl`` is missing (Windows) it is a no-op and the atomic rename
    still keeps every entry whole.
    """
    return _flock(Path(path).with_name(f".{Path(path).name}.lock"))


def folder_lock(folder: str | os.PathLike[str]) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock for filling the cache folder ``folder`` (``.<name>.lock`` *beside* it).

    For an entry that is a folder (a first-run TensorRT engine, its sidecar
    and its converted ONNX): a failed fill removes its folder, so a lock
    inside it would lock a removed file, and a third process would fill the
    same folder beside the waiter. The lock file stays; it is empty.
    """
    folder = Path(folder)
    return _flock(folder.with_name(f".{folder.name}.lock"))


@contextlib.contextmanager
def _flock(lock: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise EnetError(f"cannot lock the cache entry {lock.parent} ({exc.strerror}); "
                        "set ENET_CACHE_DIR to a writable folder") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock; the empty lock file stays for the next fill


def clean_stale_temps(folder: str | os.PathLike[str], *, older_than_s: float = 600.0) -> list[Path]:
    """Remove temp files (``.*.tmp*``, ``.*.partial*``) a killed fill left in a cache folder.

    Only files untouched for ``older_than_s`` go, so a fill still running in
    another process keeps its temp. Readers never look at these names, so a
    stale one is harmless until then (it only takes space).
    """
    now = time.time()
    removed = []
    for p in Path(folder).glob(".*"):
        if p.suffix == ".lock" or not (".tmp" in p.name or ".partial" in p.name):
            continue
        with contextlib.suppress(OSError):
            if p.is_file() and now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed.append(p)
    return removed
