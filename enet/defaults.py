"""Default locations: the shipped reference model and real CamVid.

The model: ``$ENET_MODEL``, else the packaged ``camvid`` weights
(:mod:`enet.weights`). CamVid: ``$ENET_CAMVID``, else ``../shared/data/camvid``
beside the source checkout or the current folder.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The source checkout (pyproject.toml beside enet/), when running from one.
REPO_ROOT = Path(__file__).resolve().parents[1]


def default_model_path() -> Path:
    """The shipped CamVid reference model (``ENET_MODEL`` overrides: a path or a weights name)."""
    from enet.weights import resolve_model

    return resolve_model(None)


def default_camvid_root() -> Path:
    """Real CamVid (``ENET_CAMVID`` overrides; else ../shared/data/camvid)."""
    env = os.environ.get("ENET_CAMVID")
    if env:
        return Path(env)
    for base in (REPO_ROOT, Path.cwd()):
        p = base.parent / "shared" / "data" / "camvid"
        if p.is_dir():
            return p
    return REPO_ROOT.parent / "shared" / "data" / "camvid"


#: Environment variables that choose a default location, in the order :func:`env_note` checks them.
ENV_VARS = ("ENET_MODEL", "ENET_CAMVID", "ENET_CACHE_DIR")


def env_note(path: str | os.PathLike[str]) -> str:
    """``" (from $VAR)"`` when ``path`` is, or lies under, what one of :data:`ENV_VARS` names; else ``""``.

    Error messages about a default location add it, so a user who set the
    variable long ago sees what chose the path: ``data root /x (from
    $ENET_CAMVID) does not exist``.
    """
    try:
        p = Path(path).expanduser().absolute()
    except (TypeError, ValueError, OSError):
        return ""
    for var in ENV_VARS:
        value = os.environ.get(var)
        if not value:
            continue
        v = Path(value).expanduser().absolute()
        if p == v or v in p.parents:
            return f" (from ${var}; unset it or point it elsewhere)"
    return ""


def what_is_wrong(path: str | os.PathLike[str], *, want: str = "file") -> str:
    """Why ``path`` is not the ``want`` (``"file"`` or ``"folder"``) a message expected, in a few words.

    ``"does not exist"`` only when nothing is there; a folder where a file was
    expected (or the reverse) says so, so that ``ENET_MODEL`` pointing at a
    folder or ``--data-root`` at a file is not reported as missing.
    """
    p = Path(path)
    if not p.exists():
        return "does not exist"
    if p.is_dir():
        return "is a folder, not a file" if want == "file" else "exists"
    if want == "folder":
        return "is a file, not a folder"
    return "is not a regular file" if not p.is_file() else "exists"
