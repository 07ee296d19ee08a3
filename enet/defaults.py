"""Default locations: the shipped reference model and real CamVid.

Looked up in this order: an environment variable, the source checkout this
package runs from, the current folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from enet.errors import EnetError

#: The source checkout (pyproject.toml beside enet/), when running from one.
REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "models/enet_camvid.pth"


def default_model_path() -> Path:
    """The shipped CamVid reference model (``ENET_MODEL`` overrides)."""
    env = os.environ.get("ENET_MODEL")
    if env:
        return Path(env)
    for base in (REPO_ROOT, Path.cwd()):
        p = base / MODEL_NAME
        if p.is_file():
            return p
    raise EnetError(
        f"no model given and the reference model {MODEL_NAME} was not found; "
        "pass a checkpoint path or set ENET_MODEL"
    )


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
