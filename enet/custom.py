"""Your own classes: ``classes.json`` beside a SegNet-layout dataset.

::

    DIR/classes.json
    DIR/train/  DIR/trainannot/  DIR/val/  DIR/valannot/  [DIR/test/  DIR/testannot/]

``classes.json``::

    {"classes": ["road", "lane", "obstacle"],
     "palette": [[128, 64, 128], [255, 255, 255], [220, 20, 60]],
     "void_index": 255}

Images are PNG or JPEG; labels are 8-bit single-channel PNGs of the same
name (stem) holding a class index per pixel, or ``void_index`` for pixels
that are ignored. Optional keys ``mean`` and ``std`` (RGB in [0, 1]) fix the
normalisation; without them it is measured on the train images.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enet.errors import DataError

CLASSES_FILE = "classes.json"
_EXAMPLE = ('{"classes": ["road", "lane"], "palette": [[128, 64, 128], [255, 255, 255]], '
            '"void_index": 255}')


@dataclass(frozen=True)
class ClassFile:
    """The validated content of a ``classes.json``."""

    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    void_index: int
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


def has_class_file(root: str | os.PathLike[str]) -> bool:
    return (Path(root) / CLASSES_FILE).is_file()


def _rgb_triple(value: Any, what: str, path: Path, *, lo: float, hi: float) -> tuple:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi for v in value)):
        raise DataError(f"{path}: {what} must be three numbers in {lo:g}..{hi:g}, got {json.dumps(value)}")
    return tuple(value)


def read_class_file(root: str | os.PathLike[str]) -> ClassFile:
    """Read and check ``root/classes.json``.

    Raises:
        DataError: missing or unreadable file, no or duplicate class names,
            a palette whose length differs from the classes, colours outside
            0..255, or a void index that is a class index or does not fit a byte.
    """
    path = Path(root) / CLASSES_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; a custom dataset needs it, e.g. {_EXAMPLE}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); expected e.g. {_EXAMPLE}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path} must hold a JSON object, e.g. {_EXAMPLE}")
    classes = doc.get("classes")
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) and c.strip() for c in classes)):
        raise DataError(f"{path}: \"classes\" must be a non-empty list of names, e.g. {_EXAMPLE}")
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise DataError(f"{path}: class names must be unique; {', '.join(dup)} appear twice")
    if len(classes) > 255:
        raise DataError(f"{path}: {len(classes)} classes; 8-bit labels hold at most 255 classes and void")
    palette = doc.get("palette")
    if not isinstance(palette, list) or len(palette) != len(classes):
        n = len(palette) if isinstance(palette, list) else 0
        raise DataError(f"{path}: \"palette\" has {n} colours for {len(classes)} classes; "
                        "give one [r, g, b] per class, in class order")
    colours = tuple(tuple(int(v) for v in _rgb_triple(c, f"palette entry {i}", path, lo=0, hi=255))
                    for i, c in enumerate(palette))
    void = doc.get("void_index", 255)
    if not isinstance(void, int) or isinstance(void, bool) or not len(classes) <= void <= 255:
        raise DataError(f"{path}: \"void_index\" is {json.dumps(void)}; it must be an integer in "
                        f"{len(classes)}..255 (not a class index), e.g. 255")
    stats = []
    for key in ("mean", "std"):
        v = doc.get(key)
        stats.append(None if v is None else tuple(float(x) for x in _rgb_triple(v, f'"{key}"', path, lo=0, hi=1)))
    if (stats[0] is None) != (stats[1] is None):
        raise DataError(f"{path}: give both \"mean\" and \"std\" or neither")
    if stats[1] is not None and min(stats[1]) <= 0:
        raise DataError(f"{path}: \"std\" values must be positive")
    return ClassFile(tuple(classes), colours, void, stats[0], stats[1])
