"""The public API: ``enet.Segmenter`` on the shipped model, any frame, one error type, threads; and the issue's snippet.

The shipped ``camvid`` ONNX files (package data) run here without torch; the
"Done when" test compares the snippet's labels on a real CamVid val frame with
``enet-eval``'s saved prediction of that frame, the same model and backend.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import enet

pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def seg():
    with enet.Segmenter("camvid") as s:
        yield s


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_attributes(seg) -> None:
    assert seg.classes[:4] == ["Sky", "Building", "Pole", "Road"] and len(seg.classes) == 11
    assert seg.palette.shape == (11, 3) and seg.palette.dtype == np.uint8
    assert tuple(seg.palette[3]) == (128, 64, 128)  # Road, RGB as the metadata
    assert seg.input_size == (360, 480) and seg.concurrency >= 1
    assert isinstance(seg.backend_name, str) and seg.backend_name
    assert seg.resolution.path.parent.name == "pretrained"  # the shipped ONNX, no export


@pytest.mark.parametrize("shape", [(360, 480, 3), (720, 1280, 3), (97, 131, 3), (200, 300), (200, 300, 1),
                                   (240, 320, 4)])
def test_any_size_and_channel_count(seg, shape) -> None:
    frame = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    labels = seg.segment(frame)
    assert labels.shape == shape[:2] and labels.dtype == np.uint8 and labels.max() < len(seg.classes)
    view = seg.overlay(frame, labels, alpha=0.5)
    assert view.shape == (*shape[:2], 3) and view.dtype == np.uint8
    fr = seg.fractions(labels)
    assert list(fr) == seg.classes and abs(sum(fr.values()) - 1.0) < 1e-9


def test_gray_and_bgra_match_their_bgr(seg) -> None:
    bgr = _frame(120, 160)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(seg.segment(gray), seg.segment(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))
    np.testing.assert_array_equal(seg.segment(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)), seg.segment(bgr))


def test_scores_are_probabilities_at_the_model_size(seg) -> None:
    frame = _frame(200, 260)
    s = seg.scores(frame)
    assert s.shape == (11, 360, 480) and s.dtype == np.float32
    np.testing.assert_allclose(s.sum(0), 1.0, atol=1e-4)


def test_16_bit_and_float_frames_are_scaled(seg) -> None:
    """A uint16 frame gives the labels of its top 8 bits (v >> 8); a float frame in [0, 1] those of rint(v * 255)."""
    bgr = _frame(120, 160, seed=3)
    want = seg.segment(bgr)
    wide = bgr.astype(np.uint16) * 256 + np.uint16(200)   # 8-bit v -> 256 v + 200: v >> 8 gives v back
    np.testing.assert_array_equal(seg.segment(wide), want)
    np.testing.assert_array_equal(seg.segment(bgr.astype(np.float32) / 255.0), want)
    np.testing.assert_array_equal(seg.segment(bgr.astype(np.float64) / 255.0), want)
    with pytest.raises(enet.InputError, match=r"\[0, 1\].*divide"):
        seg.segment(bgr.astype(np.float32))      # 0-255 floats: refused with the fix, not clipped to white


@pytest.mark.parametrize("fit", ["letterbox", "crop", "stretch"])
@pytest.mark.parametrize("shape", [(720, 1280, 3), (640, 360, 3), (360, 480, 3)])
def test_fit_keeps_the_aspect_ratio(fit: str, shape: tuple[int, int, int]) -> None:
    """letterbox/crop: a 16:9 or portrait frame is not stretched; labels come back at the frame's size."""
    from enet.transforms import Placement

    with enet.Segmenter("camvid", fit=fit) as s:
        frame = _frame(*shape[:2], seed=4)
        labels = s.segment(frame)
        assert labels.shape == shape[:2] and labels.dtype == np.uint8
        pl = Placement.of(shape[:2], s.input_size, fit)
        y, x, h, w = pl.dst
        if fit == "letterbox":   # the whole frame, scaled by one factor, in the input
            assert abs(h / w - shape[0] / shape[1]) < 0.01 and (h == 360 or w == 480)
        if fit == "crop":        # the input is filled by a centre cut of the frame with the input's aspect
            sy, sx, sh, sw = pl.src
            assert abs(sh / sw - 360 / 480) < 0.01 and (sh == shape[0] or sw == shape[1])
        if shape[:2] == (360, 480):   # the model's own size and aspect: every fit is the same
            with enet.Segmenter("camvid", fit="stretch") as ref:
                np.testing.assert_array_equal(labels, ref.segment(frame))


def test_letterbox_labels_are_the_content_region_resized() -> None:
    with enet.Segmenter("camvid", fit="letterbox") as s:
        frame = _frame(270, 480, seed=5)          # 16:9 at the model's width: no resize, 45 rows of pad each side
        labels = s.segment(frame)
        x, _ = s._pre.frame(frame)
        net = s._backend.infer_labels(x[None])[0]
        np.testing.assert_array_equal(labels, net[45:315].astype(np.uint8))


def test_unknown_fit_is_refused() -> None:
    with pytest.raises(enet.EnetError, match="letterbox"):
        enet.Segmenter("camvid", fit="squash")


@pytest.mark.parametrize("bad", [
    np.full((10, 10, 3), 255.0, np.float32), np.full((10, 10, 3), np.nan, np.float32),
    np.zeros((10, 10, 3), np.int32), np.zeros((10, 10, 2), np.uint8), np.zeros((0, 10, 3), np.uint8),
    np.zeros((2, 10, 10, 3), np.uint8), [[0, 1], [2, 3]], None,
])
def test_bad_input_is_one_exception_type(seg, bad) -> None:
    with pytest.raises(enet.InputError) as info:
        seg.segment(bad)
    assert isinstance(info.value, ValueError) and isinstance(info.value, enet.EnetError)


def test_bad_labels_and_alpha(seg) -> None:
    frame = _frame(50, 60)
    with pytest.raises(enet.InputError):
        seg.overlay(frame, np.zeros((50, 60), np.float32))
    with pytest.raises(enet.InputError):
        seg.overlay(frame, np.full((50, 60), 200, np.uint8))
    with pytest.raises(enet.InputError):
        seg.overlay(frame, alpha=1.5)


def test_threads_get_the_same_labels(seg) -> None:
    frames = [_frame(180, 240, seed=i) for i in range(4)]
    alone = [seg.segment(f) for f in frames]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(seg.segment, frames * 2))
    for a, b in zip(alone * 2, together):
        np.testing.assert_array_equal(a, b)


def test_precision_fp32_opts_out_of_int8() -> None:
    from enet.engine.runtime.cpu_choice import fastest_cpu_kind, int8_faster

    with enet.Segmenter("camvid", precision="fp32") as s:
        assert s.resolution.path.name == "enet_camvid.onnx"
    if int8_faster(fastest_cpu_kind() or ""):
        with enet.Segmenter("camvid") as s:
            assert s.resolution.path.name == "enet_camvid.int8.onnx" and s.resolution.precision == "int8"


def test_auto_runs_fp32_where_int8_was_not_measured_faster(monkeypatch, caplog) -> None:
    import platform

    from enet.engine.runtime.cpu_choice import int8_faster

    assert int8_faster("openvino", "x86_64") and not int8_faster("ort-fast", "x86_64")
    assert not int8_faster("openvino", "aarch64")
    pytest.importorskip("openvino")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    with caplog.at_level("INFO"), enet.Segmenter("camvid", backend="openvino") as s:
        assert s.resolution.path.name == "enet_camvid.onnx"  # says so, and --precision int8 opts in
    assert "not measured faster in INT8 on this CPU (aarch64)" in caplog.text
    with enet.Segmenter("camvid", backend="openvino", precision="int8") as s:
        assert s.resolution.precision == "int8"


def test_import_enet_is_light_and_the_api_runs_without_torch() -> None:
    code = textwrap.dedent("""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "torchvision", "onnxsim"):
                    raise ImportError(f"blocked for this test: {name}")
        sys.meta_path.insert(0, Block())
        import enet
        light = sorted(m for m in sys.modules if m.split(".")[0] in ("cv2", "onnx", "onnxruntime", "openvino"))
        import numpy as np
        seg = enet.Segmenter("camvid")
        labels = seg.segment(np.zeros((90, 120, 3), np.uint8))
        print("OK", light, labels.shape, sorted(m for m in sys.modules if m.startswith("torch")))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "OK [] (90, 120) []"


@pytest.mark.camvid
def test_the_readme_snippet_matches_enet_eval(camvid_root: Path, tmp_path: Path) -> None:
    """Issue 19's "Done when": the snippet on a val frame at 480x360 and at 1280x720 vs enet-eval's prediction."""
    from enet.engine.eval_cli import main as eval_main

    name = sorted(p.name for p in (camvid_root / "val").glob("*.png"))[0]
    frame_bgr = cv2.imread(str(camvid_root / "val" / name))
    assert frame_bgr.shape == (360, 480, 3)

    seg = enet.Segmenter("camvid")            # a name, .pth, .onnx or .engine; backend="auto", precision=...
    labels = seg.segment(frame_bgr)           # uint8 (H, W) class ids at the frame's own size
    scores = seg.scores(frame_bgr)            # float32 (C, h, w) class probabilities at the model's size
    view = seg.overlay(frame_bgr, labels, alpha=0.5)
    assert seg.classes[3] == "Road" and seg.palette.shape == (11, 3) and seg.fractions(labels)["Road"] > 0.1
    assert seg.backend_name

    # enet-eval on the same model file and backend (its own resolution of the file the API picked)
    r = seg.resolution
    assert eval_main([str(r.path), "--backend", r.kind, "--data-root", str(camvid_root), "--frames", "1",
                      "--save-predictions", str(tmp_path), "-q"]) == 0
    expected = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
    assert labels.shape == expected.shape == (360, 480)
    assert (labels == expected).mean() >= 0.999
    assert scores.shape == (11, 360, 480) and (scores.argmax(0) == expected).mean() >= 0.999
    assert view.shape == frame_bgr.shape

    big = cv2.resize(frame_bgr, (1280, 720), interpolation=cv2.INTER_LINEAR)
    labels_big = seg.segment(big)
    assert labels_big.shape == (720, 1280)
    # another input size: resampled twice, so not pixel-identical; the same scene all the same
    up = cv2.resize(expected, (1280, 720), interpolation=cv2.INTER_NEAREST)
    assert (labels_big == up).mean() >= 0.95
    seg.close()


def test_openvino_streams_give_the_labels_of_one_stream(seg) -> None:
    """One stream and several (the camera pipeline): uint8 labels from the in-graph head, the labels of
    the logits' argmax (also the pipeline's host argmax, for backends without the head)."""
    pytest.importorskip("openvino")
    from enet.engine.runtime.ov_backend import OvBackend

    path = seg.resolution.path
    x = seg._input(_frame(360, 480, seed=9))[0]
    with OvBackend(path, threads=2) as one, OvBackend(path, threads=2, streams=2) as two:
        assert one.labels_in_graph and two.labels_in_graph
        np.testing.assert_array_equal(one.infer_labels(x), two.infer_labels(x))
        np.testing.assert_array_equal(one.infer_labels(x), one.infer(x).argmax(1))
        from enet.deploy.pipeline import argmax_classes

        np.testing.assert_array_equal(two.infer_labels(x)[0], argmax_classes(two.infer(x)[0]))
