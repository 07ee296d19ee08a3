"""Shared fixtures and capability-based skipping.

Markers (pyproject, ``--strict-markers``): ``gpu``, ``trt``, ``gstreamer``,
``slow``, ``camvid``. Each is skipped, with the reason, when its capability
is missing, so a plain ``pytest`` passes on a CPU-only machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# torch before anything that may load PyGObject: torch.onnx.export aborts when
# gi was imported first.
import torch  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("ENET_CAMVID", ROOT.parent / "shared" / "data" / "camvid"))


def _has_gpu() -> bool:
    from enet.engine.runtime.cuda import gpu_available

    return gpu_available()


def _importable(name: str) -> bool:
    from enet._lazy import available

    return available(name)


def _has_gstreamer() -> bool:
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst  # noqa: F401

        return True
    except Exception:  # noqa: BLE001
        return False


def _camvid_ok() -> bool:
    return (CAMVID / "val").is_dir() and (CAMVID / "valannot").is_dir() and (CAMVID / "train").is_dir()


_CAPS = {
    "gpu": (_has_gpu, "no NVIDIA GPU on this machine"),
    "trt": (lambda: _importable("tensorrt"), "TensorRT (tensorrt module) is not installed"),
    "gstreamer": (_has_gstreamer, "GStreamer with PyGObject (gi) is not installed"),
    "camvid": (_camvid_ok, f"real CamVid not found at {CAMVID}"),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache: dict[str, bool] = {}
    for item in items:
        for marker, (probe, reason) in _CAPS.items():
            if marker in item.keywords:
                if marker not in cache:
                    cache[marker] = probe()
                if not cache[marker]:
                    item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _own_cache_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets an empty enet-rt cache folder (``$ENET_CACHE_DIR``): nothing is read from or
    left in the user's ~/.cache, and a test never reuses another test's exports."""
    folder = tmp_path_factory.mktemp("enet-cache")
    monkeypatch.setenv("ENET_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def _no_logging_to_closed_streams():
    """A CLI run by one test binds the root handler to that test's captured stderr; drop it after
    the test, or the next test's log records hit a closed file ("--- Logging error ---")."""
    import logging

    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and getattr(h.stream, "closed", False):
            root.removeHandler(h)


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    """Real CamVid (train, val); tests using it carry the ``camvid`` marker."""
    return CAMVID


def write_camvid_like(root: Path, *, splits: dict[str, int] | None = None, size: tuple[int, int] = (48, 64),
                      seed: int = 0) -> Path:
    """A tiny generated CamVid-format set: ``<split>/`` RGB PNGs + ``<split>annot/`` labels.

    Labels are blocky class regions (0..10) with some void (11); images are
    coloured by class with noise, so a model can learn something in an epoch.
    """
    import cv2

    from enet.camvid import PALETTE

    rng = np.random.default_rng(seed)
    splits = splits or {"train": 6, "val": 3}
    h, w = size
    for split, n in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            small = rng.integers(0, 12, size=(max(1, h // 8), max(1, w // 8)), dtype=np.uint8)
            label = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
            pal = np.array(list(PALETTE) + [(0, 0, 0)], dtype=np.float32)
            img = pal[label] + rng.normal(0, 10, size=(h, w, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            name = f"SEQ{split[:2]}_{i:06d}.png"
            cv2.imwrite(str(root / split / name), img[:, :, ::-1])
            cv2.imwrite(str(root / f"{split}annot" / name), label)
    return root


@pytest.fixture()
def tiny_camvid(tmp_path: Path) -> Path:
    """A generated CamVid-format set (48x64 frames, 6 train, 3 val)."""
    return write_camvid_like(tmp_path / "camvid")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (seeded) ENet checkpoint with CamVid metadata, input 64x96."""
    import torch

    from enet.camvid import default_metadata
    from enet.checkpoint import make_checkpoint, save_checkpoint
    from enet.model import ENet

    torch.manual_seed(0)
    model = ENet(11).eval()
    meta = default_metadata()
    meta["input_size"] = [64, 96]
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    save_checkpoint(path, make_checkpoint(model, meta))
    return path


#: Frame sizes (H, W) of the generated 3-class datasets: they vary per frame.
TINY_SIZES = ((48, 64), (40, 56), (56, 72))


@pytest.fixture()
def tiny_custom(tmp_path: Path) -> Path:
    """A generated custom dataset (tests/datagen.py): 3 classes + void 255, classes.json,
    24 train and 8 val frames of varying size, PNG and JPEG images."""
    from tests.datagen import write_custom

    return write_custom(tmp_path / "road", sizes=TINY_SIZES)


@pytest.fixture()
def tiny_cityscapes(tmp_path: Path) -> Path:
    """The same kind of frames in the Cityscapes layout (leftImg8bit/, gtFine/ label ids)."""
    from tests.datagen import write_cityscapes

    return write_cityscapes(tmp_path / "cityscapes", sizes=TINY_SIZES)


@pytest.fixture()
def tiny_custom_checkpoint(tmp_path: Path) -> Path:
    """An untrained (seeded) 3-class ENet checkpoint with tests/datagen.py's classes and palette."""
    import torch

    from enet.checkpoint import make_checkpoint, save_checkpoint
    from enet.model import ENet
    from tests.datagen import CLASSES, PALETTE, VOID

    torch.manual_seed(0)
    meta = {"classes": list(CLASSES), "palette": [list(c) for c in PALETTE], "void_index": VOID,
            "mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2], "input_size": [48, 64]}
    path = tmp_path / "road3.pth"
    save_checkpoint(path, make_checkpoint(ENet(3).eval(), meta))
    return path


def unwritable_folder(tmp: Path) -> Path:
    """A folder this process cannot create files in (root ignores mode bits, so fall back to /sys)."""
    ro = tmp / "readonly"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    try:
        (ro / ".probe").touch()
    except OSError:
        return ro
    (ro / ".probe").unlink()
    return Path("/sys/enet-rt-readonly")  # sysfs: nobody, root included, may create entries here
