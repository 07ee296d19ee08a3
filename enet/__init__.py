"""enet-rt: ENet from PyTorch training to TensorRT, ONNX Runtime and OpenVINO inference.

The public API (docs/api.md)::

    import enet
    seg = enet.Segmenter("camvid")
    labels = seg.segment(frame_bgr)

``import enet`` stays light: :class:`Segmenter` (from
:mod:`enet.engine.runtime.segmenter`) is imported on first use, and nothing
imports torch unless a ``.pth`` runs in PyTorch.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any


def _source_tree_path() -> None:
    # In a checkout the tool packages sit beside enet/ (engine/, export/, bench/, deploy/) and pyproject's
    # package-dir maps them under enet. Run from the repository root, ./enet shadows an installed enet-rt,
    # so enet.engine would not be found: there, a finder maps enet.engine to ./engine (and the three
    # others), as setuptools' editable install does. An installed package has them inside enet/ and is
    # left alone; nothing else of the repository root becomes part of enet.
    import importlib.abc
    import importlib.util
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    tools = {f"enet.{t}": os.path.join(root, t) for t in ("engine", "export", "bench", "deploy")}
    if any(os.path.isdir(os.path.join(here, t.split(".")[1])) for t in tools) or not all(
            os.path.isfile(os.path.join(d, "__init__.py")) for d in tools.values()):
        return

    class _SourceTreeTools(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
            folder = tools.get(name)
            if folder is None:
                return None
            return importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                          submodule_search_locations=[folder])

    if not any(type(f).__name__ == "_SourceTreeTools" for f in sys.meta_path):
        sys.meta_path.append(_SourceTreeTools())


_source_tree_path()

from enet.errors import EnetError, InputError  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from enet.engine.runtime.segmenter import Segmenter

__all__ = ["Segmenter", "EnetError", "InputError", "__version__"]


def __getattr__(name: str) -> Any:
    # the package root re-exports the API, which runs models (the runtime layer): imported on first use
    if name == "Segmenter":
        from enet.engine.runtime.segmenter import Segmenter

        return Segmenter
    if name == "__version__":  # the installed distribution's version (pyproject.toml's, one source)
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("enet-rt")
        except PackageNotFoundError:  # a checkout run without installing it
            return "0+unknown"
    raise AttributeError(f"module 'enet' has no attribute {name!r}")
