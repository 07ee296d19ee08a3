"""What a rig is: its cameras (name, URI, size, rate, outputs), camera names, and rig files (TOML).

``enet-run --rig rig.toml`` reads :func:`load_rig`; several INPUT positionals
become :class:`CameraSpec` s named by :func:`default_name`. Running them is
:mod:`enet.deploy.rig`. The file format: docs/deploy.md, "Rigs".
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enet.errors import EnetError

# --------------------------------------------------------------------------- the rig's description


@dataclass
class CameraSpec:
    """One camera of a rig.

    Attributes:
        name: unique name (stats records, HUD, file names, the live view).
        uri: input URI or path (anything ``enet-run`` takes as INPUT).
        size: capture size ``WxH`` (``--input-size``) or None.
        rate: frame rate (``--input-rate``: a camera's, or a file's played ``--live``) or None.
        outputs: this camera's outputs (files, streams).
    """

    name: str
    uri: str
    size: str | None = None
    rate: float | None = None
    outputs: list[str] = field(default_factory=list)


_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def default_name(uri: str, index: int) -> str:
    """A camera's name from its URI: a file's or folder's stem, an RTSP path's last part, else ``camN``."""
    text = uri.rstrip("/")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("", "file"):
        name = Path(text[len("file://"):] if scheme else text).stem
    elif scheme in ("rtsp", "rtsps"):
        name = text.split("://", 1)[1].split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        name = "" if ":" in name or "@" in name else name
    elif scheme == "v4l2":
        name = Path(text[len("v4l2://"):]).name
        name = f"video{name}" if name.isdigit() else name
    elif scheme == "csi":
        name = "csi" + (text[len("csi://"):].strip("/") or "0")
    else:
        name = ""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._-")
    return name or f"cam{index}"


def unique_names(names: Sequence[str]) -> list[str]:
    """``["a", "a", "b"]`` -> ``["a", "a-2", "b"]``."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0) + 1
        seen[n] = k
        out.append(n if k == 1 else f"{n}-{k}")
    return out


def expand_output(pattern: str, camera: str) -> str:
    """``"seg_{camera}.mp4"`` -> ``"seg_front.mp4"``."""
    return pattern.replace("{camera}", camera)


# --------------------------------------------------------------------------- rig files (TOML)


class RigError(EnetError):
    """A rig file that cannot be read or says something impossible."""


_KEYS = {"uri": str, "size": str, "rate": (int, float), "output": (str, list)}


def load_rig(path: str | os.PathLike[str]) -> tuple[list[CameraSpec], list[str]]:
    """Read a rig file: ``(cameras, rig-wide outputs)``.

    The file is TOML (docs/deploy.md, "Rigs")::

        outputs = ["http://@:8080", "rig.mp4"]   # optional: live view, mosaic, ...

        [camera.front]
        uri = "rtsp://10.0.0.11/stream"
        size = "480x360"                          # optional: capture size
        rate = 10                                 # optional: camera rate (a file: the rate it is played at)
        output = "front_seg.mp4"                  # optional: a string or a list

    Cameras keep the file's order. A relative path (``uri`` without ``://``,
    ``output`` files) is relative to the rig file's folder. Python 3.11+
    reads it with ``tomllib``; older Pythons with :func:`parse_toml_subset`,
    which takes exactly the forms above (tables, strings, numbers, booleans,
    one-line arrays of strings, comments).

    Raises:
        RigError: unreadable file, bad TOML, unknown key, missing ``uri``, no camera.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RigError(f"cannot read rig file {p}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        import tomllib  # Python >= 3.11

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RigError(f"rig file {p} is not valid TOML ({exc})") from None
    except ImportError:  # pragma: no cover - Python < 3.11
        data = parse_toml_subset(text, str(p))
    return rig_from_dict(data, base=p.parent, source=str(p))


def _relative(value: str, base: Path) -> str:
    if "://" in value or os.path.isabs(value):
        return value
    return str(base / value)


def rig_from_dict(data: dict[str, Any], *, base: Path, source: str = "rig file") -> tuple[list[CameraSpec], list[str]]:
    """Cameras and outputs from a parsed rig file (:func:`load_rig`)."""
    unknown = set(data) - {"camera", "outputs"}
    if unknown:
        raise RigError(f"{source}: unknown key {sorted(unknown)[0]!r}; expected outputs = [...] and [camera.NAME] "
                       "tables")
    tables = data.get("camera")
    if not isinstance(tables, dict) or not tables:
        raise RigError(f"{source} names no camera; expected [camera.NAME] tables with uri = \"...\"")
    outputs = data.get("outputs", [])
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise RigError(f"{source}: outputs must be a list of strings")
    cams = []
    for name, t in tables.items():
        if not _NAME_OK.match(name):
            raise RigError(f"{source}: camera name {name!r} must be letters, digits, '-', '_' or '.'")
        if not isinstance(t, dict):
            raise RigError(f"{source}: camera.{name} must be a table")
        for k, v in t.items():
            if k not in _KEYS:
                raise RigError(f"{source}: camera.{name} has unknown key {k!r}; expected {', '.join(_KEYS)}")
            if not isinstance(v, _KEYS[k]) or isinstance(v, bool):
                raise RigError(f"{source}: camera.{name}.{k} has the wrong type ({type(v).__name__})")
        if "uri" not in t:
            raise RigError(f"{source}: camera.{name} has no uri")
        outs = t.get("output", [])
        outs = [outs] if isinstance(outs, str) else outs
        if not all(isinstance(o, str) for o in outs):
            raise RigError(f"{source}: camera.{name}.output must be a string or a list of strings")
        rate = t.get("rate")
        if rate is not None and rate <= 0:
            raise RigError(f"{source}: camera.{name}.rate must be positive, not {rate}")
        cams.append(CameraSpec(name=name, uri=_relative(t["uri"], base), size=t.get("size"),
                               rate=float(rate) if rate is not None else None,
                               outputs=[_relative(o, base) for o in outs]))
    return cams, [_relative(o, base) if "://" not in o else o for o in outputs]


_TABLE = re.compile(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]$")
_PAIR = re.compile(r"^([A-Za-z0-9_-]+)\s*=\s*(.+)$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'')


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out).strip()


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unescape(text: str, where: str) -> str:
    """A TOML basic string's escapes (``\\"``, ``\\\\``, ``\\n``, ``\\uXXXX``, ...); other text as it is."""
    def sub(m: re.Match[str]) -> str:
        c = m.group(1)
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c[0] in "uU" and len(c) > 1:
            return chr(int(c[1:], 16))
        raise RigError(f"{where}: unknown escape \\{c} in a string")

    return re.sub(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", sub, text)


def _value(text: str, where: str) -> Any:
    text = text.strip()
    m = _STRING.fullmatch(text)
    if m:
        return _unescape(m.group(1), where) if m.group(1) is not None else m.group(2)
    if text in ("true", "false"):
        return text == "true"
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip().rstrip(",")
        if not inner:
            return []
        items = [i.strip() for i in re.findall(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^,]+', inner) if i.strip(", ")]
        return [_value(i, where) for i in items]
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise RigError(f"{where}: cannot read value {text!r}; expected \"text\", a number, true/false or "
                       "[\"a\", \"b\"]") from None


def parse_toml_subset(text: str, source: str = "rig file") -> dict[str, Any]:
    """The TOML a rig file needs, for Pythons without ``tomllib`` (3.8-3.10).

    ``[a.b]`` table headers, ``key = value`` with basic or literal strings,
    integers, floats, booleans and one-line arrays; ``#`` comments. Anything
    else is refused in one line (never guessed).
    """
    data: dict[str, Any] = {}
    table = data
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        where = f"{source} line {n}"
        if not line:
            continue
        m = _TABLE.match(line)
        if m:
            table = data
            for part in m.group(1).split("."):
                if not part:
                    raise RigError(f"{where}: bad table name {m.group(1)!r}")
                table = table.setdefault(part, {})
                if not isinstance(table, dict):
                    raise RigError(f"{where}: {m.group(1)} is not a table")
            continue
        m = _PAIR.match(line)
        if not m:
            raise RigError(f"{where}: expected [table] or key = value, got {raw.strip()!r}")
        key = m.group(1)
        if key in table:
            raise RigError(f"{where}: {key} is set twice")
        table[key] = _value(m.group(2), where)
    return data
