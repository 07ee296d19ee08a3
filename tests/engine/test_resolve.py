"""One resolution of model file, backend and precision; one table of backend kinds; the shipped ONNX files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enet.engine.runtime import cpu_choice, resolve, sidecar
from enet.engine.runtime.backend import BACKEND_CHOICES, BACKEND_KINDS, ONNX_KINDS, BackendBase
from enet.errors import EnetError
from enet.weights import WEIGHTS, get_weights

pytest.importorskip("onnxruntime")


def test_one_table_of_kinds_in_every_command() -> None:
    from enet.deploy.cli import build_parser as run_parser
    from enet.deploy.demo import build_parser as demo_parser
    from enet.engine.eval_cli import eval_parser

    assert BACKEND_CHOICES == ("auto", "torch", "ort", "ort-fast", "openvino", "trt")
    assert ONNX_KINDS == ("ort", "ort-fast", "openvino")
    for make in (run_parser, demo_parser, eval_parser):
        action = next(a for a in make()._actions if "--backend" in a.option_strings)
        assert tuple(action.choices) == BACKEND_CHOICES, make
        prec = next(a for a in make()._actions if "--precision" in a.option_strings)
        assert tuple(prec.choices) == ("auto", "fp16", "int8", "fp32") and prec.default == "auto"
    assert set(resolve.PRECISIONS) == {"auto", "fp32", "fp16", "int8"}


def test_backend_abilities_are_attributes_with_defaults() -> None:
    from enet.engine.runtime.onnx_model import OnnxModelBackend
    from enet.engine.runtime.trt_backend import TrtBackend

    for cls in (OnnxModelBackend, TrtBackend):
        assert issubclass(cls, BackendBase)
    b = BackendBase()
    assert (b.labels_in_graph, b.concurrency, b.device_timing, b.cuda_graph) == (False, 1, False, False)


def test_shipped_onnx_files_are_verified_and_measured() -> None:
    w = get_weights("camvid")
    files = w.onnx_files()
    assert sorted(files) == ["fp32", "int8"] and all(p.is_file() for p in files.values())
    exports = w.meta()["exports"]
    for precision, e in exports.items():
        assert e["val_frames"] == 101 and 0.6 < e["val_miou"] < 0.7 and "enet-eval" in e["measured_with"]
    assert w.meta()["exports_command"] == "python -m tools.pretrained_build camvid"


def test_a_damaged_shipped_onnx_is_refused(monkeypatch, tmp_path: Path) -> None:
    import enet.weights as wmod

    w = get_weights("camvid")
    doc = w.meta()
    doc["exports"]["fp32"]["sha256"] = "0" * 64
    monkeypatch.setattr(wmod.Weights, "meta", lambda self: doc)
    with pytest.raises(EnetError, match="sha256"):
        w.onnx_files()


def test_names_resolve_to_the_shipped_onnx(monkeypatch) -> None:
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    monkeypatch.setattr(cpu_choice, "ort_has_cuda", lambda: False)
    monkeypatch.setattr(cpu_choice, "_available", lambda m: True)  # openvino here: INT8 runs faster
    r = resolve.resolve("camvid")
    assert (r.path.name, r.kind, r.precision) == ("enet_camvid.int8.onnx", "openvino", "int8")
    assert resolve.resolve(None).path == r.path  # the default model
    r = resolve.resolve("camvid", precision="fp32")
    assert (r.path.name, r.kind) == ("enet_camvid.onnx", "openvino")
    assert resolve.resolve("camvid", measure=True).path.name == "enet_camvid.onnx"  # enet-eval
    assert resolve.resolve("camvid", backend="ort").path.name == "enet_camvid.onnx"  # no INT8 gain in ORT
    assert resolve.resolve("camvid", backend="ort", precision="int8").path.name == "enet_camvid.int8.onnx"
    assert resolve.resolve("camvid", backend="torch").path.name == WEIGHTS["camvid"].filename
    monkeypatch.setattr(cpu_choice, "_available", lambda m: m == "onnxruntime")  # no openvino: FP32
    r = resolve.resolve("camvid")
    assert (r.path.name, r.kind) == ("enet_camvid.onnx", "ort-fast")


def test_an_engine_beside_the_model_counts_everywhere(tiny_onnx: Path, tmp_path: Path, monkeypatch) -> None:
    from tests.engine.test_engine_authority import HOST, engine_for

    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx.read_bytes())
    engine_for(model, tmp_path / "m.engine")
    monkeypatch.setattr(resolve, "trt_ready", lambda: True)
    monkeypatch.setattr(sidecar, "this_host", lambda device=0: dict(HOST))
    assert (resolve.resolve(model).kind, resolve.resolve(model).path.name) == ("trt", "m.engine")
    assert resolve.resolve(model, backend="trt").path.name == "m.engine"
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    assert resolve.resolve(model).path == model


@pytest.mark.parametrize("kw,match", [
    ({"backend": "cuda"}, "unknown backend"), ({"precision": "int4"}, "unknown precision"),
    ({"backend": "torch"}, "runs .pth checkpoints"), ({"backend": "trt"}, "needs an engine"),
])
def test_bad_requests_fail_in_one_line(tiny_onnx: Path, kw: dict, match: str) -> None:
    with pytest.raises(EnetError, match=match):
        resolve.resolve(tiny_onnx, **kw)


def test_missing_model() -> None:
    with pytest.raises(EnetError, match="does not exist"):
        resolve.resolve("nowhere/model.onnx")


def test_pretrained_build_help() -> None:
    from tools.pretrained_build import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert json.loads((Path(__file__).parents[2] / "enet" / "pretrained" / "enet_camvid.json").read_text())["exports"]


def test_enet_model_variable_names_the_default(tiny_onnx: Path, monkeypatch) -> None:
    monkeypatch.setattr(resolve, "trt_ready", lambda: False)
    monkeypatch.setenv("ENET_MODEL", str(tiny_onnx))
    assert resolve.resolve(None).path == tiny_onnx and resolve.model_file(None) == tiny_onnx
    monkeypatch.setenv("ENET_MODEL", "camvid")
    assert resolve.resolve(None, precision="fp32").path.name == "enet_camvid.onnx"


def test_shipped_onnx_is_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")
    cfg = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "pretrained/*.onnx" in cfg["package-data"]["enet"]
    assert {"enet.engine.runtime", "enet.engine.quant", "enet.engine.trt"} <= set(cfg["packages"])


@pytest.mark.slow
@pytest.mark.camvid
def test_pretrained_build_regenerates_files_and_json(camvid_root: Path, tmp_path: Path) -> None:
    """The one regeneration command, cut short (4 calibration frames, 2 val frames) into a scratch folder."""
    from tools.pretrained_build import main

    pytest.importorskip("torch")
    assert main(["camvid", "--data-root", str(camvid_root), "--calib-frames", "4", "--limit", "2",
                 "--output-dir", str(tmp_path), "-q"]) == 0
    doc = json.loads((tmp_path / "enet_camvid.json").read_text())
    shipped = get_weights("camvid").meta()
    assert {k: v for k, v in doc.items() if k != "exports"} == {k: v for k, v in shipped.items() if k != "exports"}
    for precision, name in (("fp32", "enet_camvid.onnx"), ("int8", "enet_camvid.int8.onnx")):
        e = doc["exports"][precision]
        assert e["file"] == name and (tmp_path / name).is_file() and e["val_frames"] == 2
        assert e["command"].split()[0] in ("enet-export", "enet-build-engine")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left
