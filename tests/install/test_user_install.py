"""The user's install, checked as a user runs it: ``pip install .`` of this checkout into a fresh venv
of a given Python (3.8 for JetPack 5.1, 3.10 for JetPack 6), nothing else in it, then the README's
commands in that venv: the shipped default model (``enet-run`` without ``--model``, ``enet-eval``,
``enet.Segmenter("camvid")``) and an explicit one, from a scratch folder and from the repository root.

Run by ``make test-py38`` and ``make test-py310`` (CI runs both; tests/install/run.sh): they make the
venv (``pip install .`` only: no pytest, no torch), the fixtures with the main venv (``make_fixtures.py``),
then this file with the main venv's pytest, which drives the checked venv's console scripts and python in
subprocesses, so nothing of the test runner is importable there. In the main suite (no
``ENET_INSTALL_VENV``) the file skips.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

VENV = os.environ.get("ENET_INSTALL_VENV")
if not VENV:
    pytest.skip("run by make test-py38 / test-py310 (needs ENET_INSTALL_VENV)", allow_module_level=True)
BIN = Path(VENV).resolve() / "bin"
FIX = Path(os.environ["ENET_INSTALL_FIXTURES"]).resolve()
ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "deploy" / "data" / "camvid_0016E5.mp4"
REAL_CAMVID = Path(os.environ.get("ENET_CAMVID", ROOT.parent / "shared" / "data" / "camvid"))


def _env() -> dict:
    # the user's shell: the checked venv's bin first, nothing of the runner's venv or paths
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "ENET_MODEL")}
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return env


def enet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=str(cwd),
                          timeout=600, env=_env())


def py(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return enet("python", "-c", code, cwd=cwd)


def test_the_venv_holds_only_the_runtime_install(tmp_path: Path) -> None:
    p = py("import importlib.util as u, sys; print(sys.version_info[:2]); "
           "print([m for m in ('torch', 'pytest', 'onnxruntime', 'cv2') if u.find_spec(m)])", tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "['onnxruntime', 'cv2']" in p.stdout  # no torch, no test runner: what `pip install .` brings
    p = py("import enet; print(enet.__version__)", tmp_path)
    assert p.returncode == 0 and p.stdout.strip() != "0+unknown", p.stderr[-2000:]


def test_enet_run_with_the_default_model(tmp_path: Path) -> None:
    out = tmp_path / "seg.mp4"
    p = enet("enet-run", str(CLIP), str(out), "--frames", "3", "--no-display", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert out.is_file() and out.stat().st_size > 0


def test_enet_eval_with_the_default_model(tmp_path: Path) -> None:
    data = REAL_CAMVID if (REAL_CAMVID / "val").is_dir() else FIX / "camvid"
    p = enet("enet-eval", "--data-root", str(data), "--frames", "3", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "mIoU" in p.stdout


SEGMENT = ("import numpy as np, enet; seg = enet.Segmenter({model!r}); "
           "labels = seg.segment(np.full((360, 480, 3), 128, np.uint8)); "
           "assert labels.shape == (360, 480), labels.shape; print('ok', seg)")


@pytest.mark.parametrize("where", ["scratch", "repository root"])
def test_segmenter_with_the_default_model(tmp_path: Path, where: str) -> None:
    # from the repository root the checkout's enet/ shadows the installed package (issue 29, item 7)
    p = py(SEGMENT.format(model="camvid"), tmp_path if where == "scratch" else ROOT)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]


def test_segmenter_with_an_explicit_model(tmp_path: Path) -> None:
    p = py(SEGMENT.format(model=str(FIX / "tiny.onnx")), tmp_path)
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]


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


def test_export_without_torch_says_what_it_needs(tmp_path: Path) -> None:
    p = enet("enet-export", str(tmp_path / "m.pth"), "-o", str(tmp_path / "m.onnx"), cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr[-2000:]
    v = py("import sys; print(sys.version_info[:2] < (3, 10))", tmp_path).stdout.strip()
    if v == "True":
        assert "enet-export needs Python 3.10 or newer" in p.stderr and "Python 3.8" in p.stderr
    else:
        assert "torch" in p.stderr.lower()


IMPORT_ALL = """
import importlib, pkgutil, sys
import enet
OPTIONAL = {"torch", "tensorrt", "openvino", "ray", "pyarrow", "gi", "cuda", "polygraphy", "onnxscript", "onnxsim",
            "pycuda", "rclpy", "sensor_msgs"}
names = ["enet"] + [m.name for m in pkgutil.walk_packages(enet.__path__, "enet.")]
for pkg in ("enet.export", "enet.engine", "enet.bench", "enet.deploy"):
    names += [m.name for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + ".")]
bad = []
for name in sorted(set(names)):
    try:
        importlib.import_module(name)
    except ImportError as exc:  # an optional module this install has not (torch, TensorRT, Ray...)
        if (exc.name or "").split(".")[0] not in OPTIONAL:
            bad.append(f"{name}: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a newer Python's syntax or library (3.9+: str.removeprefix, ...)
        if "needs Python 3.10" not in str(exc):
            bad.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(set(names)), "modules")
print("BAD:" + " | ".join(bad))
"""


def test_every_runtime_module_imports_on_this_python(tmp_path: Path) -> None:
    """A module that does not import on 3.8/3.10 fails here, whether or not a command above reaches it."""
    p = py(IMPORT_ALL, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines()[-1] == "BAD:", p.stdout.splitlines()[-1].replace(" | ", "\n")


def test_console_scripts_by_name(tmp_path: Path) -> None:
    """``python -m enet.cli_entry`` finds the scripts on 3.8/3.9 too (entry_points(group=) is 3.10+)."""
    p = enet("python", "-m", "enet.cli_entry", "enet-eval", "--help", cwd=tmp_path)
    assert p.returncode == 0 and "examples:" in p.stdout, p.stderr[-2000:]
