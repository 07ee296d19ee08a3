"""enet-build-engine on this CPU-only machine: converted ONNX, engine requests without TensorRT, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from enet._lazy import available
from enet.engine.cli import main
from enet.engine.runtime.onnx_info import precision_of, read_meta
from enet.engine.quant.qdq import check_qdq

pytest.importorskip("onnxruntime")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_int8_onnx_with_calibration_and_cache(tiny_onnx: Path, calib_root: Path, tmp_path: Path, capsys) -> None:
    out, cache = tmp_path / "tiny.int8.onnx", tmp_path / "ranges.json"
    rc, stdout, _ = _run(capsys, str(tiny_onnx), "--int8", "--calib-data", str(calib_root), "--calib-frames", "3",
                         "--calib-cache", str(cache), "--val-frames", "0", "-o", str(out))
    assert rc == 0, stdout
    assert "INT8: " in stdout and "no layer kept in higher precision" in stdout
    m = onnx.load(str(out))
    assert precision_of(m) == "int8" and check_qdq(m) == []
    assert read_meta(m)["input_size"] == [64, 96]
    info = json.loads(cache.read_text())
    assert info["method"] == "max" and len(info["images"]) == 3
    # the cache is reused: same ranges without calibration data
    out2 = tmp_path / "again.onnx"
    rc, stdout, _ = _run(capsys, str(tiny_onnx), "--int8", "--calib-data", str(tmp_path / "none"),
                         "--calib-cache", str(cache), "--val-frames", "0", "-o", str(out2))
    assert rc == 0 and "cached" in stdout
    a = {i.name: i.raw_data for i in m.graph.initializer if i.name.endswith("_act_scale")}
    b = {i.name: i.raw_data for i in onnx.load(str(out2)).graph.initializer if i.name.endswith("_act_scale")}
    assert a == b
    # another method does not reuse it
    rc, _, err = _run(capsys, str(tiny_onnx), "--int8", "--calib-data", str(tmp_path / "none"), "--calib-method", "entropy",
                      "--calib-cache", str(cache), "--val-frames", "0", "-o", str(out2))
    assert rc != 0 and "does not exist" in err


def test_fp16_onnx(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tiny.fp16.onnx"
    rc, stdout, _ = _run(capsys, str(tiny_onnx), "--fp16", "-o", str(out), "--val-frames", "0")
    assert rc == 0 and out.is_file() and precision_of(onnx.load(str(out))) == "fp16"


@pytest.mark.skipif(available("tensorrt"), reason="TensorRT is installed: the engine path is tested under gpu/trt")
def test_engine_without_tensorrt_is_refused_up_front(tiny_onnx: Path, calib_root: Path, tmp_path: Path,
                                                     capsys) -> None:
    """Refused before calibrating, on stderr, naming the ONNX command that works here; nothing written."""
    eng = tmp_path / "tiny.engine"
    rc, stdout, err = _run(capsys, str(tiny_onnx), "--int8", "--calib-data", str(calib_root), "--calib-frames", "2",
                           "--val-frames", "0", "-o", str(eng))
    assert rc == 1 and not stdout and list(tmp_path.iterdir()) == []
    line, = err.strip().splitlines()
    assert "needs TensorRT" in line and "ONNX Runtime" in line and "tiny.int8.onnx" in line


def test_bad_inputs_fail_in_one_line(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 10)
    cases = [
        ([str(corrupt), "--fp16", "-o", str(tmp_path / "a.onnx")], "not a valid ONNX"),
        ([str(tiny_onnx), "--int8", "--calib-data", str(tmp_path / "missing"), "-o", str(tmp_path / "b.onnx")],
         "does not exist"),
        ([str(tiny_onnx), "-o", str(tmp_path / "c.onnx")], "add --fp16 or --int8"),
        ([str(tiny_onnx), "--fp16", "-o", str(tmp_path / "d.txt")], "expected a .onnx"),
        ([str(tiny_onnx), "--fp16", "-o", str(corrupt / "e.onnx")], "not a folder"),
    ]
    for argv, expect in cases:
        rc, _, err = _run(capsys, *argv)
        assert rc != 0, argv
        assert expect in err and err.count("\n") == 1, err


def test_int8_of_an_int8_onnx_is_refused(tiny_onnx: Path, calib_root: Path, tmp_path: Path, capsys) -> None:
    q = tmp_path / "q.onnx"
    assert _run(capsys, str(tiny_onnx), "--int8", "--calib-data", str(calib_root), "--calib-frames", "1",
                "--calib-method", "max", "--val-frames", "0", "-o", str(q))[0] == 0
    rc, _, err = _run(capsys, str(q), "--fp16", "-o", str(tmp_path / "q16.onnx"))
    assert rc != 0 and "already int8" in err


def test_help_without_heavy_imports() -> None:
    code = ("import sys; from enet.engine.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert not {'tensorrt', 'onnxruntime', 'cv2', 'polygraphy'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_int8_over_max_drop_keeps_edge_layers_and_says_why(tiny_onnx: Path, tiny_camvid: Path, tmp_path: Path,
                                                           capsys) -> None:
    out = tmp_path / "t.onnx"
    rc, stdout, _ = _run(capsys, str(tiny_onnx), "--int8", "--calib-data", str(tiny_camvid), "--calib-frames", "2",
                         "--calib-method", "max", "--data-root", str(tiny_camvid), "--val-frames", "2",
                         "--max-drop", "-100", "-o", str(out))
    assert rc == 0, stdout
    assert stdout.count("val mIoU (ONNX Runtime, 2 frames)") == 2
    kept = [line for line in stdout.splitlines() if "kept in FP32" in line]
    assert len(kept) == 2 and all("--max-drop" in line and "sensitive" in line for line in kept)
    assert "enet.int8" in {p.key for p in onnx.load(str(out)).metadata_props}
    assert check_qdq(onnx.load(str(out))) == []
