"""Report generation: records, paper ratios, Markdown, JSON and PNG files."""

from __future__ import annotations

import json

import pytest

from enet.bench import paper, report


def _timing(mean: float, cv: float = 0.01, stable: bool = True) -> dict:
    stats = {"n": 10, "batch": 1, "min": mean * 0.9, "mean": mean, "median": mean, "p90": mean * 1.05,
             "p95": mean * 1.07, "p99": mean * 1.1, "max": mean * 1.2, "std": mean * cv, "cv": cv,
             "fps": 1000.0 / mean}
    e2e = dict(stats, mean=mean + 5, fps=1000.0 / (mean + 5))
    return {"timer": "fake", "iterations": 10, "frames": 10, "compute": stats, "e2e": e2e,
            "stable": stable, "warnings": [] if stable else ["unstable compute latency"]}


def _doc(records) -> dict:
    return report.make_document(
        records, device={"kind": "cpu"}, device_label="CPU Test Xeon (2 cores available, 2 threads used)",
        versions={"enet-rt": "0.1.0", "torch": "2.13.0", "onnxruntime": "1.20.0", "tensorrt": None,
                  "python": "3.11"},
        model={"path": "m.pth", "sha256": "ab" * 32, "params": 362_890, "gflops": 3.39},
        config={"warmup_s": 0.5, "duration_s": 2.0, "min_iterations": 5},
        command="enet-bench --device cpu", warnings=["something to know"])


def test_paper_table():
    assert paper.paper_timing("tx1", 640, 360).ms == 69.0
    assert paper.paper_timing("titanx", 1920, 1080).fps == 21.6
    assert paper.paper_timing("tx1", 1920, 1080) is None  # the paper has no TX1 1080p figure
    assert set(paper.paper_timings(640, 360)) == {"tx1", "titanx"}
    assert paper.comparison_device("jetson") == "tx1" and paper.comparison_device("cpu") is None
    assert len(paper.TABLE2) == 6 and paper.TABLE3_GFLOPS == 3.83


def test_record_ratios():
    r = report.make_record("ort", "ort", "fp32", 640, 360, 1, status="ok", timing=_timing(138.0))
    assert r["paper"]["tx1"] == {"ms": 69.0, "fps": 14.6, "ratio": pytest.approx(2.0)}
    assert r["paper"]["titanx"]["ratio"] == pytest.approx(138.0 / 7.0)
    r = report.make_record("ort", "ort", "fp32", 480, 320, 1, status="ok", timing=_timing(47.0))
    assert set(r["paper"]) == {"tx1"} and r["paper"]["tx1"]["ratio"] == pytest.approx(1.0)
    s = report.make_record("trt-fp16", "trt", "fp16", 640, 360, 1, status="skipped", reason="no TensorRT")
    assert s["timing"] is None and s["paper"]["tx1"]["ratio"] is None and s["reason"] == "no TensorRT"


def test_markdown_table_skips_and_table3():
    records = [
        report.make_record("torch", "torch", "fp32", 640, 360, 1, status="ok", timing=_timing(250.0),
                           accuracy={"miou": 0.5123, "frames": 4}),
        report.make_record("ort", "ort", "fp32", 1920, 1080, 1, status="ok", timing=_timing(900.0, 0.3, False)),
        report.make_record("trt-fp16", "trt", "fp16", 640, 360, 1, status="skipped", reason="tensorrt is not installed"),
        report.make_record("trt-fp16", "trt", "fp16", 1280, 720, 1, status="skipped", reason="tensorrt is not installed"),
        report.make_record("ort-int8", "ort", "int8", 640, 360, 1, status="failed", reason="RuntimeError: boom"),
    ]
    md = report.render_markdown(_doc(records))
    assert md.startswith("# ENet benchmark: CPU Test Xeon")
    assert "`enet-bench --device cpu`" in md and "tensorrt not installed" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| torch |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:8] == ["torch", "640x360", "1", "250.00", "250.00", "275.00", "255.00", "3.9"]
    assert cells[8:12] == ["69", "3.62x", "7", "35.71x"]
    assert cells[12] == "0.512 (4 fr)"
    ort_row = next(ln for ln in md.splitlines() if ln.startswith("| ort |"))
    assert "1920x1080" in ort_row and "| – | – | 46 |" in ort_row and "unstable (CV 30%)" in ort_row
    assert "- **trt-fp16** skipped at 640x360, 1280x720: tensorrt is not installed" in md
    assert "- **ort-int8** failed at 640x360: RuntimeError: boom" in md
    assert "| NVIDIA Jetson TX1 | 47 ms / 21.1 fps | 69 ms / 14.6 fps | 262 ms / 3.8 fps | – |" in md
    assert "| Parameters | 362,890 | 0.37M | 0.98x |" in md
    assert "| GFLOPs at 640x360 | 3.39 | 3.83 | 0.89x |" in md
    assert "- something to know" in md


def test_markdown_power_columns():
    rec = report.make_record("trt-fp16", "trt", "fp16", 640, 360, 1, status="ok", timing=_timing(20.0),
                             power={"power_w": 7.5, "energy_j_per_frame": 0.15})
    md = report.render_markdown(_doc([rec]))
    assert "Power W" in md and "| 7.50 | 150 |" in md


def test_table3_text():
    text = report.table3_text({"params": 362_890, "gflops": 3.39})
    assert "362,890" in text and "0.37M" in text and "3.39" in text and "3.83" in text


def test_write_reports(tmp_path):
    records = [
        report.make_record("torch", "torch", "fp32", w, h, 1, status="ok", timing=_timing(10.0 * w / 480))
        for w, h in paper.RESOLUTIONS
    ] + [report.make_record("trt-int8", "trt", "int8", 640, 360, 1, status="skipped", reason="no GPU")]
    doc = _doc(records)
    paths = report.write_reports(doc, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bench.json", "bench.md", "bench.png"]
    loaded = json.loads(paths["json"].read_text())
    assert loaded["format"] == "enet-bench" and len(loaded["records"]) == 5
    assert loaded["paper"]["table3"]["gflops"] == 3.83 and len(loaded["paper"]["table2"]) == 6
    assert loaded["versions"]["tensorrt"] is None
    assert report.render_markdown(loaded) == paths["markdown"].read_text()  # reproducible from JSON
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_reports_without_plot(tmp_path):
    paths = report.write_reports(_doc([]), tmp_path, plot=False)
    assert "png" not in paths and not (tmp_path / "bench.png").exists()


def test_ratio_is_per_frame_for_batches():
    r = report.make_record("ort", "ort", "fp32", 640, 360, 4, status="ok", timing=_timing(276.0))
    assert r["paper"]["tx1"]["ratio"] == pytest.approx(276.0 / 4 / 69.0)


def test_side_by_side_speedup_and_accuracy_change():
    recs = [report.make_record("torch", "torch", "fp32", 480, 360, 1, status="ok", timing=_timing(100.0),
                               accuracy={"miou": 0.65, "frames": 101}),
            report.make_record("ort", "ort", "fp32", 480, 360, 1, status="ok", timing=_timing(120.0),
                               accuracy={"miou": 0.65, "frames": 101}),
            report.make_record("openvino-int8", "openvino", "int8", 480, 360, 1, status="ok", timing=_timing(30.0),
                               accuracy={"miou": 0.6452, "frames": 101}),
            report.make_record("ort", "ort", "fp32", 640, 360, 1, status="skipped", reason="x"),
            report.make_record("openvino", "openvino", "fp32", 640, 360, 1, status="ok", timing=_timing(50.0))]
    rows = {(r["backend"], r["width"]): r for r in report.side_by_side(recs)}
    assert rows[("openvino-int8", 480)]["speedup"] == pytest.approx(4.0)
    assert rows[("openvino-int8", 480)]["miou_delta_pt"] == pytest.approx(-0.48)
    assert rows[("ort", 480)]["speedup"] == pytest.approx(1.0)
    assert rows[("openvino", 640)]["speedup"] is None and rows[("openvino", 640)]["miou_delta_pt"] is None
    md = "\n".join(report.side_by_side_lines(recs))
    assert "| openvino-int8 | 480x360 | 30.0 | 4.00x | 64.52 | -0.48 |" in md
    assert any("openvino-int8" in ln and "4.00x" in ln for ln in report.cpu_summary_lines(recs))
    assert report.side_by_side([recs[3]]) == [] and report.cpu_summary_lines([]) == []
