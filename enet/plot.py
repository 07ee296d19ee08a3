"""Training curves from ``log.jsonl`` files (loss and val mIoU per epoch)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from enet._lazy import require
from enet.errors import EnetError
from enet.fileio import atomic_path


def read_log(path: str | os.PathLike[str]) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise EnetError(f"training log {p} does not exist")
    try:
        recs = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise EnetError(f"{p} is not a JSON-lines training log (not text); pass a log.jsonl from enet-train") from None
    except json.JSONDecodeError as exc:
        raise EnetError(f"{p} is not a JSON-lines training log ({exc.msg} at line {exc.lineno})") from None
    if any(not isinstance(r, dict) or "epoch" not in r or "train_loss" not in r for r in recs):
        raise EnetError(f"{p} is not a training log (records without epoch/train_loss); pass a log.jsonl "
                        "from enet-train")
    return recs


def _val_size(path: Path, recs: list[dict]) -> str | None:
    """Evaluation size of a stage: from the log, else from the checkpoints beside it."""
    for r in recs:
        if r.get("val_size"):
            h, w = r["val_size"]
            return f"{w}x{h}"
    for name in ("best.pth", "last.pth"):
        ckpt = path.parent / name
        if ckpt.is_file():
            try:
                torch = require("torch")
                cfg = torch.load(ckpt, map_location="cpu", weights_only=True)["meta"]["train_config"]
                h, w = cfg["val_size"]
                return f"{w}x{h}"
            except Exception:  # noqa: BLE001 - the label is a nicety
                return None
    return None


_DATASET_NAMES = {"camvid": "CamVid", "cityscapes": "Cityscapes"}


def dataset_name(path: str | os.PathLike[str], recs: list[dict]) -> str | None:
    """The name a curve's title gives the dataset: CamVid, Cityscapes, or your own data's folder name.

    Read from the log (enet-train writes ``dataset`` and ``data_root`` in every record), else from the
    checkpoint beside it; None when neither says.
    """
    kind = root = None
    for r in recs:
        kind, root = r.get("dataset") or kind, r.get("data_root") or root
    if kind is None:
        ckpt = next((Path(path).parent / n for n in ("best.pth", "last.pth") if (Path(path).parent / n).is_file()),
                    None)
        if ckpt is not None:
            try:
                torch = require("torch")
                cfg = torch.load(ckpt, map_location="cpu", weights_only=True)["meta"]["train_config"]
                kind, root = cfg.get("dataset"), cfg.get("data_root")
            except Exception:  # noqa: BLE001 - the title is a nicety
                return None
    if kind in _DATASET_NAMES:
        return _DATASET_NAMES[kind]
    if root:
        return Path(str(root).rstrip("/")).name or str(root)
    return None


def plot_training(logs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]) -> None:
    """Draw the logs one after another (e.g. half-res stage, then full-res) into a PNG (:func:`draw_training`).

    Missing folders above ``output`` are created (docs/cli.md).
    """
    stages = [(path, read_log(path)) for path in logs]  # every log checked before matplotlib starts
    fig = draw_training(stages)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    require("matplotlib.pyplot").close(fig)


def draw_training(stages: Sequence[tuple[str | os.PathLike[str], list[dict]]]) -> Any:
    """The figure of :func:`plot_training` from ``(log path, records)`` stages: loss, and val mIoU titled with
    the dataset; every point marked, so a one-epoch stage is visible."""
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # "generated new fontManager" is no news
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    names = {n for n in (dataset_name(path, recs) for path, recs in stages) if n}
    for path, recs in stages:
        if not recs:
            continue
        label = Path(path).parent.name or str(path)
        size = _val_size(Path(path), recs)
        if size:
            label += f" (val at {size})"
        ep = [offset + r["epoch"] for r in recs]
        # a marker on every point: a one-epoch stage is a single point, invisible as a bare line
        ax1.plot(ep, [r["train_loss"] for r in recs], marker="o" if len(ep) == 1 else ".", label=label)
        val = [(offset + r["epoch"], 100 * r["val_miou"]) for r in recs if r.get("val_miou") is not None]
        if val:
            ax2.plot(*zip(*val), marker="o" if len(val) == 1 else ".", label=label)
        offset = ep[-1]
    ax1.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax2.set(xlabel="epoch", ylabel="mIoU %", title=" / ".join(sorted(names)) + " val mIoU" if names else "val mIoU")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
