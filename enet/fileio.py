"""Atomic file writes: a temp file in the target folder, then ``os.replace``.

A crash or Ctrl-C never leaves a half-written checkpoint, ONNX, engine or
report under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from enet.errors import EnetError


def _umask() -> int:
    """The process umask, read without changing it where Linux allows.

    ``os.umask`` can only be read by setting it, which races with threads
    creating files (the camera pipeline writes from several); Linux >= 4.7
    shows it in /proc/self/status instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: errno values that mean the storage, not the program, failed: full disk or quota, a read-only or
#: vanished file system, an I/O error, a folder that became unwritable. A write that fails with one of
#: them is reported in one line (:func:`storage_error`) and leaves no partial file behind.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM,
                            errno.EFBIG, errno.ESTALE})


def storage_error(target: str | os.PathLike[str], exc: OSError) -> EnetError:
    """A one-line :class:`EnetError` for a write of ``target`` that failed with ``exc``, with the fix."""
    why = exc.strerror or str(exc) or type(exc).__name__
    fix = {errno.ENOSPC: "free space there or choose another location",
           errno.EDQUOT: "free space there (disk quota) or choose another location",
           errno.EFBIG: "the file is larger than this file system or ulimit -f allows; choose another location",
           errno.EROFS: "the file system is read-only; choose a writable location",
           errno.EIO: "the storage reported an I/O error; check the disk or choose another location",
           }.get(exc.errno or 0, "check that the folder exists and is writable, or choose another location")
    return EnetError(f"cannot write {target}: {why}; nothing was written there; {fix}")


def new_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0o666 minus the umask)."""
    return 0o666 & ~_umask()


#: A temp file of :func:`atomic_path` untouched this long belongs to a process that was killed (the
#: body only writes bytes it already holds, in seconds), so the next write of the same file removes it.
STALE_TEMP_S = 600.0


def clean_stale_temps(target: str | os.PathLike[str], *, suffix: str = ".tmp",
                      older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove temp files of ``target`` (``.<name>.XXXX<suffix>``) left by a killed writer; returns them.

    A temp file is never read (its name is hidden and random), so a stale
    one is only clutter; younger ones may belong to a write still running
    in another process and are kept. Never raises.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    removed = []
    now = time.time()
    try:
        candidates = list(folder.glob(f".{glob.escape(target.name)}.*{glob.escape(suffix)}"))
    except OSError:
        return removed
    for p in candidates:
        with contextlib.suppress(OSError):
            if p.is_file() and now - p.stat().st_mtime > older_than_s:
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    ``suffix`` ends the temp name (``".tmp.onnx"`` where a reader goes by the suffix).

    Missing folders above ``path`` are created (the rule of every enet-*
    command, docs/cli.md) and removed again when the write fails. A storage
    fault while the body writes (a full disk, a folder made read-only, an I/O
    error: :data:`STORAGE_ERRNOS`) removes the temp file and becomes one
    :class:`EnetError` line (:func:`storage_error`).

    Raises:
        EnetError: the folder cannot be created or written, or the write failed.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    made = make_parents(target)
    clean_stale_temps(target, suffix=suffix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=folder)
    except OSError as exc:
        remove_empty(made)
        raise EnetError(f"cannot write {target}: {exc.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the usual umask-based mode.
    os.chmod(tmp_path, new_file_mode())
    ok = False
    try:
        yield tmp_path
        os.replace(tmp_path, target)
        ok = True
    except OSError as exc:
        if exc.errno in STORAGE_ERRNOS:
            raise storage_error(target, exc) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if not ok:
            remove_empty(made)


def make_parents(path: str | os.PathLike[str]) -> list[Path]:
    """Create the missing folders above ``path``; returns them, innermost first (for :func:`remove_empty`).

    Raises:
        EnetError: a folder cannot be created (a file in the way, no permission).
    """
    folder = Path(path).parent
    missing = [d for d in (folder, *folder.parents) if str(d) and not d.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        remove_empty(missing)
        raise EnetError(f"cannot write {path}: cannot create folder {folder} ({exc.strerror})") from None
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders of ``folders`` that are empty (innermost first); quietly keeps the others."""
    for d in folders:
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temp file for writing that replaces ``path`` when closed cleanly."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder; on success its files land in ``path``, on failure or Ctrl-C it is removed.

    ``path`` is created (with its parents) only at the end; when it exists
    already, the new files are moved into it one by one (each rename atomic).

    Raises:
        EnetError: ``path`` is a file, or no folder above it can be written.
    """
    import shutil

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise EnetError(f"cannot write folder {target}: a file of that name exists")
    base = target.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=base))
    except OSError as exc:
        raise EnetError(f"cannot write folder {target}: {exc.strerror}") from None
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in STORAGE_ERRNOS:
                raise storage_error(target, exc) from None
            raise
        os.chmod(tmp, 0o777 & ~_umask())
        if target.is_dir():
            for f in tmp.iterdir():
                os.replace(f, target / f.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
