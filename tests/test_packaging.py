"""pyproject.toml: the Python range JetPack needs, and one CUDA major for the CUDA bindings in every extra."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirement(spec: str) -> tuple[str, str]:
    """``"cuda-python>=12.6,<13; marker"`` -> ``("cuda-python", ">=12.6,<13")``."""
    m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*([^;]*)", spec)
    assert m, spec
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_the_runtime_installs_on_jetpack_5s_python() -> None:
    assert _project()["requires-python"] == ">=3.8"  # JetPack 5.1: Python 3.8, TensorRT 8.5


def test_cuda_bindings_are_pinned_to_one_cuda_major_in_every_extra() -> None:
    from enet.engine.runtime.cuda import CUDA_MAJOR

    extras = _project()["optional-dependencies"]
    pins = {}
    for extra, specs in extras.items():
        for spec in specs:
            name, version = _requirement(spec)
            if name in ("cuda-python", "cuda-bindings"):
                pins[extra] = version
    assert set(pins) >= {"dev", "tensorrt", "jetpack5", "jetpack6"}, f"cuda-python pins: {pins}"
    cuda12 = {pins[e] for e in ("dev", "tensorrt", "jetpack6")}  # CI tests what CUDA 12 users get
    assert len(cuda12) == 1, f"different cuda-python pins for CUDA {CUDA_MAJOR}: {pins}"
    (pin,) = cuda12
    assert f"<{CUDA_MAJOR + 1}" in pin and f">={CUDA_MAJOR}" in pin, pin
    assert pins["jetpack5"].endswith("<12") and pins["jetpack5"].startswith(">=11")  # JetPack 5.1: CUDA 11.4
    for extra, version in pins.items():  # every pin names an upper bound: a new CUDA major never slips in
        assert "<" in version, (extra, version)
    # the TensorRT wheel of the same CUDA major (plain `tensorrt` follows NVIDIA's newest CUDA)
    names = [_requirement(s)[0] for s in extras["tensorrt"]]
    assert f"tensorrt-cu{CUDA_MAJOR}" in names and "tensorrt" not in names


def test_training_and_export_refuse_old_pythons_in_one_line(monkeypatch) -> None:
    from enet._lazy import require_training_python
    from enet.errors import EnetError

    require_training_python("enet-train")  # this Python (3.10+) passes
    monkeypatch.setattr(sys, "version_info", (3, 8, 18, "final", 0))
    with pytest.raises(EnetError, match=r"enet-train needs Python 3.10 or newer .* this is Python 3.8"):
        require_training_python("enet-train")
