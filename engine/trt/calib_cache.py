"""TensorRT calibration caches written from enet-rt's own INT8 ranges.

The legacy calibrator path (``--int8-mode calibrator``, or TensorRT < 8.5)
does not let TensorRT calibrate: it hands TensorRT a calibration cache
written here from the ranges enet-rt measured (:mod:`enet.engine.quant.calib_stats`),
so every scale TensorRT reads is the scale of the Q/DQ ONNX
(:func:`enet.engine.quant.qdq.scale_from_amax`).

Format (the text TensorRT's ``IInt8EntropyCalibrator2`` writes and reads)::

    TRT-100300-EntropyCalibration2
    input: 3c010a14
    /encoder/Conv_output_0: 3d4ab91b

The header carries TensorRT's integer version (``NV_TENSORRT_VERSION``:
``major*1000 + minor*100 + patch`` before 10, ``major*10000 + minor*100 +
patch`` from 10) and the calibrator's algorithm; TensorRT ignores a cache
whose header does not match the build. Each line is a tensor name and its
float32 scale as the 8 hex digits of its big-endian IEEE-754 bits.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from packaging.version import InvalidVersion, Version

from enet.engine.quant.qdq import scale_from_amax
from enet.errors import EnetError
from enet.fileio import write_text

#: ``IInt8EntropyCalibrator2``'s algorithm name in the cache header.
ENTROPY2 = "EntropyCalibration2"


def version_number(tensorrt_version: str) -> int:
    """TensorRT's integer version: ``"8.6.1"`` -> 8601, ``"10.3.0"`` -> 100300."""
    try:
        v = Version(str(tensorrt_version))
    except InvalidVersion:
        raise EnetError(f"cannot read TensorRT version {tensorrt_version!r}") from None
    major, minor, patch = (list(v.release) + [0, 0])[:3]
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def cache_text(amax: dict[str, float], tensorrt_version: str, algorithm: str = ENTROPY2) -> str:
    """The calibration cache for ``amax`` (tensor name -> absolute range), sorted by name."""
    lines = [f"TRT-{version_number(tensorrt_version)}-{algorithm}"]
    for name in sorted(amax):
        if "\n" in name:
            raise EnetError(f"tensor name {name!r} cannot be written to a TensorRT calibration cache")
        scale = float(scale_from_amax(amax[name]))
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    return "\n".join(lines) + "\n"


def write_calibration_cache(path: str | os.PathLike[str], amax: dict[str, float], tensorrt_version: str) -> Path:
    """Write :func:`cache_text` atomically; returns the path."""
    write_text(path, cache_text(amax, tensorrt_version))
    return Path(path)


def read_calibration_cache(text: str) -> tuple[str, dict[str, float]]:
    """``(header, {tensor name: float32 scale})`` of a calibration cache's text.

    Raises:
        EnetError: not a TensorRT calibration cache.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise EnetError("not a TensorRT calibration cache (no TRT-<version>-<algorithm> header)")
    scales: dict[str, float] = {}
    for ln in lines[1:]:
        name, sep, hexbits = ln.rpartition(": ")
        if not sep or len(hexbits) != 8:
            raise EnetError(f"bad calibration cache line {ln!r}; expected 'tensor: 8 hex digits'")
        scales[name] = struct.unpack(">f", bytes.fromhex(hexbits))[0]
    return lines[0], scales
