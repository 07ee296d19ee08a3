"""enet-export CLI: help without heavy imports, one-line errors, no partial files, report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from enet.export.cli import main

pytest.importorskip("onnxruntime")


def test_help_imports_nothing_heavy():
    code = (
        "import sys\n"
        "for m in ('tensorrt', 'cv2', 'gi', 'onnxruntime'): sys.modules[m] = None\n"
        "import enet.export, enet.export.cli, enet.export.onnx, enet.export.trt_support, enet.export.unpool\n"
        "from enet.export.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--unpool" in r.stdout and "--dynamic-batch" in r.stdout
    r = subprocess.run([sys.executable, "-c", "import sys, enet.export.cli; "
                        "print(any(m in sys.modules for m in ('onnxruntime', 'tensorrt', 'torch')))"],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "False"


def _bad_files(tmp: Path) -> dict[str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "corrupt.pth").write_bytes(os.urandom(300))
    torch.save({"weights": torch.zeros(2)}, tmp / "foreign.pth")
    return {"missing": tmp / "nope.pth", "corrupt": tmp / "corrupt.pth", "foreign": tmp / "foreign.pth"}


def _assert_one_line_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("enet-export: error:"), err
    return lines[0]


@pytest.mark.parametrize("kind", ["missing", "corrupt", "foreign"])
def test_bad_checkpoints(kind: str, tmp_path: Path, capsys):
    src = _bad_files(tmp_path / "in")[kind]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc = main([str(src), "-o", str(out_dir / "enet.onnx"), "--verify-frames", "0"])
    _assert_one_line_error(capsys, rc)
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("args, code, match", [
    (["--size", "96x60"], 2, "multiples of 8"),
    (["--size", "100x64"], 2, "multiples of 8"),
    (["--opset", "8"], 2, "opset"),  # a wrong command line (issue 29 item 19)
    (["--batch", "0"], 2, "batch"),
])
def test_bad_options(tiny_checkpoint: Path, tmp_path: Path, capsys, args, code, match):
    """README "Exit codes": 2 when argparse's types refuse a value, 1 when the export does."""
    try:
        rc = main([str(tiny_checkpoint), "-o", str(tmp_path / "enet.onnx"), "--verify-frames", "0", *args])
    except SystemExit as exc:
        rc = exc.code
    assert rc == code
    assert match in _assert_one_line_error(capsys, rc)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs(tiny_checkpoint: Path, tmp_path: Path, capsys):
    (tmp_path / "afile").write_text("")
    rc = main([str(tiny_checkpoint), "-o", str(tmp_path / "afile" / "such" / "enet.onnx"), "--verify-frames", "0"])
    assert "not a folder" in _assert_one_line_error(capsys, rc)
    (tmp_path / "afile").unlink()
    (tmp_path / "adir.onnx").mkdir()
    rc = main([str(tiny_checkpoint), "-o", str(tmp_path / "adir.onnx"), "--verify-frames", "0"])
    assert "folder" in _assert_one_line_error(capsys, rc)
    assert [p.name for p in tmp_path.iterdir()] == ["adir.onnx"] and not any((tmp_path / "adir.onnx").iterdir())


def test_failed_write_leaves_nothing(tiny_checkpoint: Path, tmp_path: Path, capsys, monkeypatch):
    def boom(self, data):  # disk full halfway through
        with open(self, "wb") as f:
            f.write(data[:100])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", boom)
    rc = main([str(tiny_checkpoint), "-o", str(tmp_path / "enet.onnx"), "--verify-frames", "0"])
    assert "No space left" in _assert_one_line_error(capsys, rc)
    assert list(tmp_path.iterdir()) == []


def test_parity_failure_writes_nothing(tiny_checkpoint: Path, tmp_path: Path, capsys, monkeypatch):
    from enet.export import onnx as eo

    def bad(*a, **k):
        return eo.ParityResult(frames=1, source="random", max_abs_diff=1.0, argmax_agreement=0.5,
                               labels_agreement=None, input_shape=(1, 3, 64, 96), frame_diffs=[1.0],
                               frame_agreement=[0.5])

    monkeypatch.setattr(eo, "verify_parity", bad)
    rc = main([str(tiny_checkpoint), "-o", str(tmp_path / "enet.onnx"), "--verify-frames", "1"])
    assert "parity" in _assert_one_line_error(capsys, rc)
    assert list(tmp_path.iterdir()) == []


def test_export_prints_report(tiny_checkpoint: Path, tmp_path: Path, capsys):
    out = tmp_path / "enet.onnx"
    rc = main([str(tiny_checkpoint), "-o", str(out), "--verify-frames", "1", "--labels",
               "--data-root", str(tmp_path / "no-camvid")])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    for needle in ("wrote", "opset 17", "unpool mask", "parameters", "MB", "TensorRT 8.5", "PRelu", "Where",
                   "labels  int32", "parity ONNX Runtime vs PyTorch", "random"):
        assert needle in text, needle
    assert [p.name for p in tmp_path.iterdir()] == ["enet.onnx"]


def test_native_report_says_not_tensorrt(tiny_checkpoint: Path, tmp_path: Path, capsys):
    rc = main([str(tiny_checkpoint), "-o", str(tmp_path / "n.onnx"), "--unpool", "native", "--verify-frames", "0"])
    text = capsys.readouterr().out
    assert rc == 0 and "NOT parseable by TensorRT" in text and "MaxUnpool" in text


def test_missing_output_folders_are_created(tiny_checkpoint: Path, tmp_path: Path, capsys):
    """docs/cli.md's one rule: -o out/sub/enet.onnx creates out/sub/; a failed export leaves no folder."""
    assert main([str(tiny_checkpoint), "-o", str(tmp_path / "out" / "sub" / "enet.onnx"), "--verify-frames", "0",
                 "-q"]) == 0
    assert (tmp_path / "out" / "sub" / "enet.onnx").is_file()
    rc = main([str(tmp_path / "nope.pth"), "-o", str(tmp_path / "new" / "enet.onnx"), "--verify-frames", "0"])
    _assert_one_line_error(capsys, rc)
    assert not (tmp_path / "new").exists()
