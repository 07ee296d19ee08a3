"""A checkpoint exported to ONNX once, kept in the user's cache folder, reused after.

The benchmark and the camera pipeline both run a ``.pth`` through ONNX
Runtime or TensorRT; :func:`cached_onnx` is the one place that exports it
for them. Files live in ``enet.cache.cache_dir("models")`` and are named
``<stem>-<sha256[:16]>-<W>x<H>-b<N>[-labels].onnx``: a new checkpoint, size,
batch or output set never picks up a stale file. Each entry has a
``.sha256`` file written after it: an entry whose hash does not match
(truncated, overwritten, a fill killed half-way) is exported again, with a
warning saying so. Fills of one entry by several processes take turns
(:func:`enet.cache.entry_lock`); the second reuses the first's file.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from enet.cache import cache_dir, clean_stale_temps, entry_lock
from enet.errors import EnetError
from enet.fileio import sha256_file, write_text

log = logging.getLogger(__name__)

#: Sub-folder of the cache for exported and derived model files.
MODELS = "models"


def model_key(model: str | os.PathLike[str]) -> str:
    """``<stem>-<first 16 hex digits of the file's sha256>``: the cache name of a model file."""
    p = Path(model)
    return f"{p.stem}-{sha256_file(p)[:16]}"


def cached_onnx_path(checkpoint: str | os.PathLike[str], height: int, width: int, *, batch: int = 1,
                     labels: bool = False, folder: str | os.PathLike[str] | None = None) -> Path:
    """Where :func:`cached_onnx` keeps the export of ``checkpoint`` at ``(batch, 3, height, width)``."""
    folder = Path(folder) if folder is not None else cache_dir(MODELS)
    return folder / f"{model_key(checkpoint)}-{width}x{height}-b{batch}{'-labels' if labels else ''}.onnx"


def cached_onnx(checkpoint: str | os.PathLike[str], *, height: int | None = None, width: int | None = None,
                batch: int = 1, labels: bool = False, folder: str | os.PathLike[str] | None = None) -> Path:
    """Export ``checkpoint`` to ONNX once (mask unpooling, opset default); return the cached file.

    Args:
        checkpoint: enet-rt ``.pth``.
        height, width: input size (default: the checkpoint's ``input_size``).
        batch: static batch size.
        labels: add the in-graph ``labels`` output.
        folder: the cache folder (default ``cache_dir("models")``).

    Raises:
        EnetError: the checkpoint is unusable or the export failed.
    """
    src = Path(checkpoint)
    if height is None or width is None:
        from enet.checkpoint import load_checkpoint

        h0, w0 = load_checkpoint(src)["meta"]["input_size"]
        height, width = height or int(h0), width or int(w0)
    out = cached_onnx_path(src, height, width, batch=batch, labels=labels, folder=folder)
    if _intact(out):  # the common case, without a lock
        log.info("using cached ONNX %s", out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out.parent)
    with entry_lock(out):  # a second process filling the same entry waits here, then reuses the file
        if _intact(out):
            log.info("using cached ONNX %s (exported by another process meanwhile)", out)
            return out
        if out.exists():
            log.warning("cached ONNX %s is damaged or incomplete (its sha256 does not match %s); exporting it again",
                        out, _hash_path(out).name)
            out.unlink()
        log.info("exporting %s to %s (once; cached)", src, out)
        if "gi" in sys.modules:
            _export_in_subprocess(src, out, height, width, batch, labels)
        else:
            from enet.export.onnx import export_onnx

            export_onnx(src, out, height=height, width=width, batch=batch, labels=labels)
        write_text(_hash_path(out), sha256_file(out) + "\n")
    return out


def _hash_path(onnx_path: Path) -> Path:
    """The entry's ``.sha256`` file, written after the ONNX: a file without a matching one is not trusted."""
    return onnx_path.with_name(onnx_path.name + ".sha256")


def _intact(onnx_path: Path) -> bool:
    """The cached file exists and has the sha256 recorded when it was written (never raises).

    Catches a truncated or overwritten entry (a disk that filled up, a copy
    cut short, a foreign file under the name) and one whose fill was killed
    between the ONNX and its hash.
    """
    try:
        want = _hash_path(onnx_path).read_text(encoding="ascii").strip()
        return onnx_path.is_file() and sha256_file(onnx_path) == want
    except (OSError, UnicodeDecodeError):
        return False


def _export_in_subprocess(model: Path, out: Path, h: int, w: int, batch: int, labels: bool) -> None:
    """Export in a fresh interpreter.

    torch 2.13 + PyGObject 3.42 (Debian 12): once GStreamer is initialised
    through gi in this process, torch.onnx.export (TorchScript) can abort it
    with "terminate called after throwing pybind11::stop_iteration"; a child
    process without gi exports cleanly.
    """
    code = ("import sys; from enet.export.onnx import export_onnx; "
            "export_onnx(sys.argv[1], sys.argv[2], height=int(sys.argv[3]), width=int(sys.argv[4]), "
            "batch=int(sys.argv[5]), labels=sys.argv[6] == '1')")
    proc = subprocess.run([sys.executable, "-c", code, str(model), str(out), str(h), str(w), str(batch),
                           "1" if labels else "0"], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise EnetError(f"ONNX export of {model} failed ({(lines[-1] if lines else 'no message')[:200]})")
