"""The README's and the design card's commands, as a new user types them (issue 29).

Console scripts run in subprocesses from a scratch folder, as a user runs
them; the user's install on Python 3.8/3.10 is ``tests/install``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_camvid_like

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    e = dict(os.environ, **env)
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


def test_export_without_output_writes_beside_the_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Item 3: ``enet-export model.pth`` writes model.onnx beside it."""
    model = tmp_path / "models" / "model.pth"
    model.parent.mkdir()
    shutil.copy(tiny_checkpoint, model)
    work = tmp_path / "work"
    work.mkdir()
    r = _run("enet-export", str(model), "--verify-frames", "0", cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (model.parent / "model.onnx").is_file() and list(work.iterdir()) == []
    assert f"no -o given: writing {model.parent / 'model.onnx'}" in r.stderr


def test_build_engine_int8_of_the_design_card_plans_the_shipped_model(tmp_path: Path) -> None:
    """Item 3: ``enet-build-engine --int8`` needs neither MODEL nor -o (here: the plan for TensorRT 10.3)."""
    r = _run("enet-build-engine", "--int8", "--dry-run", "--trt-version", "10.3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no -o given: writing enet_camvid.int8.engine, a TensorRT engine" in r.stdout
    assert "enet_camvid.int8.onnx" in r.stdout and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_build_engine_int8_without_tensorrt_writes_the_int8_onnx(tmp_path: Path) -> None:
    """Item 3: without TensorRT, ``enet-build-engine --int8`` converts the shipped model and says so."""
    from enet._lazy import available

    if available("tensorrt"):
        pytest.skip("TensorRT is installed: the default output is an engine")
    data = write_camvid_like(tmp_path / "data", splits={"train": 2, "val": 1}, size=(90, 120))
    work = tmp_path / "work"
    work.mkdir()
    r = _run("enet-build-engine", "--int8", "--calib-frames", "2", "--val-frames", "0", "--data-root", str(data),
             "-q", cwd=work)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no -o given: writing enet_camvid.int8.onnx, the INT8 ONNX (no TensorRT here, so no engine)" in r.stdout
    assert sorted(p.name for p in work.iterdir()) == ["enet_camvid.int8.onnx"]


def test_enet_model_naming_a_folder_says_so(tmp_path: Path) -> None:
    """Item 23: a path of the wrong kind is not reported as missing."""
    data = write_camvid_like(tmp_path / "data", splits={"val": 1})
    r = _run("enet-eval", "--data-root", str(data), cwd=tmp_path, ENET_MODEL=str(tmp_path))
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr[-2000:]
    assert f"ENET_MODEL={tmp_path} is a folder, not a model file" in r.stderr


def test_what_is_wrong_with_a_path(tmp_path: Path) -> None:
    from enet.defaults import what_is_wrong

    (tmp_path / "f").write_text("x")
    assert what_is_wrong(tmp_path / "nope") == "does not exist"
    assert what_is_wrong(tmp_path) == "is a folder, not a file"
    assert what_is_wrong(tmp_path / "f", want="folder") == "is a file, not a folder"


def test_the_checkout_finds_its_tool_folders_without_an_install() -> None:
    """Item 7: from the repository root ./enet shadows an installed enet-rt; enet.engine must still resolve
    (to ./engine). Without site-packages (``-S``) nothing but the checkout can answer."""
    code = ("import sys; sys.path.insert(0, '.'); import enet, enet.engine, enet.export, enet.bench, enet.deploy; "
            "print(enet.engine.__file__); print(enet.deploy.__file__)")
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == [str(ROOT / "engine" / "__init__.py"), str(ROOT / "deploy" / "__init__.py")]
    # and nothing else of the repository root is part of enet (no enet.tests, no enet.enet)
    code = "import sys; sys.path.insert(0, '.'); import enet, pkgutil; print(enet.__path__)"
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == str([str(ROOT / "enet")])


def test_an_installed_enet_keeps_its_own_path(tmp_path: Path) -> None:
    """Item 7: the source-tree rule leaves an installed layout (tools inside enet/) alone."""
    pkg = tmp_path / "site" / "enet"
    shutil.copytree(ROOT / "enet", pkg, ignore=shutil.ignore_patterns("pretrained", "__pycache__"))
    for tool in ("engine", "export", "bench", "deploy"):
        (pkg / tool).mkdir()
        (pkg / tool / "__init__.py").write_text("")
        (tmp_path / "site" / tool).mkdir()  # same-named folders beside it must not join the path
        (tmp_path / "site" / tool / "__init__.py").write_text("")
    code = ("import sys; sys.path.insert(0, 'site'); import enet, enet.engine; print(enet.__path__); "
            "print(enet.engine.__file__); print(type(sys.meta_path[-1]).__name__)")
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    path, engine, last = r.stdout.splitlines()
    assert path == str([str(pkg)]) and engine == str(pkg / "engine" / "__init__.py")
    assert last != "_SourceTreeTools"


def test_enet_has_a_version() -> None:
    """Item 21: ``enet.__version__`` is the installed distribution's."""
    from importlib.metadata import version

    import enet

    assert enet.__version__ == version("enet-rt")


def test_the_first_frame_shows_no_rate_yet() -> None:
    """Item 21: the HUD of the first frame (the demo's contact sheet) says "-- fps", not "0.0 fps"."""
    from enet.deploy.overlay import Renderer
    from enet.deploy.pipeline import Pipeline
    from tests.deploy.test_live import META, FakeClock, FakePredictor, LockstepSource

    huds: list[str] = []

    class Seen(Renderer):
        def render(self, rgb, labels, *, hud_lines=(), **kw):
            huds.append(hud_lines[0])
            return super().render(rgb, labels, hud_lines=hud_lines, **kw)

    clock = FakeClock()
    src = LockstepSource(clock, 3)
    Pipeline(src, src.attach(FakePredictor()), renderer=Seen(META["classes"], META["palette"], legend=False),
             clock=clock, on_frame=src.on_frame).run()
    assert huds[0].endswith("-- fps") and huds[1].endswith(" fps") and "-- fps" not in huds[1]


def test_overlay_refuses_labels_of_another_shape() -> None:
    """Item 21: ``overlay(frame, labels[:10])`` is an InputError, not a silently stretched mask."""
    import numpy as np

    import enet

    with enet.Segmenter("camvid", backend="ort") as seg:
        frame = np.zeros((90, 120, 3), np.uint8)
        labels = seg.segment(frame)
        assert seg.overlay(frame, labels).shape == (90, 120, 3)
        with pytest.raises(enet.InputError, match="fit neither the frame"):
            seg.overlay(frame, labels[:10])


def test_a_checkpoint_without_torch_fails_before_using_pytorch(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Item 21: ``Segmenter("camvid-v2")`` without torch: one error naming the fix, no "using PyTorch" first."""
    from enet import _lazy
    from enet.engine.runtime import resolve as res
    from enet.errors import MissingDependencyError

    real = _lazy.available
    monkeypatch.setattr(_lazy, "available", lambda name: False if name == "torch" else real(name))
    monkeypatch.setattr(res, "trt_ready", lambda: False)
    with pytest.raises(MissingDependencyError, match="needs torch"):
        res.resolve("camvid-v2")
    assert "using PyTorch" not in caplog.text


def test_the_int8_note_names_the_output_not_its_temp_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Item 21: the ORT INT8 note during a conversion's val check names the file being written."""
    import logging

    from enet.engine.runtime.ort_backend import OrtBackend
    from enet.weights import get_weights

    int8 = get_weights("camvid").onnx_files()["int8"]
    tmp = tmp_path / ".enet.int8.onnx.x1y2.tmp.onnx"
    shutil.copy(int8, tmp)
    with caplog.at_level(logging.INFO, logger="enet"):
        with OrtBackend(tmp, providers="cpu", display_name="enet.int8.onnx"):
            pass
    assert "enet.int8.onnx: ONNX Runtime's CPU provider" in caplog.text and ".tmp" not in caplog.text


def test_the_readme_demo_paragraph_names_what_the_demo_runs() -> None:
    """Item 25: on a CPU with OpenVINO the demo's default model is the shipped INT8 ONNX, as the README says."""
    from enet._lazy import available
    from enet.engine.runtime import resolve as res

    if not available("openvino"):
        pytest.skip("OpenVINO is not installed")
    choice = res.resolve(None) if not os.environ.get("ENET_MODEL") else pytest.skip("ENET_MODEL is set")
    readme = (ROOT / "README.md").read_text()
    paragraph = readme.split("## Camera pipeline", 1)[1].split("Measured here", 1)[0]
    if choice.kind == "openvino":
        assert choice.path.name == "enet_camvid.int8.onnx"
        assert "OpenVINO running the shipped INT8 ONNX (`enet_camvid.int8.onnx`" in " ".join(paragraph.split())


def test_eval_help_says_what_precision_auto_runs() -> None:
    """Item 18: enet-eval --precision auto measures the model as named (FP32) on a CPU, and --help says so."""
    from enet.engine.eval_cli import eval_parser
    from enet.engine.runtime import resolve as res

    text = " ".join(next(a.help for a in eval_parser()._actions if "--precision" in a.option_strings).split())
    assert "the model as named (FP32" in text and "runs its calibrated INT8 ONNX" not in text
    choice = res.resolve("camvid", measure=True) if not res.trt_ready() else pytest.skip("TensorRT here")
    assert choice.path.name == "enet_camvid.onnx"  # the FP32 file, not enet_camvid.int8.onnx
