"""Backend selection, skip reasons and the artifact cache (with fake builders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from enet.bench import backends as bk
from enet.errors import EnetError


def test_parse_backends():
    specs = bk.parse_backends("ort, torch,ort,trt-int8")
    assert [s.name for s in specs] == ["ort", "torch", "trt-int8"]
    assert specs[2].kind == "trt" and specs[2].precision == "int8"
    with pytest.raises(EnetError, match="unknown backend trt-fp8"):
        bk.parse_backends("torch,trt-fp8")
    with pytest.raises(EnetError, match="empty"):
        bk.parse_backends(" , ")


def test_unavailable_reasons():
    have = {"torch", "onnxruntime"}
    avail = have.__contains__
    for name in ("torch", "ort", "ort-int8"):
        assert bk.unavailable_reason(bk.BACKENDS[name], "cpu", available=avail, has_gpu=lambda: False) is None
    r = bk.unavailable_reason(bk.BACKENDS["trt-fp16"], "desktop", available=avail, has_gpu=lambda: True)
    assert r.startswith("tensorrt is not installed") and "enet-rt[tensorrt]" in r
    with_trt = (have | {"tensorrt"}).__contains__
    assert "no NVIDIA GPU" in bk.unavailable_reason(bk.BACKENDS["trt-fp32"], "desktop", available=with_trt,
                                                    has_gpu=lambda: False)
    assert "--device cpu" in bk.unavailable_reason(bk.BACKENDS["trt-int8"], "cpu", available=with_trt,
                                                   has_gpu=lambda: True)
    assert bk.unavailable_reason(bk.BACKENDS["trt-int8"], "jetson", available=with_trt, has_gpu=lambda: True) is None
    no_ort = {"torch"}.__contains__
    assert "onnxruntime is not installed" in bk.unavailable_reason(bk.BACKENDS["ort-int8"], "cpu", available=no_ort)
    r = bk.unavailable_reason(bk.BACKENDS["openvino-int8"], "cpu", available=avail)
    assert r.startswith("openvino is not installed") and "enet-rt[openvino]" in r


def test_cpu_backends_share_the_onnx_artifacts(tmp_path: Path) -> None:
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"checkpoint")
    art = bk.Artifacts(ckpt, tmp_path / "a")
    for fp32, int8 in (("ort-fast", "ort-int8"), ("openvino", "openvino-int8")):
        assert art.path(bk.BACKENDS[fp32], 360, 480, 1) == art.path(bk.BACKENDS["ort"], 360, 480, 1)
        assert art.path(bk.BACKENDS[int8], 360, 480, 1) == art.path(bk.BACKENDS["ort-int8"], 360, 480, 1)
    assert bk.BACKENDS["openvino-int8"].kind == "openvino" and bk.BACKENDS["ort-fast"].precision == "fp32"


def _fake_builders(calls):
    def onnx(target, h, w, b):
        calls.append(("onnx", Path(target).name))
        Path(target).write_text("onnx")

    def int8(src, target, h, w, b):
        calls.append(("int8", Path(src).name, Path(target).name))
        Path(target).write_text("int8")

    def onnx_labels(target, h, w, b):
        calls.append(("onnx_labels", Path(target).name))
        Path(target).write_text("onnx with labels")

    def engine(src, target, precision):
        from tests.engine.test_engine_authority import HOST, engine_for

        calls.append(("engine", Path(src).name, Path(target).name, precision))
        engine_for(Path(src), Path(target), precision=precision, **HOST)

    return {"onnx": onnx, "int8": int8, "engine": engine, "onnx_labels": onnx_labels}


def test_artifacts_build_once_and_cache(tmp_path, monkeypatch):
    import sys

    from enet.engine.runtime import cuda, sidecar
    from tests.engine.test_engine_authority import HOST
    from tests.engine.test_engine_trt_compat import TRT103

    monkeypatch.setitem(sys.modules, "tensorrt", TRT103)
    monkeypatch.setattr(cuda, "gpu_info", lambda device=0: (HOST["gpu_name"], HOST["compute_capability"]))
    monkeypatch.setattr(sidecar, "this_host", lambda device=0: dict(HOST))
    monkeypatch.setenv("ENET_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "m.pth"
    model.write_bytes(b"weights")
    calls = []
    art = bk.Artifacts(model, tmp_path / "artifacts", builders=_fake_builders(calls))
    assert art.get(bk.BACKENDS["torch"], 360, 640, 1) == model
    p = art.get(bk.BACKENDS["ort-int8"], 360, 640, 1)
    assert p.parent == tmp_path / "artifacts" and p.name.endswith("-640x360-b1.int8.onnx")
    assert [c[0] for c in calls] == ["onnx", "int8"]  # the float ONNX first, then its INT8 form
    art.get(bk.BACKENDS["ort"], 360, 640, 1)
    art.get(bk.BACKENDS["ort-int8"], 360, 640, 1)
    assert len(calls) == 2  # cached
    e = art.get(bk.BACKENDS["trt-fp16"], 360, 640, 1)
    # the one engine cache, built from the export enet-run builds its engine from (with the labels output)
    assert e.parent.parent == tmp_path / "cache" / "engines" and e.parent.name.endswith("-fp16")
    assert calls[-2][0] == "onnx_labels" and calls[-1][1].endswith("-640x360-b1-labels.onnx")
    assert art.get(bk.BACKENDS["trt-fp16"], 360, 640, 1) == e and len(art.built) == 3  # valid: reused

    # a different model never reuses these files
    other = tmp_path / "other.pth"
    other.write_bytes(b"other weights")
    art2 = bk.Artifacts(other, tmp_path / "artifacts", builders=_fake_builders(calls))
    assert art2.path(bk.BACKENDS["ort"], 360, 640, 1) != art.path(bk.BACKENDS["ort"], 360, 640, 1)
    assert art.path(bk.BACKENDS["ort"], 360, 640, 2) != art.path(bk.BACKENDS["ort"], 360, 640, 1)


def test_artifacts_builder_without_output(tmp_path):
    model = tmp_path / "m.pth"
    model.write_bytes(b"w")
    art = bk.Artifacts(model, tmp_path / "a", builders={"onnx": lambda *a: None})
    with pytest.raises(EnetError, match="produced no file"):
        art.get(bk.BACKENDS["ort"], 64, 96, 1)


@pytest.mark.slow
def test_real_onnx_and_int8_builders(tmp_path, tiny_checkpoint, tiny_camvid):
    """The toolkit's exporter and INT8 converter, on a tiny model and generated frames."""
    art = bk.Artifacts(tiny_checkpoint, tmp_path / "a", camvid=tiny_camvid, calib_images=2)
    p = art.get(bk.BACKENDS["ort-int8"], 64, 96, 1)
    assert p.is_file() and art.calib_cache.is_file()
    # another size reuses the calibrated ranges instead of calibrating again
    before = art.calib_cache.stat().st_mtime_ns
    art.get(bk.BACKENDS["ort-int8"], 32, 48, 1)
    assert art.calib_cache.stat().st_mtime_ns == before


def test_missing_torch_hint_is_the_projects_not_a_bare_pip_install():
    """A torch-free install is told the extra and the CPU build, never a bare `pip install torch` (README)."""
    r = bk.unavailable_reason(bk.BACKENDS["torch"], "cpu", available={"onnxruntime"}.__contains__)
    assert r.startswith("torch is not installed") and "enet-rt[torch]" in r
    assert "pip install torch)" not in r and "pip install torch " not in r.replace("pip install torch --index-url", "")
