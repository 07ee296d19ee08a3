"""The runtime on Python 3.8 (JetPack 5.1): enet-run, enet-eval, enet-bench and enet-build-engine from a
runtime-only install (no torch), as on a Jetson venv.

Run by ``make test-py38`` (and CI): it makes a Python 3.8 venv from the
checkout (``pip install .``), the fixtures with the main venv
(``make_fixtures.py``), then runs this file with that venv's pytest and
``--noconftest`` (the suite's conftest imports torch). Everything here goes
through the installed console scripts in subprocesses. In the main suite
(no ``ENET_PY38_FIXTURES``) the file skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = os.environ.get("ENET_PY38_FIXTURES")
if not FIXTURES:
    pytest.skip("run by make test-py38 (needs ENET_PY38_FIXTURES)", allow_module_level=True)
FIX = Path(FIXTURES)
BIN = Path(sys.executable).parent


def enet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=str(cwd),
                          timeout=600)


def test_this_is_a_runtime_only_python() -> None:
    import importlib.util

    assert importlib.util.find_spec("torch") is None  # the runtime install pulls no torch
    assert importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("cv2") is not None


def test_enet_run_on_an_exported_onnx(tmp_path: Path) -> None:
    out = tmp_path / "seg.mp4"
    p = enet("enet-run", str(FIX / "camvid" / "val"), str(out), "--model", str(FIX / "tiny.onnx"),
             "--capture", "opencv", "--writer", "opencv", "--no-display", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.is_file() and out.stat().st_size > 0


def test_int8_dry_run_for_jetpack_5s_tensorrt(tmp_path: Path) -> None:
    p = enet("enet-build-engine", str(FIX / "tiny.onnx"), "--int8", "--dry-run", "--trt-version", "8.5",
             "-o", str(tmp_path / "enet.engine"), "--calib-data", str(FIX / "camvid"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "build plan, TensorRT 8.5" in p.stdout and "parses      enet.int8.onnx (calibrated INT8 Q/DQ ONNX)" in p.stdout
    assert "flags       BuilderFlag.INT8" in p.stdout and "gate " in p.stdout
    p = enet("enet-build-engine", str(FIX / "tiny.onnx"), "--fp16", "--dry-run", "--trt-version", "8.5",
             "-o", str(tmp_path / "enet.engine"), cwd=tmp_path)
    assert p.returncode == 0 and "mask        12 layers of the unpooling masks" in p.stdout
    assert list(tmp_path.iterdir()) == []


def test_int8_conversion_eval_and_bench(tmp_path: Path) -> None:
    camvid = str(FIX / "camvid")
    q = tmp_path / "tiny.int8.onnx"
    p = enet("enet-build-engine", str(FIX / "tiny.onnx"), "--int8", "-o", str(q), "--calib-data", camvid,
             "--calib-frames", "2", "--val-frames", "2", "--data-root", camvid, "-q", cwd=tmp_path)
    assert p.returncode == 0 and q.is_file(), p.stderr[-2000:]
    p = enet("enet-eval", str(q), "--data-root", camvid, "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    p = enet("enet-bench", "--device", "cpu", "--model", str(FIX / "tiny.onnx"), "--backend", "ort",
             "--warmup-s", "0", "--iterations", "2", "--val-frames", "2", "--data-root", camvid, "--no-plot",
             "-q", "-o", str(tmp_path / "bench"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]


def test_an_engine_without_tensorrt_is_one_line(tmp_path: Path) -> None:
    p = enet("enet-build-engine", str(FIX / "tiny.onnx"), "--fp16", "-o", str(tmp_path / "e.engine"), cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "needs TensorRT" in p.stderr


def test_training_and_export_say_they_need_310(tmp_path: Path) -> None:
    p = enet("enet-export", str(tmp_path / "m.pth"), "-o", str(tmp_path / "m.onnx"), cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr[-2000:]
    assert "enet-export needs Python 3.10 or newer" in p.stderr and "Python 3.8" in p.stderr
