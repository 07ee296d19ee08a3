"""Make the distribution's PyGObject (``gi``) importable from a virtualenv.

``python3-gi`` (Debian, Ubuntu, JetPack) installs ``gi`` into
``/usr/lib/python3/dist-packages`` for the system Python. A venv does not see
it, and pip's PyGObject needs a C toolchain plus the GObject introspection
headers. When the venv's Python has the same ABI as the system one (same
``EXT_SUFFIX``, e.g. ``.cpython-311-x86_64-linux-gnu.so``), a symlink to the
``gi`` package alone is enough; unlike a ``.pth`` file pointing at the whole
``dist-packages`` folder, it does not shadow or mix in the system's numpy, etc.

Usage (the Makefile's venv step runs it, best effort)::

    python3 deploy/gst_venv_link.py .venv

Stdlib only: it runs before the package is installed. Exits 0 when ``gi``
imports in the venv afterwards (or already did), 1 with a one-line reason.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

_PROBE = (
    "import json, sysconfig;"
    "print(json.dumps({'purelib': sysconfig.get_paths()['purelib'],"
    " 'ext': sysconfig.get_config_var('EXT_SUFFIX'), 'version': list(__import__('sys').version_info[:2])}))"
)
_GI_OK = "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst"


def candidate_dirs(version: tuple[int, int]) -> list[Path]:
    """System folders that may hold ``gi``, most specific first."""
    major, minor = version
    return [
        Path(f"/usr/lib/python{major}/dist-packages"),
        Path(f"/usr/lib/python{major}.{minor}/dist-packages"),
        Path(f"/usr/lib/python{major}.{minor}/site-packages"),
        Path(f"/usr/lib64/python{major}.{minor}/site-packages"),
        Path(f"/usr/local/lib/python{major}.{minor}/dist-packages"),
    ]


def find_gi(dirs: list[Path], ext_suffix: str) -> Path | None:
    """The first ``gi`` package whose compiled module matches ``ext_suffix``."""
    for d in dirs:
        gi = d / "gi"
        if (gi / "__init__.py").is_file() and glob.glob(str(gi / f"_gi{ext_suffix}")):
            return gi
    return None


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _gi_imports(python: Path) -> bool:
    return subprocess.run([str(python), "-c", _GI_OK], capture_output=True).returncode == 0


def link(venv: Path) -> str:
    """Link ``gi`` into ``venv``; returns what was done. Raises RuntimeError."""
    python = _venv_python(venv)
    if not python.exists():
        raise RuntimeError(f"{python} does not exist; create the venv first")
    if _gi_imports(python):
        return "gi already importable in the venv"
    info = json.loads(subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True,
                                     check=True).stdout)
    gi = find_gi(candidate_dirs(tuple(info["version"])), info["ext"])
    if gi is None:
        raise RuntimeError(
            f"no system gi built for {info['ext']} found; apt-get install python3-gi gir1.2-gstreamer-1.0 "
            "(or make the venv with --system-site-packages)"
        )
    target = Path(info["purelib"]) / "gi"
    if target.is_symlink() or target.exists():
        if target.is_symlink():
            target.unlink()
        else:
            raise RuntimeError(f"{target} exists and is not a link; leaving it alone")
    os.symlink(gi, target)
    if not _gi_imports(python):
        target.unlink()
        raise RuntimeError(
            f"linked {gi} but 'gi.repository.Gst' still does not import; "
            "apt-get install gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base"
        )
    return f"linked {target} -> {gi}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: gst_venv_link.py VENV\n")
        return 2
    try:
        sys.stdout.write(f"gst_venv_link: {link(Path(args[0]))}\n")
    except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError) as exc:
        sys.stderr.write(f"gst_venv_link: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
