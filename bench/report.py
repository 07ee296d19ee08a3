"""Benchmark reports: JSON (machine-readable), Markdown (vs the paper), PNG plot.

The JSON document is the source of truth; Markdown and PNG are rendered from
it, so ``render_markdown(json.load(f))`` reproduces a report later. Files are
written atomically (``enet.fileio``).

One record per backend x resolution::

    {"backend": "ort", "kind": "ort", "precision": "fp32",
     "width": 640, "height": 360, "batch": 1,
     "status": "ok" | "skipped" | "failed", "reason": null | "...",
     "artifact": "...", "timing": {...harness.summarize...},
     "paper": {"tx1": {"ms": 69.0, "fps": 14.6, "ratio": 3.1}, ...},
     "accuracy": {"miou": ..., "frames": N} | null,
     "power": {"power_w": ..., "energy_j_per_frame": ...} | null}

``ratio`` is measured mean compute latency per frame / the paper's batch-1
latency (below 1: faster than the paper's device). For GPU records timed with
trtexec's definitions (``timing.compute_kind == "gpu"``, see
:mod:`enet.bench.device_timing`) compute is GPU compute time, and the
Markdown puts them in their own table with H2D, D2H, enqueue and latency
columns; CPU records render as before.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from enet.bench import paper
from enet.fileio import atomic_path, write_text

log = logging.getLogger(__name__)

FORMAT = "enet-bench"
FORMAT_VERSION = 1


def paper_columns(width: int, height: int, compute_mean_ms: float | None, batch: int = 1) -> dict[str, Any]:
    """Table 2 cells at ``width x height`` with the measured/paper ratio.

    The paper timed batch 1, so the ratio uses the measured latency per frame
    (``compute_mean_ms / batch``).
    """
    out: dict[str, Any] = {}
    for dev, t in paper.paper_timings(width, height).items():
        out[dev] = {"ms": t.ms, "fps": t.fps,
                    "ratio": (compute_mean_ms / batch / t.ms) if compute_mean_ms is not None else None}
    return out


def make_record(spec_name: str, kind: str, precision: str, width: int, height: int, batch: int, *,
                status: str, reason: str | None = None, artifact: str | None = None,
                timing: dict[str, Any] | None = None, accuracy: dict[str, Any] | None = None,
                power: dict[str, Any] | None = None) -> dict[str, Any]:
    """One backend x resolution record (see module docstring)."""
    mean = timing["compute"]["mean"] if timing else None
    return {
        "backend": spec_name, "kind": kind, "precision": precision,
        "width": width, "height": height, "batch": batch,
        "status": status, "reason": reason, "artifact": artifact,
        "timing": timing, "paper": paper_columns(width, height, mean, batch),
        "accuracy": accuracy, "power": power,
    }


def make_document(records: Sequence[dict[str, Any]], *, device: dict[str, Any], device_label: str,
                  versions: dict[str, Any], model: dict[str, Any], config: dict[str, Any],
                  command: str, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The whole report as one JSON-able dict."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "device_label": device_label,
        "device": device,
        "versions": versions,
        "model": model,
        "config": config,
        "paper": {
            "source": "Paszke et al. 2016, ENet, arXiv:1606.02147, Tables 2 and 3",
            "table2": [{"device": t.device, "device_name": paper.DEVICES[t.device], "width": t.width,
                        "height": t.height, "ms": t.ms, "fps": t.fps} for t in paper.TABLE2],
            "table3": {"gflops": paper.TABLE3_GFLOPS, "params": paper.TABLE3_PARAMS,
                       "width": paper.TABLE3_RESOLUTION[0], "height": paper.TABLE3_RESOLUTION[1]},
        },
        "records": list(records),
        "warnings": list(warnings),
    }


# ------------------------------------------------------------------ Markdown

def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if v is None else fmt.format(v)


def _ratio(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}x"


def table3_lines(model: dict[str, Any]) -> list[str]:
    """Markdown table: measured parameters and GFLOPs against Table 3."""
    params, gflops = model.get("params"), model.get("gflops")
    w, h = paper.TABLE3_RESOLUTION
    p_ratio = params / paper.TABLE3_PARAMS if params is not None else None
    g_ratio = gflops / paper.TABLE3_GFLOPS if gflops is not None else None
    return [
        "| | This model | Paper (Table 3) | Ratio |",
        "|---|---:|---:|---:|",
        f"| Parameters | {_f(params, '{:,}')} | {paper.TABLE3_PARAMS / 1e6:.2f}M | {_ratio(p_ratio)} |",
        f"| GFLOPs at {w}x{h} | {_f(gflops, '{:.2f}')} | {paper.TABLE3_GFLOPS:.2f} | {_ratio(g_ratio)} |",
    ]


def table3_text(model: dict[str, Any]) -> str:
    """Plain text for the console: parameters and GFLOPs vs Table 3."""
    params, gflops = model.get("params"), model.get("gflops")
    w, h = paper.TABLE3_RESOLUTION
    lines = []
    if params is not None:
        lines.append(f"parameters: {params:,} (paper Table 3: {paper.TABLE3_PARAMS / 1e6:.2f}M, "
                     f"ratio {params / paper.TABLE3_PARAMS:.2f})")
    if gflops is not None:
        lines.append(f"GFLOPs at {w}x{h}: {gflops:.2f} (paper Table 3: {paper.TABLE3_GFLOPS:.2f}, "
                     f"ratio {gflops / paper.TABLE3_GFLOPS:.2f}; conv/deconv multiply-adds x 2)")
    return "\n".join(lines)


def _is_gpu(r: dict[str, Any]) -> bool:
    return r["status"] == "ok" and (r.get("timing") or {}).get("compute_kind") == "gpu"


def _paper_cells(r: dict[str, Any]) -> list[str]:
    p = r["paper"]
    return [_f(p.get("tx1", {}).get("ms"), "{:.0f}"), _ratio(p.get("tx1", {}).get("ratio")),
            _f(p.get("titanx", {}).get("ms"), "{:.0f}"), _ratio(p.get("titanx", {}).get("ratio"))]


def _header(head: list[str]) -> list[str]:
    return ["| " + " | ".join(head) + " |",
            "|" + "|".join("---" if i in (0, 1, len(head) - 1) else "---:" for i in range(len(head))) + "|"]


def gpu_table_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """GPU records with trtexec's columns; the paper ratios use GPU compute time."""
    head = ["Backend", "Resolution (WxH)", "Batch", "GPU compute mean ms", "GPU compute median ms",
            "GPU compute p99 ms", "H2D mean ms", "D2H mean ms", "Enqueue mean ms", "Latency mean ms (H2D+GPU+D2H)",
            "E2E mean ms", "FPS (e2e)", "Paper TX1 ms", "vs TX1", "Paper Titan X ms", "vs Titan X", "Notes"]
    lines = _header(head)
    for r in records:
        if not _is_gpu(r):
            continue
        t, g = r["timing"], r["timing"]["gpu"]
        notes = [n for n, on in (("CUDA graph", g.get("cuda_graph")), ("zero-copy buffers", g.get("zero_copy")))
                 if on]
        if not t.get("stable", True):
            notes.append(f"unstable (CV {max(t['compute']['cv'], t['e2e']['cv']):.0%})")
        row = [r["backend"], f"{r['width']}x{r['height']}", str(r["batch"]),
               _f(t["compute"]["mean"], "{:.2f}"), _f(t["compute"]["median"], "{:.2f}"),
               _f(t["compute"]["p99"], "{:.2f}"),
               *(_f(g.get(k, {}).get("mean"), "{:.2f}") for k in ("h2d", "d2h", "enqueue", "latency")),
               _f(t["e2e"]["mean"], "{:.2f}"), _f(t["e2e"]["fps"]), *_paper_cells(r), "; ".join(notes)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def results_table_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """The main table: one row per measured record (GPU-timed ones excepted), paper Table 2 side by side."""
    records = [r for r in records if not _is_gpu(r)]
    has_acc = any(r.get("accuracy") for r in records)
    has_power = any((r.get("power") or {}).get("power_w") is not None for r in records)
    head = ["Backend", "Resolution (WxH)", "Batch", "Compute mean ms", "Compute median ms", "Compute p99 ms",
            "E2E mean ms",
            "FPS (e2e)", "Paper TX1 ms", "vs TX1", "Paper Titan X ms", "vs Titan X"]
    if has_acc:
        head.append("mIoU")
    if has_power:
        head += ["Power W", "mJ/frame"]
    head += ["Load + compile s", "Notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i in (0, 1, len(head) - 1) else "---:"
                                                          for i in range(len(head))) + "|"]
    for r in records:
        if r["status"] != "ok":
            continue
        t = r["timing"]
        p = r["paper"]
        row = [r["backend"], f"{r['width']}x{r['height']}", str(r["batch"]),
               _f(t["compute"]["mean"], "{:.2f}"), _f(t["compute"]["median"], "{:.2f}"),
               _f(t["compute"]["p99"], "{:.2f}"),
               _f(t["e2e"]["mean"], "{:.2f}"), _f(t["e2e"]["fps"]),
               _f(p.get("tx1", {}).get("ms"), "{:.0f}"), _ratio(p.get("tx1", {}).get("ratio")),
               _f(p.get("titanx", {}).get("ms"), "{:.0f}"), _ratio(p.get("titanx", {}).get("ratio"))]
        if has_acc:
            acc = r.get("accuracy") or {}
            row.append(_f(acc.get("miou"), "{:.3f}") + (f" ({acc['frames']} fr)" if acc.get("frames") else ""))
        if has_power:
            pw = r.get("power") or {}
            e = pw.get("energy_j_per_frame")
            row += [_f(pw.get("power_w"), "{:.2f}"), _f(e * 1000 if e is not None else None, "{:.0f}")]
        row.append(_f(t.get("load_s"), "{:.2f}"))
        notes = [] if t.get("stable", True) else [f"unstable (CV {max(t['compute']['cv'], t['e2e']['cv']):.0%})"]
        row.append("; ".join(notes))
        lines.append("| " + " | ".join(row) + " |")
    return lines


#: The baseline of the speed-up column (README "Speed"): the enet-export graph in ONNX Runtime, default options.
BASELINE = "ort"
#: The accuracy reference: the PyTorch checkpoint.
ACCURACY_REFERENCE = "torch"


def side_by_side(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per measured record: compute median, speed-up over :data:`BASELINE` and mIoU change from
    :data:`ACCURACY_REFERENCE` at the same resolution and batch (None where either is missing)."""
    by_key = {(r["backend"], r["width"], r["height"], r["batch"]): r for r in records if r["status"] == "ok"}
    rows = []
    for r in records:
        if r["status"] != "ok":
            continue
        key = (r["width"], r["height"], r["batch"])
        base = by_key.get((BASELINE, *key))
        ref = by_key.get((ACCURACY_REFERENCE, *key))
        med = r["timing"]["compute"]["median"]
        miou = (r.get("accuracy") or {}).get("miou")
        ref_miou = ((ref or {}).get("accuracy") or {}).get("miou")
        rows.append({
            "backend": r["backend"], "width": r["width"], "height": r["height"], "median_ms": med,
            "speedup": base["timing"]["compute"]["median"] / med if base and med else None,
            "miou": miou, "miou_delta_pt": 100 * (miou - ref_miou) if miou is not None and ref_miou is not None else None,
        })
    return rows


def _side_by_side_cells(row: dict[str, Any]) -> list[str]:
    delta = row["miou_delta_pt"]
    if delta is not None and abs(delta) < 0.005:
        delta = 0.0  # no "-0.00"
    return [row["backend"], f"{row['width']}x{row['height']}", _f(row["median_ms"], "{:.1f}"),
            _ratio(row["speedup"]), _f(None if row["miou"] is None else 100 * row["miou"], "{:.2f}"),
            _f(delta, "{:+.2f}")]


def side_by_side_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown: speed-up over the ``ort`` baseline and mIoU change from the checkpoint, per backend."""
    rows = side_by_side(records)
    if not rows:
        return []
    lines = [f"| Backend | WxH | Compute median ms | Speed-up vs {BASELINE} | mIoU % | vs {ACCURACY_REFERENCE} (pt) |",
             "|---|---|---:|---:|---:|---:|"]
    return lines + ["| " + " | ".join(_side_by_side_cells(row)) + " |" for row in rows]


def cpu_summary_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Console lines of :func:`side_by_side` (empty when nothing ran)."""
    rows = side_by_side(records)
    if not rows:
        return []
    out = [f"side by side (compute median; speed-up vs {BASELINE}; mIoU change vs {ACCURACY_REFERENCE}):"]
    for row in rows:
        backend, res, med, speed, miou, delta = _side_by_side_cells(row)
        out.append(f"  {backend:<14} {res:>9} {med:>8} ms {speed:>7}  mIoU {miou:>6} ({delta} pt)")
    return out


def op_profile_lines(records: Sequence[dict[str, Any]], top: int = 6) -> list[str]:
    """Markdown bullets: the op types that take the most time per backend (``--op-profile``)."""
    out = []
    for r in records:
        prof = r.get("op_profile")
        if r["status"] != "ok" or not prof:
            continue
        total = sum(prof.values()) or 1.0
        ops = ", ".join(f"{k} {v:.1f} ({100 * v / total:.0f}%)" for k, v in list(prof.items())[:top])
        out.append(f"- **{r['backend']}** {r['width']}x{r['height']}: {total:.1f} ms of kernels per run; {ops}")
    return out


def skipped_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """Bullets for skipped/failed backends, one per backend and reason."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in records:
        if r["status"] == "ok":
            continue
        key = (r["backend"], r["status"], r.get("reason") or "no reason recorded")
        groups.setdefault(key, []).append(f"{r['width']}x{r['height']}")
    return [f"- **{b}** {status} at {', '.join(res)}: {reason}" for (b, status, reason), res in groups.items()]


def paper_table2_lines() -> list[str]:
    """The paper's Table 2 (ENet rows), for reference."""
    lines = ["| Device (paper) | " + " | ".join(f"{w}x{h}" for w, h in paper.RESOLUTIONS) + " |",
             "|---|" + "---:|" * len(paper.RESOLUTIONS)]
    for dev, name in paper.DEVICES.items():
        cells = []
        for w, h in paper.RESOLUTIONS:
            t = paper.paper_timing(dev, w, h)
            cells.append(f"{t.ms:.0f} ms / {t.fps} fps" if t else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(doc: dict[str, Any]) -> str:
    """The Markdown report of a :func:`make_document` dict."""
    v = doc["versions"]
    cfg = doc["config"]
    vers = ", ".join(f"{k} {v[k] if v.get(k) else 'not installed'}"
                     for k in ("enet-rt", "torch", "onnxruntime", "openvino", "tensorrt", "python"))
    out = [f"# ENet benchmark: {doc['device_label']}", "",
           f"- Measured: {doc['created']}",
           f"- Command: `{doc['command']}`",
           f"- Versions: {vers}",
           f"- Model: `{doc['model'].get('path')}` (sha256 {str(doc['model'].get('sha256'))[:12]})",
           f"- Timing: warm-up {cfg.get('warmup_s')} s, then at least {cfg.get('min_iterations')} iterations "
           f"and {cfg.get('duration_s')} s per backend x resolution; compute = `infer()` only, "
           "E2E = normalise + infer + argmax; ratios are measured compute mean per frame / paper latency.",
           ]
    inputs = sorted({r["timing"].get("input") for r in doc["records"] if r.get("timing") and r["timing"].get("input")})
    if inputs:
        out.append(f"- Input: {'; '.join(inputs)}")
    out.append("")
    if doc.get("warnings"):
        out += ["**Warnings**", ""] + [f"- {w}" for w in doc["warnings"]] + [""]
    gpu = [r for r in doc["records"] if _is_gpu(r)]
    if len(gpu) < sum(r["status"] == "ok" for r in doc["records"]) or not gpu:
        out += ["## Latency vs the paper's Table 2", ""] + results_table_lines(doc["records"]) + [""]
    if gpu:
        out += ["## GPU latency vs the paper's Table 2 (trtexec definitions)", "",
                "GPU compute = the network alone, input already on the device, CUDA events on the inference "
                "stream around the enqueue only; H2D/D2H = the copies from/to page-locked host buffers; "
                "enqueue = host time of the enqueue call; latency = H2D + GPU compute + D2H; E2E = normalise + "
                "copies + network + argmax on the host clock. The paper ratios use GPU compute time (the paper "
                "timed the network in Torch7).", ""] + gpu_table_lines(doc["records"]) + [""]
    sbs = side_by_side_lines(doc["records"])
    if sbs:
        out += ["## Side by side", "",
                f"Speed-up: `{BASELINE}` compute median / this backend's, same resolution and batch. "
                f"mIoU change: this backend's val mIoU minus the PyTorch checkpoint's (`{ACCURACY_REFERENCE}`), "
                "on the same frames.", ""] + sbs + [""]
    prof = op_profile_lines(doc["records"])
    if prof:
        out += ["## Where the time goes (`--op-profile`)", "",
                "Milliseconds per inference by op type, from ONNX Runtime's profiler and OpenVINO's per-layer "
                "counters (kernel time; with several threads, ops that run in parallel both count).", ""] + prof + [""]
    skipped = skipped_lines(doc["records"])
    if skipped:
        out += ["## Skipped", ""] + skipped + [""]
    out += ["## Paper Table 2 (ENet, batch 1)", ""] + paper_table2_lines() + [""]
    out += ["## Model size vs the paper's Table 3", ""] + table3_lines(doc["model"]) + [""]
    return "\n".join(out)


# ---------------------------------------------------------------------- PNG

def plot_png(doc: dict[str, Any], path: str | Path) -> None:
    """Latency (compute mean, log scale) vs resolution per backend; paper points marked."""
    from enet._lazy import require

    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res_order = [tuple(x) for x in paper.RESOLUTIONS]
    for r in doc["records"]:
        if (r["width"], r["height"]) not in res_order:
            res_order.append((r["width"], r["height"]))
    res_order.sort(key=lambda wh: wh[0] * wh[1])
    xpos = {wh: i for i, wh in enumerate(res_order)}

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    by_backend: dict[str, list[tuple[int, float]]] = {}
    for r in doc["records"]:
        if r["status"] == "ok":
            by_backend.setdefault(r["backend"], []).append((xpos[(r["width"], r["height"])],
                                                            r["timing"]["compute"]["mean"]))
    for name, pts in by_backend.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{name} (measured)")
    styles = {"tx1": ("s", "tab:gray"), "titanx": ("*", "black")}
    for dev, name in paper.DEVICES.items():
        pts = [(xpos[(t.width, t.height)], t.ms) for t in paper.TABLE2 if t.device == dev]
        marker, color = styles.get(dev, ("x", "black"))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="--", marker=marker, color=color,
                markersize=9, label=f"paper: {name}")
    ax.set_xticks(range(len(res_order)), [f"{w}x{h}" for w, h in res_order])
    ax.set_yscale("log")
    ax.set_xlabel("resolution (W x H)")
    ax.set_ylabel("latency per batch, ms (log)")
    ax.set_title(f"ENet latency: {doc['device_label']}"[:110], fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_reports(doc: dict[str, Any], folder: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """Write ``bench.json``, ``bench.md`` and (if ``plot``) ``bench.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "bench.json", "markdown": folder / "bench.md"}
    write_text(paths["json"], json.dumps(doc, indent=2, default=str) + "\n")
    write_text(paths["markdown"], render_markdown(doc))
    if plot:
        paths["png"] = folder / "bench.png"
        plot_png(doc, paths["png"])
    return paths
