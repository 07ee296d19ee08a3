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
    assert _parser("bench").parse_args(["--device", "jetson"]).device == "jetson"


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
