"""Shipped weights: addressed by name and by path, sha256-checked, metadata beside them, packaged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from enet.errors import EnetError
from enet.fileio import sha256_file
from enet.transforms import DEFAULT_RESIZE
from enet.weights import WEIGHTS, Weights, get_weights, resolve_model

ROOT = Path(__file__).resolve().parents[2]


def test_names_paths_and_the_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENET_MODEL", raising=False)
    shipped = resolve_model(None)
    assert shipped == resolve_model("camvid") == get_weights("camvid").path()
    assert shipped.is_file() and shipped.parent.name == "pretrained"
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"x")
    assert resolve_model(str(mine)) == mine
    monkeypatch.setenv("ENET_MODEL", str(mine))
    assert resolve_model(None) == mine
    monkeypatch.setenv("ENET_MODEL", "camvid")
    assert resolve_model(None) == shipped
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvid").write_bytes(b"a file named like the weights wins")
    assert resolve_model("camvid") == Path("camvid")
    assert resolve_model("nothing.pth") == Path("nothing.pth")  # the caller reports it missing
    with pytest.raises(EnetError, match="known: camvid"):
        get_weights("cityscapes")


def test_a_damaged_file_is_refused() -> None:
    w = WEIGHTS["camvid"]
    bad = Weights(w.name, w.filename, "0" * 64, w.description)
    with pytest.raises(EnetError, match="sha256 .* expected 0000"):
        bad.path()


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_shipped_metadata_matches_the_checkpoint(name: str) -> None:
    from enet.checkpoint import load_checkpoint

    w = get_weights(name)
    doc = w.meta()
    assert doc["sha256"] == w.sha256 == sha256_file(w.path())
    meta = load_checkpoint(w.path())["meta"]
    assert doc["meta"] == {"resize": DEFAULT_RESIZE, **meta}  # v1 predates the resize key
    assert doc["meta"]["metrics"]["miou"] > 0.6 and "recipe" in doc and doc["name"] == name


def test_the_first_camvid_weights_stay_reachable_by_name() -> None:
    v1 = get_weights("camvid-v1")
    assert v1.sha256 == "ef920c8ae12cc4e61284e4c22ca199be2dfeebacb50cdbfd6f66641cd9ffc2ee"  # as shipped before issue 21
    assert abs(v1.meta()["meta"]["metrics"]["miou"] - 0.6496) < 1e-4
    assert v1.onnx_files() == {}  # its .pth runs; the exported ONNX ship with camvid only


def test_the_second_camvid_weights_stay_reachable_by_name() -> None:
    v2 = get_weights("camvid-v2")
    assert v2.sha256 == "c56e6508cd4c742d7188010dc867a3cf2796afd4e265319ed2c8ceef2addf6fa"  # camvid before the soup
    assert abs(v2.meta()["meta"]["metrics"]["miou"] - 0.6638) < 1e-4
    assert v2.onnx_files() == {}


def test_the_shipped_camvid_is_an_average_of_two_fine_tunes() -> None:
    meta = get_weights("camvid").meta()["meta"]
    assert [a["train_config"]["loss"] for a in meta["average_of"]] == ["ce+lovasz", "lovasz"]
    assert abs(meta["metrics"]["miou"] - 0.6807) < 1e-4  # measured by enet-average --data-root


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_weights_are_package_data() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["enet"]
    assert "pretrained/*.pth" in cfg and "pretrained/*.json" in cfg
    for w in WEIGHTS.values():
        assert (ROOT / "enet" / "pretrained" / w.filename).is_file()
