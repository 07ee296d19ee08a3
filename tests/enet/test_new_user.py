"""What a new user hit (issue 19, item 4): progress in logs, enet-plot's title and one-epoch curve, enet-train over
an earlier run, and one rule for missing output folders."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from enet import progress as progress_mod
from enet.cli import plot_main, refuse_earlier_run, train_parser
from enet.errors import EnetError
from enet.fileio import write_text


def test_progress_in_a_log_is_a_few_lines(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress_mod, "is_terminal", lambda stream=None: False)
    caplog.set_level(logging.INFO, logger="enet.progress")
    bar = progress_mod.progress(range(100), total=100, desc="eval val", unit="batch")
    assert list(bar) == list(range(100))
    bar.set_postfix(loss="0.5")
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert 1 <= len(lines) <= progress_mod.LOG_STEPS + 1, lines
    assert lines[-1] == "eval val: 100/100 batch"


def test_progress_disabled_and_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="enet.progress")
    assert list(progress_mod.progress(range(5), total=5, enabled=False)) == list(range(5))
    assert caplog.records == []
    monkeypatch.setattr(progress_mod, "is_terminal", lambda stream=None: True)
    bar = progress_mod.progress(range(3), total=3, desc="epoch 1/1")
    assert type(bar).__name__ == "tqdm" and list(bar) == [0, 1, 2]


def test_is_terminal_of_a_pipe() -> None:
    import io

    assert progress_mod.is_terminal(io.StringIO()) is False


def _log(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_plot_names_a_custom_dataset_and_marks_one_epoch(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from enet.plot import dataset_name, draw_training

    recs = [{"epoch": 1, "train_loss": 1.2, "val_miou": 0.3, "dataset": "custom", "data_root": "/data/my_road/"}]
    log = _log(tmp_path / "road" / "log.jsonl", recs)
    assert dataset_name(log, recs) == "my_road"
    assert dataset_name(log, [{**recs[0], "dataset": "camvid"}]) == "CamVid"
    assert dataset_name(log, [{"epoch": 1, "train_loss": 1.0}]) is None  # an older log, no checkpoint beside
    fig = draw_training([(log, recs)])
    loss_ax, miou_ax = fig.axes
    assert miou_ax.get_title() == "my_road val mIoU"
    assert all(line.get_marker() not in (None, "None", "") for ax in fig.axes for line in ax.get_lines())


def test_plot_creates_missing_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    log = _log(tmp_path / "run" / "log.jsonl", [{"epoch": 1, "train_loss": 1.0, "val_miou": 0.2}])
    out = tmp_path / "new" / "sub" / "curve.png"
    assert plot_main([str(log), "-o", str(out)]) == 0
    assert out.is_file()


@pytest.mark.parametrize("name", ["last.pth", "best.pth", "log.jsonl"])
def test_train_refuses_an_earlier_run(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(EnetError, match=r"--resume .*last\.pth.*--overwrite"):
        refuse_earlier_run(tmp_path)
    refuse_earlier_run(tmp_path / "fresh")  # a new folder is fine
    args = train_parser().parse_args(["-o", str(tmp_path), "--overwrite"])
    assert args.overwrite


def test_atomic_write_creates_and_cleans_up_folders(tmp_path: Path) -> None:
    from enet.fileio import atomic_path

    write_text(tmp_path / "a" / "b" / "m.json", "{}")
    assert (tmp_path / "a" / "b" / "m.json").read_text() == "{}"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "c" / "d" / "x.onnx"):
            raise RuntimeError("the export failed")
    assert not (tmp_path / "c").exists()
