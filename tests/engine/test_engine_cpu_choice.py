"""--backend auto on a CPU: the fastest installed backend, by the measured order; .onnx runs without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from enet.engine.runtime.cpu_choice import CPU_PREFERENCE, fastest_cpu_kind, preference_text


def test_fastest_cpu_kind_follows_the_preference_order() -> None:
    assert [k for k, _ in CPU_PREFERENCE] == ["openvino", "ort-fast"]
    assert fastest_cpu_kind(lambda m: True) == "openvino"
    assert fastest_cpu_kind(lambda m: m == "onnxruntime") == "ort-fast"
    assert fastest_cpu_kind(lambda m: False) is None
    assert preference_text() == "openvino > ort-fast"


def test_auto_picks_and_says_the_cpu_backend(tiny_onnx: Path, tiny_checkpoint: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from enet.engine.runtime import cpu_choice, resolve

    monkeypatch.setattr(cpu_choice, "ort_has_cuda", lambda: False)
    monkeypatch.setattr(cpu_choice, "_available", lambda m: m == "onnxruntime")
    c = resolve.resolve(tiny_onnx, backend="auto", cache_dir=tmp_path)
    assert c.kind == "ort-fast" and "fastest installed CPU backend" in c.why and "openvino > ort-fast" in c.why
    monkeypatch.setattr(cpu_choice, "_available", lambda m: True)
    assert resolve.resolve(tiny_onnx, backend="auto", cache_dir=tmp_path).kind == "openvino"
    assert resolve.resolve(tiny_onnx, backend="ort", cache_dir=tmp_path).kind == "ort"  # explicit wins
    c = resolve.resolve(tiny_onnx, backend="ort-fast", cache_dir=tmp_path)
    assert (c.kind, c.path) == ("ort-fast", tiny_onnx)
    monkeypatch.setattr(cpu_choice, "ort_has_cuda", lambda: True)
    assert resolve.resolve(tiny_onnx, backend="auto", cache_dir=tmp_path).kind == "ort"  # a CUDA onnxruntime stays first


def test_ort_fast_backend_matches_ort(tiny_onnx_labels: Path) -> None:
    import numpy as np

    from enet.engine.runtime.backend import open_backend

    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 96)).astype(np.float32)
    with open_backend(tiny_onnx_labels, "ort", providers="cpu") as a, open_backend(tiny_onnx_labels, "ort-fast") as b:
        assert b.name == "ort-fast-cpu-fp32"
        np.testing.assert_array_equal(b.infer(x), a.infer(x))
        np.testing.assert_array_equal(b.infer_labels(x), a.infer_labels(x))


RUN_WITHOUT_TORCH = textwrap.dedent("""
    import importlib.abc, sys
    import numpy as np

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "torch":
                raise ImportError("blocked for this test: " + name)
            return None

    sys.meta_path.insert(0, Block())
    from enet._lazy import available
    from enet.engine.runtime.backend import open_backend

    x = np.zeros((1, 3, 64, 96), np.float32)
    kinds = [k for k, m in (("ort", "onnxruntime"), ("ort-fast", "onnxruntime"), ("openvino", "openvino"))
             if available(m)]
    for kind in kinds:
        with open_backend(sys.argv[1], kind) as b:
            assert b.infer(x).shape == (1, 11, 64, 96)
    assert "torch" not in sys.modules
    print("RAN", ",".join(kinds))
""")


def test_onnx_backends_run_without_torch(tiny_onnx: Path) -> None:
    r = subprocess.run([sys.executable, "-c", RUN_WITHOUT_TORCH, str(tiny_onnx)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith("RAN")
