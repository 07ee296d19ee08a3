"""Fixtures for the user-install checks (tests/install), made beforehand with the main (3.10+, torch) venv.

    .venv/bin/python tests/install/make_fixtures.py DIR

writes ``DIR/tiny.onnx`` (an untrained seeded ENet, 64x96, exported as
enet-export does) and ``DIR/camvid`` (a generated CamVid-format set: 6
train, 3 val frames). ``make test-py38`` / ``make test-py310`` then run
``tests/install/test_user_install.py`` against a venv of that Python that has
only the runtime installed (``pip install .``: no torch, no pytest).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(out: Path) -> int:
    sys.path.insert(0, str(ROOT))
    import torch

    from enet.camvid import default_metadata
    from enet.checkpoint import make_checkpoint, save_checkpoint
    from enet.export.onnx import export_onnx
    from enet.model import ENet
    from tests.conftest import write_camvid_like

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    meta = default_metadata()
    meta["input_size"] = [64, 96]
    save_checkpoint(out / "tiny.pth", make_checkpoint(ENet(11).eval(), meta))
    export_onnx(out / "tiny.pth", out / "tiny.onnx")
    (out / "tiny.pth").unlink()
    write_camvid_like(out / "camvid")
    print(f"wrote {out / 'tiny.onnx'} and {out / 'camvid'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_fixtures.py DIR")
    sys.exit(main(Path(sys.argv[1])))
