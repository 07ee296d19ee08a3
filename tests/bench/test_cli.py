"""enet-bench end to end on a tiny checkpoint: records, skipped backends, errors. No timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from enet.bench.cli import main, parse_resolutions
from enet.errors import EnetError


def test_help_imports_nothing_heavy():
    code = textwrap.dedent("""
        import sys
        from enet.bench.cli import build_parser
        build_parser().format_help()
        heavy = [m for m in ("torch", "onnxruntime", "tensorrt", "matplotlib", "cv2", "onnx") if m in sys.modules]
        assert not heavy, heavy
        """)
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "enet.bench.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--duration-s" in out.stdout and "--val-frames" in out.stdout


def test_parse_resolutions():
    assert parse_resolutions("480x320, 640x360,480x320") == [(480, 320), (640, 360)]
    assert parse_resolutions("1920X1080") == [(1920, 1080)]
    with pytest.raises(EnetError, match="multiple of 8"):
        parse_resolutions("1280x721")
    with pytest.raises(EnetError, match="WIDTHxHEIGHT"):
        parse_resolutions("640")


def _run(tmp_path, *extra):
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--size", "96x64", "--warmup-s", "0", "--iterations", "2",
            "--data-root", str(tmp_path / "no-camvid"), "-o", str(out), "-q", *extra]
    return main(argv), out


def test_cli_torch_and_skipped_trt(tmp_path, tiny_checkpoint, capsys):
    rc, out = _run(tmp_path, "--model", str(tiny_checkpoint), "--backend", "torch,trt-fp16", "--no-plot",
                   "--threads", "1")
    assert rc == 0
    err = capsys.readouterr().err
    assert "[1/2] torch 96x64: compute" in err and "[2/2] trt-fp16 96x64: skipped" in err
    assert "parameters: 362,890" in err
    doc = json.loads((out / "bench.json").read_text())
    ok, skipped = doc["records"]
    assert ok["backend"] == "torch" and ok["status"] == "ok" and ok["timing"]["iterations"] == 2
    assert ok["timing"]["compute"]["n"] == 2 and ok["timing"]["input"].startswith("random")
    assert ok["timing"]["timer"] == "perf_counter_ns"
    assert skipped["status"] == "skipped" and skipped["reason"]
    assert doc["device"]["kind"] == "cpu" and doc["device"]["cpu"]["threads_used"] == 1
    assert set(doc["versions"]) >= {"enet-rt", "torch", "onnxruntime", "tensorrt"}
    assert doc["model"]["params"] == 362_890 and 3.0 < doc["model"]["gflops"] < 3.5
    assert doc["command"].startswith("enet-bench --device cpu")
    md = (out / "bench.md").read_text()
    assert "| torch | 96x64 |" in md and "## Skipped" in md and "trt-fp16" in md
    assert not (out / "bench.png").exists()


def test_cli_all_skipped_is_an_error(tmp_path, tiny_checkpoint, capsys):
    rc, out = _run(tmp_path, "--model", str(tiny_checkpoint), "--backend", "trt-fp32,trt-int8", "--no-plot")
    assert rc == 1
    err = capsys.readouterr().err
    assert "enet-bench: error: no backend could run here" in err and "Traceback" not in err
    doc = json.loads((out / "bench.json").read_text())  # the report still says why
    assert [r["status"] for r in doc["records"]] == ["skipped", "skipped"]


@pytest.mark.parametrize("args, code, message", [
    (["--size", "100x64"], 2, "not a multiple of 8"),
    (["--backend", "tflite"], 1, "unknown backend tflite"),
    (["--batch", "0"], 2, "argument --batch: 0 is out of range"),
    (["--model", "/nonexistent/enet.pth"], 1, "does not exist"),
])
def test_cli_user_errors_are_one_line(tmp_path, capsys, args, code, message, tiny_checkpoint):
    """README "Exit codes": 2 for a command line wrong by itself (argparse), 1 for what the run finds wrong."""
    argv = ["--device", "cpu", "--model", str(tiny_checkpoint), "-o", str(tmp_path / "o"), *args]
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("enet-bench: error:")


def test_cli_duration_and_iterations_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["--duration-s", "1", "--iterations", "3"])


@pytest.mark.slow
def test_cli_ort_with_accuracy_and_plot(tmp_path, tiny_checkpoint, tiny_camvid, capsys):
    rc = main(["--device", "cpu", "--model", str(tiny_checkpoint), "--backend", "ort", "--size", "96x64",
               "--warmup-s", "0", "--iterations", "2", "--val-frames", "2", "--data-root", str(tiny_camvid),
               "-o", str(tmp_path / "out"), "-q"])
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    (rec,) = doc["records"]
    assert rec["status"] == "ok" and rec["artifact"].endswith("-96x64-b1.onnx")
    assert rec["timing"]["input"].startswith("CamVid val")
    assert rec["accuracy"]["frames"] == 2 and 0.0 <= rec["accuracy"]["miou"] <= 1.0
    assert doc["config"]["artifacts_built"] == [rec["artifact"]]
    assert (tmp_path / "out" / "bench.png").is_file()


def test_cli_jetson_mode_records_why_power_is_missing(tmp_path, tiny_checkpoint, monkeypatch):
    import shutil

    from enet.bench import probes

    if shutil.which("tegrastats"):
        pytest.skip("a real Jetson: tegrastats is present")
    monkeypatch.setattr(probes, "is_jetson", lambda root=None: True)  # a Jetson without its tools
    rc, out = _run(tmp_path, "--model", str(tiny_checkpoint), "--backend", "torch", "--no-plot",
                   "--device", "cuda", "--machine", "jetson")
    assert rc == 0
    doc = json.loads((out / "bench.json").read_text())
    assert doc["device"]["kind"] == "jetson" and "jetson" in doc["device"]
    assert any("tegrastats not found" in w for w in doc["warnings"])
    assert any("nvpmodel" in w for w in doc["warnings"])
    (rec,) = doc["records"]
    assert rec["power"]["power_w"] is None and "tegrastats" in rec["power"]["reason"]


def test_cli_unwritable_output_is_one_line(tmp_path, tiny_checkpoint, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main(["--device", "cpu", "--model", str(tiny_checkpoint), "--backend", "torch", "--size", "96x64",
               "--iterations", "1", "-o", str(blocker / "sub")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err == [f"enet-bench: error: cannot write report folder -o {blocker / 'sub'}: {blocker} is "
                               "not a folder; choose another location"]


def test_cli_rounds_interleave_cpu_backends(tmp_path, tiny_checkpoint, capsys):
    pytest.importorskip("onnxruntime")
    rc, out = _run(tmp_path, "--model", str(tiny_checkpoint), "--backend", "ort,ort-fast", "--no-plot",
                   "--rounds", "2", "--threads", "1", "--op-profile", "2")
    assert rc == 0
    doc = json.loads((out / "bench.json").read_text())
    assert [r["backend"] for r in doc["records"]] == ["ort", "ort-fast"]
    assert all(r["status"] == "ok" and r["timing"]["iterations"] == 2 for r in doc["records"])
    assert doc["records"][0]["artifact"] == doc["records"][1]["artifact"]  # the same ONNX file
    assert doc["config"]["rounds"] == 2
    err = capsys.readouterr().err
    md = (out / "bench.md").read_text()
    assert "side by side" in err and "Side by side" in md and "Where the time goes" in md
    assert "PRelu" in doc["records"][0]["op_profile"] and "PRelu" not in doc["records"][1]["op_profile"]


def test_cli_a_missing_backend_is_said_once(tmp_path, tiny_checkpoint, capsys):
    """Issue 29 item 21: TensorRT missing is one line, not one per backend and size; the report lists all."""
    rc, out = _run(tmp_path, "--model", str(tiny_checkpoint), "--backend", "trt-fp32,trt-fp16,trt-int8",
                   "--size", "96x64,64x48", "--no-plot")
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("skipped (") == 1 and "the same for the other backends and sizes" in err
    doc = json.loads((out / "bench.json").read_text())
    assert [r["status"] for r in doc["records"]] == ["skipped"] * 6
