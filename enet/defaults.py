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
