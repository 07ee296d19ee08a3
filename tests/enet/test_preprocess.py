"""One preprocessing: every consumer feeds the network exactly what enet.transforms.Preprocess makes.

Evaluation (and so bench accuracy and enet-build-engine's val report), INT8
calibration, bench timing, the camera pipeline and the training loop's val
set are run on the same frames and their network inputs compared bit for bit
with :class:`Preprocess`; a static scan then fails when another module
resizes or normalises frames on its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from enet.camvid import default_metadata
from enet.data import read_image
from enet.transforms import DEFAULT_RESIZE, RESIZE_METHODS, Preprocess, normalize

ROOT = Path(__file__).resolve().parents[2]
SIZE = (32, 40)  # the tiny CamVid frames are 48x64: every consumer must resize


def _meta(resize: str | None = None) -> dict:
    meta = default_metadata()
    meta["input_size"] = list(SIZE)
    if resize is None:
        del meta["resize"]  # a file from before the key: the default applies
    else:
        meta["resize"] = resize
    return meta


def test_preprocess_contract() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    pre = Preprocess.from_meta(_meta())
    assert pre.resize == DEFAULT_RESIZE and pre.size == SIZE
    one = pre(frames[0])
    assert one.dtype == np.float32 and one.shape == (3, *SIZE) and one.flags["C_CONTIGUOUS"]
    batch = pre.batch(frames)
    assert batch.shape == (3, 3, *SIZE) and batch.flags["C_CONTIGUOUS"]
    assert np.array_equal(batch, np.stack([pre(f) for f in frames]))  # bit-identical, not close
    same = Preprocess.from_meta(_meta(), (48, 64))
    assert np.array_equal(same(frames[0]), normalize(frames[0], same.mean, same.std))  # no resize at size
    x = frames[0].astype(np.float64) / 255.0
    expect = ((x - np.array(same.mean)) / np.array(same.std)).transpose(2, 0, 1)
    np.testing.assert_allclose(same(frames[0]), expect, atol=1e-5)
    a, b = (Preprocess.from_meta(_meta(m))(frames[0]) for m in RESIZE_METHODS)
    assert not np.array_equal(a, b)  # the metadata's method is the one applied
    from enet.errors import EnetError

    with pytest.raises(EnetError, match="unknown resize method 'bicubic'"):
        Preprocess.from_meta(_meta("bicubic"))


@pytest.fixture()
def frames(tiny_camvid: Path) -> list[Path]:
    return sorted((tiny_camvid / "val").glob("*.png"))


def _reference(paths: list[Path], meta: dict) -> np.ndarray:
    return np.stack([Preprocess.from_meta(meta)(read_image(p)) for p in paths])


@pytest.mark.parametrize("resize", [None, *RESIZE_METHODS])
def test_evaluation_and_calibration_inputs(tiny_camvid: Path, frames: list[Path], resize: str | None) -> None:
    from enet.engine.quant.calibration import iter_batches
    from enet.evaluate import evaluate

    meta = _meta(resize)
    ref = _reference(frames, meta)
    seen: list[np.ndarray] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(x.copy())
        return np.zeros((x.shape[0], *SIZE), np.int64)

    evaluate(predict, tiny_camvid, "val", meta=meta, input_shape=(1, 3, *SIZE))
    assert np.array_equal(np.concatenate(seen), ref)
    calib = np.concatenate(list(iter_batches(frames, meta, (1, 3, *SIZE))))
    assert np.array_equal(calib, ref)


def test_bench_timing_inputs(tiny_camvid: Path, frames: list[Path]) -> None:
    from enet.bench.frames import timing_batches

    meta = _meta("linear")
    pre = Preprocess.from_meta(meta)
    batches, source = timing_batches(pre, 1, camvid=tiny_camvid, pool=3)
    assert source.startswith("CamVid val")
    # enet-bench times Pipeline(pre.batch, ...) on these frames (bench/cli.py)
    got = np.concatenate([pre.batch(b) for b in batches])
    assert np.array_equal(got, _reference(frames, meta))


def test_camera_pipeline_inputs(frames: list[Path]) -> None:
    from enet.deploy.overlay import Renderer
    from enet.deploy.pipeline import Pipeline

    meta = _meta("linear")
    images = [read_image(p) for p in frames]

    class Source:
        live, fps, name = False, 10.0, "frames"

        def __init__(self) -> None:
            self.i = 0

        def read(self):
            if self.i == len(images):
                return None
            self.i += 1
            return images[self.i - 1], float(self.i)

        def close(self) -> None:
            pass

    class Recorder:
        size, name, num_classes = SIZE, "recorder", 11

        def __init__(self) -> None:
            self.meta, self.seen = meta, []

        def __call__(self, x):
            self.seen.append(x.copy())
            return np.zeros((1, *SIZE), np.int64)

    rec = Recorder()
    # evaluation stretches (dataset frames have the model's aspect); enet-run's --fit stretch is the same
    Pipeline(Source(), rec, renderer=Renderer(meta["classes"], meta["palette"], hud=False), fit="stretch").run()
    assert np.array_equal(np.concatenate(rec.seen), _reference(frames, meta))


def test_training_val_set_inputs(tiny_camvid: Path, frames: list[Path]) -> None:
    pytest.importorskip("torch")
    from enet.data import SegmentationDataset
    from enet.datasets import open_dataset

    meta = _meta(None)
    ds = SegmentationDataset(open_dataset(tiny_camvid), "val", size=SIZE, mean=meta["mean"], std=meta["std"])
    got = np.stack([ds[i][0].numpy() for i in range(len(ds))])
    assert np.array_equal(got, _reference(frames, meta))


#: Resizes of RGB frames that are not network input, per file (display,
#: thumbnails, demo clip, training augmentation). A new entry, or a second
#: resize in one of these files, needs a reason here; the network input is
#: resized only by enet/transforms.py.
ALLOWED_RESIZES = {
    "enet/data.py": 1,        # augment_pair: random scale (training only)
    "deploy/demo.py": 1,      # build_clip: frames of one clip to one size
    "deploy/overlay.py": 1,   # the rendered panel, not the network input
    "deploy/sinks.py": 2,     # contact-sheet thumbnails; rendered frames of a mixed-size folder to the video size
    "deploy/rig.py": 1,       # a rig's mosaic: rendered frames of cameras of other sizes to one cell size
}


def test_no_second_preprocessing_in_the_code() -> None:
    resize = re.compile(r"INTER_(AREA|LINEAR|CUBIC|LANCZOS4)")
    scale = re.compile(r"/\s*\(?\s*255\b|\b255\.0*(?![\d])")
    problems = []
    for folder in ("enet", "export", "engine", "bench", "deploy"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "enet/transforms.py":
                continue
            text = path.read_text(encoding="utf-8")
            n = len(resize.findall(text))
            if n > ALLOWED_RESIZES.get(rel, 0):
                problems.append(f"{rel}: {n} image resize(s); network input goes through enet.transforms.Preprocess")
            if scale.search(text):
                problems.append(f"{rel}: scales pixels by 1/255; use enet.transforms.Preprocess")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("fit", ["letterbox", "crop", "stretch"])
@pytest.mark.parametrize("shape", [(24, 32, 3), (48, 64, 3), (36, 64, 3), (64, 36, 3), (10, 10), (20, 30, 4),
                                   (25, 32, 1)])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_one_pass_frame_matches_to_rgb8_then_preprocess(fit: str, shape: tuple[int, ...], dtype: str) -> None:
    """Preprocess.frame (the API's and enet-run's path) gives bit for bit what the two-step path gives."""
    from enet.transforms import Placement, to_rgb8

    pre = Preprocess((24, 32), (0.39, 0.40, 0.41), (0.29, 0.30, 0.31), fit=fit)
    rng = np.random.default_rng(len(shape) * 100 + shape[0])
    f8 = rng.integers(0, 256, shape).astype(np.uint8)
    frame = {"uint8": f8, "uint16": f8.astype(np.uint16) * 257, "float32": f8.astype(np.float32) / 255}[dtype]
    for order in ("bgr", "rgb"):
        x, pl = pre.frame(frame, order)
        np.testing.assert_array_equal(x, pre(to_rgb8(frame, order=order)))
        assert pl == Placement.of(shape[:2], (24, 32), fit)
        labels = rng.integers(0, 11, (24, 32)).astype(np.uint8)
        assert pl.labels_to_frame(labels).shape == shape[:2]


def test_placement_keeps_the_aspect_ratio() -> None:
    from enet.transforms import Placement

    wide = Placement.of((720, 1280), (360, 480), "letterbox")
    assert wide.src == (0, 0, 720, 1280) and wide.dst == (45, 0, 270, 480)
    tall = Placement.of((1280, 720), (360, 480), "crop")
    assert tall.dst == (0, 0, 360, 480) and tall.src == (370, 0, 540, 720)
    assert Placement.of((720, 1280), (360, 480), "stretch").dst == (0, 0, 360, 480)
    assert Placement.of((720, 960), (360, 480), "letterbox").dst == (0, 0, 360, 480)  # same aspect: a resize
    labels = np.arange(360 * 480, dtype=np.int64).reshape(360, 480) % 7
    back = wide.labels_to_frame(labels.astype(np.uint8))
    assert back.shape == (720, 1280)
    assert back[0, 0] == labels[45, 0] and back[-1, -1] == labels[314, 479]   # the pad bands are not used
    crop_back = tall.labels_to_frame(labels.astype(np.uint8))
    assert crop_back.shape == (1280, 720)
    np.testing.assert_array_equal(crop_back[:370], np.broadcast_to(crop_back[370], (370, 720)))  # replicated edge
