"""make gpu-check's plan and summary, on the CPU (the check itself needs a CUDA machine)."""

from __future__ import annotations

import json
from pathlib import Path

from tools import gpu_check

FACTS = {"gpu": True, "torch": "2.13.0", "torch_cuda": True, "gpu_name": "NVIDIA H200", "cuda_python": True,
         "tensorrt": None}


def test_steps_follow_what_the_machine_has(tmp_path) -> None:
    steps = gpu_check.plan_steps(FACTS, tmp_path, python="py")
    assert [s.name for s in steps] == ["gpu tests without TensorRT", "enet-bench torch FP32/FP16"]
    assert steps[0].argv[-2:] == ["-m", "gpu and not trt"]
    bench = steps[1].argv
    assert bench[:3] == ["py", "-m", "enet.bench.cli"] and "desktop" in bench
    assert bench[bench.index("--size") + 1] == "640x360,1280x720,1920x1080"
    assert bench[bench.index("--backend") + 1] == "torch,torch-fp16"
    with_trt = gpu_check.plan_steps(dict(FACTS, tensorrt="10.3.0"), tmp_path, python="py")
    assert any("trt-fp32,trt-fp16,trt-int8" in s.argv for s in with_trt)
    assert with_trt[-1].argv[-2:] == ["-m", "gpu and trt"]
    assert gpu_check.BUDGET_S < 8 * 60  # one overall budget; the TensorRT tests get what is left


def test_summary_is_one_table_with_the_paper_column(tmp_path) -> None:
    rep = tmp_path / "bench.json"
    rep.write_text(json.dumps({"records": [
        {"backend": "torch-fp16", "width": 640, "height": 360, "status": "ok", "paper": {"titanx": {"ms": 7.0,
                                                                                                   "ratio": 0.5}},
         "timing": {"compute": {"mean": 3.5}, "e2e": {"mean": 9.0},
                    "gpu": {"h2d": {"mean": 0.4}, "d2h": {"mean": 1.1}, "latency": {"mean": 5.0}}}},
        {"backend": "trt-fp16", "width": 640, "height": 360, "status": "skipped", "reason": "tensorrt missing",
         "paper": {}, "timing": None}]}))
    steps = [gpu_check.Step("enet-bench torch FP32/FP16", [], 80, status="passed", seconds=42, report=rep),
             gpu_check.Step("gpu tests with TensorRT", [], 150, status="not run", detail="time budget spent")]
    text = gpu_check.summary(FACTS, steps)
    assert text.startswith("GPU: NVIDIA H200; torch 2.13.0 (CUDA yes)")
    assert "| enet-bench torch FP32/FP16 | passed | 42 |  |" in text
    assert "| torch-fp16 | 640x360 | 3.50 | 0.40 | 1.10 | 5.00 | 9.00 | 7 | 0.50x |" in text
    assert "| trt-fp16 | 640x360 | skipped |" in text


def test_no_gpu_fails_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(gpu_check, "probe", lambda: dict(FACTS, gpu=False, torch_cuda=False, gpu_name=None))
    assert gpu_check.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gpu-check: error: no NVIDIA GPU visible") and err.count("\n") == 1


def test_dry_run_lists_the_steps(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(gpu_check, "probe", lambda: FACTS)
    assert gpu_check.main(["--dry-run", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("enet-bench torch FP32/FP16 (<= 80 s)")
    assert not list(Path(tmp_path).iterdir())


def test_a_step_over_its_limit_is_reported(tmp_path) -> None:
    import sys

    step = gpu_check.Step("sleepy", [sys.executable, "-c", "import time; time.sleep(5)"], 1)
    gpu_check.run_step(step, 100, tmp_path)
    assert step.status == "not run" and step.detail == "time budget spent"  # limits under 20 s never start
    step = gpu_check.Step("quick", [sys.executable, "-c", "print('fine')"], 30)
    gpu_check.run_step(step, 100, tmp_path)
    assert step.status == "passed" and step.detail == "fine"
