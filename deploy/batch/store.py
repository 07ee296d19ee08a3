"""``enet-batch``'s output folder: per-recording Parquet files, committed atomically, and the resume check.

Layout of ``OUT``::

    batch.json              the model and options the folder was made with
    frames/<id>.parquet     one row per frame: recording, frame, pts, frac_<class>...,
                            confidence, worker, decode_ms, infer_ms (+ b_frac_<class>..., agreement)
    labels/<id>/000000.png  --labels: class ids per pixel (uint8), at the model's size
    done/<id>.json          the recording's summary; written last, it marks the recording complete
    summary.parquet         one row per complete recording (rebuilt at the end of every run)
    compare.parquet         --compare: per recording, agreement and class-fraction differences
    run.json                the last run: frames/s overall and per worker, time per stage

A recording is complete when ``done/<id>.json`` exists; its frames file and
labels were moved into place before it. A run that dies leaves only
temporary files (removed by the next run) or a complete recording; the next
run skips complete recordings and redoes the rest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enet.errors import EnetError
from enet.fileio import atomic_path, new_file_mode, write_text

log = logging.getLogger(__name__)

MANIFEST = "batch.json"


@dataclass
class FrameResult:
    """What the pipeline returns for one frame."""

    frame: int
    pts: float | None
    fractions: np.ndarray          # float64 (C,)
    confidence: float              # NaN when not computed
    worker: str
    decode_ms: float
    infer_ms: float
    b_fractions: np.ndarray | None = None
    agreement: float | None = None


class Store:
    """The output folder of one ``enet-batch`` run.

    Args:
        out: the folder (created on :meth:`open`).
        classes: class names of the model (column names ``frac_<class>``).
        manifest: the model and options; a folder made with others is refused.
    """

    def __init__(self, out: str | Path, classes: Sequence[str], manifest: dict[str, Any]) -> None:
        self.out = Path(out)
        self.classes = list(classes)
        self.manifest = manifest

    # ------------------------------------------------------------------ resume

    def check(self) -> None:
        """Refuse a folder made with another model or options (before any long work).

        Raises:
            EnetError: ``OUT`` is a file, or its manifest differs.
        """
        if self.out.exists() and not self.out.is_dir():
            raise EnetError(f"output {self.out} exists and is not a folder; choose another -o")
        path = self.out / MANIFEST
        if not path.is_file():
            return
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EnetError(f"cannot read {path} ({exc}); is {self.out} an enet-batch output?") from None
        diff = [k for k in sorted(set(old) | set(self.manifest)) if old.get(k) != self.manifest.get(k)]
        if diff:
            k = diff[0]
            raise EnetError(f"{self.out} was made with {k} {old.get(k)!r}, not {self.manifest.get(k)!r}; "
                            "resume with the same model and options, or choose another -o")

    def open(self) -> None:
        """Create the folder and its manifest; remove what an interrupted run left half-done."""
        subs = ("frames", "done", "labels") if self.manifest.get("labels") else ("frames", "done")
        for sub in subs:  # labels/ only with --labels: no empty folder otherwise
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        if not (self.out / MANIFEST).is_file():
            write_text(self.out / MANIFEST, json.dumps(self.manifest, indent=1) + "\n")
        done = self.complete()
        for sub in ("frames", "done", "labels"):
            if not (self.out / sub).is_dir():
                continue
            for p in (self.out / sub).iterdir():
                stray = p.name.startswith(".") and ".tmp" in p.name
                stem = p.name[: -len(".parquet")] if p.name.endswith(".parquet") else p.name
                if stray or (sub != "done" and stem not in done):
                    log.debug("removing %s (left by an interrupted run)", p)
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink(missing_ok=True)

    def complete(self) -> set[str]:
        """Ids of the recordings already complete in the folder."""
        folder = self.out / "done"
        if not folder.is_dir():
            return set()
        return {p.stem for p in folder.glob("*.json") if not p.name.startswith(".")}

    # ------------------------------------------------------------------ commit

    def _partial_labels(self, rec_id: str) -> Path:
        return self.out / "labels" / f".{rec_id}.tmp"

    def add_labels(self, rec_id: str, frame: int, png: bytes) -> None:
        """One frame's label PNG, into the recording's temporary folder (moved into place by :meth:`commit`).

        Written as frames arrive, so the driver never holds a long recording's labels in memory.
        """
        folder = self._partial_labels(rec_id)
        folder.mkdir(exist_ok=True)
        path = folder / f"{frame:06d}.png"
        path.write_bytes(png)
        os.chmod(path, new_file_mode())

    def drop_labels(self, rec_id: str) -> None:
        """Forget a failed recording's partial labels."""
        shutil.rmtree(self._partial_labels(rec_id), ignore_errors=True)

    def commit(self, rec_id: str, location: str, results: Iterable[FrameResult], *, compare: bool) -> dict[str, Any]:
        """Write one recording: labels, then its frames file, then its summary (the completion mark).

        Returns:
            The recording's summary row.
        """
        pa, pq = _arrow()
        rows = sorted(results, key=lambda r: r.frame)
        partial = self._partial_labels(rec_id)
        if partial.is_dir():
            os.replace(partial, self.out / "labels" / rec_id)
        fr = np.stack([r.fractions for r in rows]) if rows else np.zeros((0, len(self.classes)))
        cols: dict[str, Any] = {
            "recording": pa.array([rec_id] * len(rows), pa.string()),
            "frame": pa.array([r.frame for r in rows], pa.int32()),
            "pts": pa.array([r.pts for r in rows], pa.float64()),
        }
        for i, c in enumerate(self.classes):
            cols[f"frac_{c}"] = pa.array(fr[:, i], pa.float64())
        conf = np.array([r.confidence for r in rows], dtype=np.float64)
        cols["confidence"] = pa.array(conf, pa.float64(), mask=np.isnan(conf))
        if compare:
            fb = np.stack([r.b_fractions for r in rows]) if rows else np.zeros_like(fr)
            for i, c in enumerate(self.classes):
                cols[f"b_frac_{c}"] = pa.array(fb[:, i], pa.float64())
            cols["agreement"] = pa.array([r.agreement for r in rows], pa.float64())
        cols["worker"] = pa.array([r.worker for r in rows], pa.string())
        cols["decode_ms"] = pa.array([r.decode_ms for r in rows], pa.float32())
        cols["infer_ms"] = pa.array([r.infer_ms for r in rows], pa.float32())
        with atomic_path(self.out / "frames" / f"{rec_id}.parquet", suffix=".tmp.parquet") as tmp:
            pq.write_table(pa.table(cols), tmp)
        summary = self._summary(rec_id, location, rows, fr, conf, compare)
        write_text(self.out / "done" / f"{rec_id}.json", json.dumps(summary) + "\n")
        return summary

    def _summary(self, rec_id: str, location: str, rows: list[FrameResult], fr: np.ndarray, conf: np.ndarray,
                 compare: bool) -> dict[str, Any]:
        s: dict[str, Any] = {"recording": rec_id, "source": location, "frames": len(rows)}
        mean = fr.mean(0) if len(rows) else np.zeros(len(self.classes))
        for i, c in enumerate(self.classes):
            s[f"frac_{c}"] = float(mean[i])
        ok = conf[~np.isnan(conf)]
        s["confidence_mean"] = float(ok.mean()) if ok.size else None
        s["confidence_min"] = float(ok.min()) if ok.size else None
        s["workers"] = ",".join(sorted({r.worker for r in rows}))
        if compare:
            fb = np.stack([r.b_fractions for r in rows]) if rows else np.zeros_like(fr)
            agree = np.array([r.agreement for r in rows], dtype=np.float64)
            s["agreement_mean"] = float(agree.mean()) if agree.size else None
            s["agreement_min"] = float(agree.min()) if agree.size else None
            for i, c in enumerate(self.classes):
                d = fb[:, i] - fr[:, i]
                s[f"diff_{c}"] = float(d.mean()) if d.size else 0.0
                s[f"absdiff_max_{c}"] = float(np.abs(d).max()) if d.size else 0.0
        return s

    # ------------------------------------------------------------------ tables

    def write_tables(self, *, compare: bool) -> Path:
        """``summary.parquet`` (and ``compare.parquet``) from every complete recording; returns the summary path."""
        pa, pq = _arrow()
        rows = []
        for p in sorted((self.out / "done").glob("*.json")):
            if not p.name.startswith("."):
                rows.append(json.loads(p.read_text(encoding="utf-8")))
        cmp_keys = [k for k in (rows[0] if rows else {}) if k.startswith(("agreement", "diff_", "absdiff_"))]
        base = [r for r in ({k: v for k, v in row.items() if k not in cmp_keys} for row in rows)]
        summary = self.out / "summary.parquet"
        _write(pa, pq, summary, base)
        if compare:
            keep = ("recording", "source", "frames", *cmp_keys)
            _write(pa, pq, self.out / "compare.parquet", [{k: r[k] for k in keep} for r in rows])
        return summary

    def write_run(self, stats: dict[str, Any]) -> None:
        write_text(self.out / "run.json", json.dumps(stats, indent=1) + "\n")


def _write(pa: Any, pq: Any, path: Path, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows) if rows else pa.table({"recording": pa.array([], pa.string())})
    with atomic_path(path, suffix=".tmp.parquet") as tmp:
        pq.write_table(table, tmp)


def _arrow() -> tuple[Any, Any]:
    from enet._lazy import require

    return require("pyarrow"), require("pyarrow.parquet")
