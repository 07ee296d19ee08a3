"""Every enet-* option is spelled as docs/cli.md's vocabulary table says (issue 19, item 3).

The parsers are built (their builder functions import nothing heavy) and
compared with the markdown tables in both directions: an option missing
from the table, a table row naming an option a command lacks, or a hidden
option that is not a listed deprecated alias all fail.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from enet.cli import DeprecatedAlias

ROOT = Path(__file__).resolve().parents[1]

#: Every command's parser builder (no heavy imports).
PARSERS = {
    "train": "enet.cli:train_parser",
    "summary": "enet.cli:summary_parser",
    "plot": "enet.cli:plot_parser",
    "average": "enet.cli:average_parser",
    "eval": "enet.engine.eval_cli:eval_parser",
    "export": "enet.export.cli:build_parser",
    "build-engine": "enet.engine.cli:build_parser",
    "bench": "enet.bench.cli:build_parser",
    "run": "enet.deploy.cli:build_parser",
    "demo": "enet.deploy.demo:build_parser",
    "batch": "enet.deploy.batch.cli:build_parser",
}


def _parser(command: str) -> argparse.ArgumentParser:
    module, name = PARSERS[command].split(":")
    return getattr(importlib.import_module(module), name)()


def _table(heading: str) -> list[list[str]]:
    """Rows (cells) of the first markdown table after ``heading`` in docs/cli.md."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if set("".join(cells)) <= set("-: "):
            continue
        rows.append(cells)
    return rows[1:]  # without the header


def _spellings(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _commands(cell: str) -> set[str]:
    return set(PARSERS) if cell.strip() == "all" else {c.strip() for c in cell.split(",") if c.strip()}


def _vocabulary() -> dict[str, set[str]]:
    """spelling -> commands allowed to have it."""
    allowed: dict[str, set[str]] = {}
    for _concept, spelling, commands, *_ in _table("## The vocabulary"):
        for s in _spellings(spelling):
            allowed.setdefault(s, set()).update(_commands(commands))
    return allowed


def _deprecated() -> dict[str, tuple[str, set[str]]]:
    out = {}
    for old, new, commands in _table("## Deprecated spellings"):
        out[_spellings(old)[0]] = (_spellings(new)[0], _commands(commands))
    return out


def _options(command: str) -> tuple[set[str], dict[str, DeprecatedAlias]]:
    """Visible spellings (option strings, positional metavars) and deprecated aliases of one command."""
    visible: set[str] = set()
    hidden: dict[str, DeprecatedAlias] = {}
    for action in _parser(command)._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:
            assert isinstance(action, DeprecatedAlias), (
                f"enet-{command}: hidden option {action.option_strings} is not a deprecated alias")
            hidden.update(dict.fromkeys(action.option_strings, action))
        elif action.option_strings:
            visible.update(action.option_strings)
        else:
            visible.add(action.metavar or action.dest.upper())
    return visible, hidden


def test_every_command_is_covered() -> None:
    text = (ROOT / "pyproject.toml").read_text()  # no tomllib: Python 3.10 is supported
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = re.findall(r"^(enet-[\w-]+)\s*=", section, flags=re.M)
    assert scripts and {name.removeprefix("enet-") for name in scripts} == set(PARSERS)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_options_follow_the_table(command: str) -> None:
    allowed = _vocabulary()
    visible, _ = _options(command)
    off_table = sorted(s for s in visible if command not in allowed.get(s, set()))
    assert not off_table, (f"enet-{command}: {off_table} not in docs/cli.md's vocabulary table for {command}; "
                           "use the table's spelling, or add a row")


def test_table_names_only_real_options() -> None:
    options = {c: _options(c)[0] for c in PARSERS}
    missing = sorted(f"enet-{c} {s}" for s, cmds in _vocabulary().items() for c in cmds if s not in options[c])
    assert not missing, f"docs/cli.md names options these commands do not have: {missing}"


def test_deprecated_aliases_are_listed() -> None:
    listed = _deprecated()
    found: set[tuple[str, str]] = set()
    for command in PARSERS:
        for old, action in _options(command)[1].items():
            assert old in listed and command in listed[old][1], f"enet-{command} {old}: not in docs/cli.md"
            assert action.replacement.split()[0] == listed[old][0].split()[0], (command, old)
            found.add((old, command))
    assert found == {(old, c) for old, (_, cmds) in listed.items() for c in cmds}


def test_design_card_invocations_parse() -> None:
    """The design card's own command lines stay valid, unchanged."""
    assert _parser("export").parse_args(["model.pth", "-o", "x.onnx"]).model == "model.pth"
    args = _parser("build-engine").parse_args(["enet.onnx", "--int8", "-o", "enet.engine"])
    assert args.precision == "int8" and args.model == "enet.onnx"
    assert _parser("bench").parse_args(["--device", "jetson"]).device == "jetson"  # deprecated, still valid


def test_model_positional_and_option_are_one() -> None:
    p = _parser("eval")
    assert p.parse_args(["--model", "a.onnx"]).model == "a.onnx"
    assert p.parse_args(["a.onnx"]).model == "a.onnx"
    assert not hasattr(p.parse_args(["a.onnx"]), "model_option")


def test_two_models_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parser("export").parse_args(["a.pth", "--model", "b.pth", "-o", "x.onnx"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("enet-export: error: two models")


@pytest.mark.parametrize("command, old, new, dest, value", [
    ("export", ["--verify", "0"], ["--verify-frames", "0"], "verify_frames", 0),
    ("build-engine", ["--calib-images", "7"], ["--calib-frames", "7"], "calib_frames", 7),
    ("bench", ["--resolutions", "640x360"], ["--size", "640x360"], "size", "640x360"),
    ("bench", ["--backends", "ort"], ["--backend", "ort"], "backend", "ort"),
    ("eval", ["--limit", "4"], ["--frames", "4"], "frames", 4),
    ("run", ["in.mp4", "--max-frames", "4"], ["in.mp4", "--frames", "4"], "frames", 4),
    ("demo", ["--output-dir", "d"], ["--output", "d"], "output", "d"),
    ("demo", ["--camvid", "c"], ["--data-root", "c"], "data_root", "c"),
])
def test_deprecated_alias_warns_once_and_means_the_same(capsys: pytest.CaptureFixture[str], command: str,
                                                        old: list[str], new: list[str], dest: str,
                                                        value: object) -> None:
    base = ["m.onnx", "-o", "x.onnx"] if command in ("build-engine", "export") else []
    assert getattr(_parser(command).parse_args(base + new), dest) == value
    assert capsys.readouterr().err == ""
    assert getattr(_parser(command).parse_args(base + old), dest) == value
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"enet-{command}: warning: {old[-2]} is deprecated; use {new[-2]}"]


def test_export_size_replaces_height_and_width() -> None:
    p = _parser("export")
    args = p.parse_args(["-o", "x.onnx", "--size", "960x720"])
    assert (args.height, args.width) == (720, 960)
    args = p.parse_args(["-o", "x.onnx", "--height", "720"])
    assert (args.height, args.width) == (720, None)


def test_help_hides_deprecated_spellings() -> None:
    r = subprocess.run([sys.executable, "-m", "enet.bench.cli", "--help"], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0
    assert "--size" in r.stdout and "--resolutions" not in r.stdout and "--backends" not in r.stdout


#: the least command line each parser accepts (positional inputs)
BASE = {"plot": ["log.jsonl", "-o", "p.png"], "average": ["a.pth", "b.pth", "-o", "c.pth"], "run": ["in.mp4"],
        "batch": ["in.mp4", "-o", "out"]}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_verbosity_is_a_counter_in_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 29 item 24: -v/-q are counters everywhere, one or the other (docs/cli.md)."""
    p = _parser(command)
    base = BASE.get(command, [])
    args = p.parse_args(base + ["-vv"])
    assert (args.verbose, args.quiet) == (2, 0)
    args = p.parse_args(base + ["-qq"])
    assert (args.verbose, args.quiet) == (0, 2)
    assert (p.parse_args(base).verbose, p.parse_args(base).quiet) == (0, 0)
    with pytest.raises(SystemExit) as exc:
        p.parse_args(base + ["-v", "-q"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err


def _help(command: str, option: str) -> str:
    return " ".join(next(a.help for a in _parser(command)._actions if option in a.option_strings).split())


@pytest.mark.parametrize("command", ["train", "build-engine", "bench"])
def test_val_frames_means_one_thing(command: str) -> None:
    """Issue 29 item 24: --val-frames N is N val frames spaced evenly over the split in every command."""
    assert "spaced evenly over the split" in _help(command, "--val-frames")


def test_val_frames_are_spaced_in_training_and_conversion(tmp_path: Path) -> None:
    from enet.data import SegmentationDataset
    from enet.datasets import open_dataset
    from tests.conftest import write_camvid_like

    root = write_camvid_like(tmp_path / "d", splits={"train": 2, "val": 5})
    info = open_dataset(root)
    ds = SegmentationDataset(info, "val", size=(48, 64), mean=(0, 0, 0), std=(1, 1, 1), limit=3, spaced=True)
    all_val = info.samples("val")
    assert ds.samples == [all_val[0], all_val[2], all_val[4]]
    import inspect

    from enet.engine.quant import convert
    from enet import train

    assert "spaced=True" in inspect.getsource(convert.compare_val)
    assert "limit=cfg.val_limit, spaced=True" in inspect.getsource(train)


@pytest.mark.parametrize("command", ["train", "eval", "bench"])
def test_device_is_where_it_runs(command: str) -> None:
    """Issue 29 item 24: --device is auto|cpu|cuda everywhere; the bench's machine kind is --machine."""
    p = _parser(command)
    for value in ("auto", "cpu", "cuda"):
        assert p.parse_args([*BASE.get(command, []), "--device", value]).device == value
    assert "desktop" not in _help(command, "--device").split("(")[0]


def test_bench_machine_and_its_deprecated_device_values(capsys: pytest.CaptureFixture[str]) -> None:
    p = _parser("bench")
    assert p.parse_args(["--machine", "jetson"]).device == "jetson"
    assert p.parse_args(["--device", "cuda", "--machine", "desktop"]).device == "desktop"
    assert capsys.readouterr().err == ""
    assert p.parse_args(["--device", "desktop"]).device == "desktop"
    assert capsys.readouterr().err.strip() == "enet-bench: warning: --device desktop is deprecated; use --machine desktop"
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--device", "cpu", "--machine", "jetson"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--device", "tpu"])
    assert exc.value.code == 2
