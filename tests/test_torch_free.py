"""Running an .onnx imports no torch: enet-eval, enet-bench, enet-build-engine and enet-run with torch unimportable.

On a Jetson PyTorch is a special wheel that many deployments skip; these
commands must work from the runtime install alone. The ONNX and the data are
made here (with torch); the commands run in a child process where any import
of torch raises, and the child checks at the end that torch never loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

CHILD = textwrap.dedent("""
    import importlib.abc, json, sys
    from importlib.metadata import entry_points

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "onnxsim"):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.name.startswith("enet-")}
    codes = {}
    for line in sys.stdin.read().splitlines():
        name, *argv = json.loads(line)
        codes[name] = scripts[name].load()(argv)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
    print("RESULT " + json.dumps({"codes": codes, "torch_modules": loaded}))
""")


@pytest.mark.slow
def test_onnx_paths_run_without_torch(tiny_checkpoint: Path, tiny_camvid: Path, tmp_path: Path) -> None:
    from enet.export.onnx import export_onnx

    model = tmp_path / "tiny.onnx"
    export_onnx(tiny_checkpoint, model)
    commands = [
        ["enet-eval", str(model), "--data-root", str(tiny_camvid), "--json", str(tmp_path / "eval.json"), "-q"],
        ["enet-bench", "--device", "cpu", "--model", str(model), "--backend", "torch,ort,ort-int8",
         "--warmup-s", "0", "--iterations", "2", "--val-frames", "2", "--calib-frames", "2",
         "--data-root", str(tiny_camvid), "--no-plot", "-q", "-o", str(tmp_path / "bench")],
        ["enet-build-engine", str(model), "--int8", "-o", str(tmp_path / "tiny.int8.onnx"),
         "--calib-data", str(tiny_camvid), "--calib-frames", "2", "--val-frames", "2", "--data-root",
         str(tiny_camvid), "-q"],
        ["enet-run", str(tiny_camvid / "val"), str(tmp_path / "seg.mp4"), "--model", str(model),
         "--capture", "opencv", "--writer", "opencv", "--no-display", "-q"],
        ["enet-eval", str(tmp_path / "tiny.int8.onnx"), "--data-root", str(tiny_camvid), "-q"],
    ]
    r = subprocess.run([sys.executable, "-c", CHILD], input="\n".join(json.dumps(c) for c in commands),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    assert result["torch_modules"] == []
    assert result["codes"] == {"enet-eval": 0, "enet-bench": 0, "enet-build-engine": 0, "enet-run": 0}, r.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["frames"] == 3
    doc = json.loads((tmp_path / "bench" / "bench.json").read_text())
    status = {rec["backend"]: rec["status"] for rec in doc["records"]}
    assert status == {"torch": "skipped", "ort": "ok", "ort-int8": "ok"}, doc["records"]
    assert all(rec["accuracy"]["frames"] == 2 for rec in doc["records"] if rec["status"] == "ok")
    assert (tmp_path / "seg.mp4").stat().st_size > 0


def test_torch_commands_say_how_to_get_torch(tmp_path: Path) -> None:
    """Without torch, commands that need it fail in one line naming the extra.

    enet-demo and enet-bench given a .pth say so too (no ModuleNotFoundError traceback), and leave nothing
    behind. (By default they run the shipped model's packaged ONNX, which needs no torch.)
    """
    from enet.weights import get_weights

    pth = str(get_weights("camvid").path())
    commands = [["enet-export", "-o", str(tmp_path / "x.onnx")], ["enet-summary"],
                ["enet-demo", "--model", pth, "-o", str(tmp_path / "demo"), "--frames", "2"],
                ["enet-bench", "--model", pth, "--device", "cpu", "-o", str(tmp_path / "bench"), "--iterations", "1"]]
    r = subprocess.run([sys.executable, "-c", CHILD], input="\n".join(json.dumps(c) for c in commands),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    assert result["codes"] == {"enet-export": 1, "enet-summary": 1, "enet-demo": 1, "enet-bench": 1}
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [ln for ln in r.stderr.splitlines() if ": error:" in ln]
    assert len(errors) == 4 and all("enet-rt[torch]" in ln for ln in errors), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_shipped_camvid_runs_without_torch(tiny_camvid: Path, tmp_path: Path) -> None:
    """``pip install .`` alone runs the shipped model: enet-run's default (camvid) is its packaged ONNX."""
    commands = [["enet-run", str(tiny_camvid / "val"), str(tmp_path / "seg.mp4"), "--capture", "opencv",
                 "--writer", "opencv", "--no-display"]]
    r = subprocess.run([sys.executable, "-c", CHILD], input="\n".join(json.dumps(c) for c in commands),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    assert result == {"codes": {"enet-run": 0}, "torch_modules": []}, r.stderr
    assert "enet_camvid" in r.stderr and (tmp_path / "seg.mp4").stat().st_size > 0
