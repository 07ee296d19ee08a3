"""Import optional heavy modules inside functions, with a useful error.

Only numpy, torch and onnx are imported at module level anywhere in the
toolkit (torch only in modules that train, export or run a ``.pth``);
``tensorrt``, ``onnxruntime``, ``cv2``, ``gi`` and ``cuda`` come through
:func:`require` (Polygraphy's lazy imports), and so does torch where a
command that needs it starts (it is the ``enet-rt[torch]`` extra).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from enet.errors import MissingDependencyError

_FIXES = {
    "tensorrt": (
        "pip install 'enet-rt[tensorrt]' (on Jetson: use JetPack's TensorRT "
        "in a venv made with --system-site-packages)"
    ),
    "cuda": "pip install 'enet-rt[tensorrt]' (cuda-python)",
    "torch": (
        "pip install 'enet-rt[torch]' after the CPU build of torch (pip install torch --index-url "
        "https://download.pytorch.org/whl/cpu; on Jetson: NVIDIA's torch wheel); only training, export "
        "and .pth models need it"
    ),
    "onnxruntime": "pip install onnxruntime",
    "openvino": "pip install 'enet-rt[openvino]'",
    "cv2": "pip install opencv-python-headless (on Jetson: JetPack's OpenCV)",
    "gi": "apt-get install python3-gi gir1.2-gstreamer-1.0 gstreamer1.0-plugins-base",
    "onnxsim": "pip install 'enet-rt[torch]' (onnxsim)",
    "polygraphy": "pip install polygraphy",
    "matplotlib": "pip install matplotlib",
    "ray": "pip install 'enet-rt[batch]' (Ray Data, for enet-batch)",
    "pyarrow": "pip install 'enet-rt[batch]' (pyarrow, for enet-batch)",
}


def install_hint(name: str) -> str:
    """How to install the optional module ``name`` (one clause)."""
    root = name.split(".")[0]
    if root == "gi":
        return gi_hint()
    return _FIXES.get(root, f"pip install {root}")


def system_gi() -> str | None:
    """The system Python's PyGObject folder (``python3-gi``), when there is one; None otherwise."""
    import sys

    for folder in (f"/usr/lib/python{sys.version_info[0]}/dist-packages",
                   f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/dist-packages",
                   f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"):
        if os.path.isdir(os.path.join(folder, "gi")):
            return os.path.join(folder, "gi")
    return None


def gi_hint() -> str:
    """How to get PyGObject (``gi``) here. In a venv that cannot see the system's python3-gi, installing it
    again changes nothing: the venv needs --system-site-packages, or a link to it (enet.deploy.gst_venv_link)."""
    import sys

    installed = system_gi()
    if installed and sys.prefix != sys.base_prefix:
        return (f"python3-gi is installed ({installed}) but this venv ({sys.prefix}) does not see it: make the venv "
                f"with --system-site-packages, or link gi into it: python -m enet.deploy.gst_venv_link {sys.prefix}")
    return _FIXES["gi"]


#: Set before the first ``import cv2``: OpenCV's and FFmpeg's own log lines
#: ("[ WARN:0@0.01] global cap.cpp ...", "moov atom not found") would print
#: beside the toolkit's one-line error, which already says what failed. The
#: user's own settings win (export OPENCV_LOG_LEVEL=INFO to see them again).
_QUIET_ENV = {"cv2": {"OPENCV_LOG_LEVEL": "FATAL", "OPENCV_FFMPEG_LOGLEVEL": "-8"}}


def require(name: str) -> ModuleType:
    """Import ``name`` or raise :class:`MissingDependencyError` naming the fix."""
    for key, value in _QUIET_ENV.get(name, {}).items():
        os.environ.setdefault(key, value)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{name} is not importable ({exc}); install it: {install_hint(name)}"
        ) from None


def available(name: str) -> bool:
    """True when ``name`` imports; never raises."""
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install counts as missing
        return False
    return True


#: Training and export (PyTorch, the ONNX exporters) need this Python; the runtime runs from 3.8 (JetPack 5.1).
TRAINING_PYTHON = (3, 10)


def require_training_python(prog: str) -> None:
    """Refuse ``prog`` (enet-train, enet-export) below Python 3.10, in one line.

    Raises:
        MissingDependencyError: on Python 3.8/3.9.
    """
    import sys

    if sys.version_info < TRAINING_PYTHON:
        have = ".".join(str(v) for v in sys.version_info[:2])
        raise MissingDependencyError(
            f"{prog} needs Python 3.10 or newer (training and export), this is Python {have}; the runtime "
            "(enet-run, enet-eval, enet-bench, enet-build-engine) runs here: export the ONNX on a 3.10+ machine")
