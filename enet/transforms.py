"""The one preprocessing: an RGB ``uint8`` frame becomes the network input.

Built from the model's metadata, as torchvision's ``weights.transforms()``:
:meth:`Preprocess.from_meta` reads the input size, ``mean``/``std`` and the
``resize`` method from a checkpoint's, an ONNX model's or an engine
sidecar's metadata. Evaluation, INT8 calibration, the benchmark (timing and
accuracy), the export parity check and the camera pipeline all call it, so
the INT8 scales, the reported mIoU and the camera see the same pixels;
``tests/enet/test_preprocess.py`` fails when a consumer computes its input
any other way.

Contract: RGB ``uint8 (H0, W0, 3)`` -> resized to the model's ``(H, W)``
with the metadata's method (no-op at the same size) -> float32
``(3, H, W)`` ``(x / 255 - mean) / std``.

A frame whose aspect ratio is not the model's is fitted by the ``fit``
rule (:data:`FITS`): ``letterbox`` (the API's and ``enet-run``'s default)
scales it to fit inside the model's size and pads the rest with the mean
colour, ``crop`` scales it to cover and cuts the centre, ``stretch``
resizes to the model's size whatever the aspect. :class:`Placement` says
where a frame went and maps the labels back to the frame's own size.
:meth:`Preprocess.frame` is the one-pass form the API and the camera
pipeline call: any frame (BGR or RGB, 8/16-bit or float, grey, alpha) ->
the network input, resized and padded in uint8, normalised by one table
lookup per channel (bit-identical to the formula).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from enet._lazy import require
from enet.errors import EnetError, ShapeError

#: Resize methods a model's metadata may name (OpenCV interpolation flags).
RESIZE_METHODS = ("area", "linear")
#: The method of models whose metadata names none (checkpoints and ONNX
#: files written before the key existed). Chosen by val mIoU of the shipped
#: model at sizes other than CamVid's 480x360, see README "Preprocessing".
DEFAULT_RESIZE = "area"
_CV2_FLAG = {"area": "INTER_AREA", "linear": "INTER_LINEAR"}
#: How a frame whose aspect ratio differs from the model's is fitted (module docstring).
FITS = ("letterbox", "crop", "stretch")
#: The fit of the Python API and ``enet-run``: the aspect ratio kept, every pixel of the frame seen.
DEFAULT_FIT = "letterbox"


def check_input_size(height: int, width: int) -> None:
    """Refuse sizes ENet cannot take: three 2x downsamplings need multiples of 8.

    Raises:
        ShapeError: with the nearest valid sizes.
    """
    if not (isinstance(height, int) and isinstance(width, int)):
        return  # symbolic sizes during export
    if height % 8 or width % 8 or height <= 0 or width <= 0:
        def near(v: int) -> int:
            return max(8, round(v / 8) * 8)
        raise ShapeError(
            f"input size {width}x{height} (WxH, as --size takes it) is not a multiple of 8; ENet needs "
            f"width and height divisible by 8, e.g. {near(width)}x{near(height)}"
        )


#: Largest frame (width x height) decoded or accepted: 8192x8192, an RGB frame of 192 MiB. Larger
#: images are refused in one line (datasets) or decoded at 1/2, 1/4 or 1/8 size (``enet-run`` folders),
#: so memory stays bounded whatever a folder holds.
MAX_FRAME_PIXELS = 8192 * 8192


def check_frame_pixels(width: int, height: int, what: str = "frame") -> None:
    """Refuse a frame larger than :data:`MAX_FRAME_PIXELS` (or empty) before it is decoded or copied.

    Raises:
        ShapeError: with the size and the fix.
    """
    if width <= 0 or height <= 0:
        raise ShapeError(f"{what} is empty ({width}x{height}); expected an image with pixels")
    if width * height > MAX_FRAME_PIXELS:
        raise ShapeError(f"{what} is {width}x{height} ({width * height / 1e6:.0f} Mpx), larger than the "
                         f"{MAX_FRAME_PIXELS / 1e6:.0f} Mpx enet-rt reads; downscale it first")


def to_rgb8(frame: np.ndarray, *, order: str = "bgr", what: str = "frame") -> np.ndarray:
    """Any frame OpenCV or a camera gives -> RGB ``uint8 (H, W, 3)``: the one frame conversion.

    ``enet-run``'s sources, the dataset loaders and the Python API
    (``enet.Segmenter``) all pass frames through here, so every command
    treats an unusual frame alike.

    Args:
        frame: ``(H, W)`` or ``(H, W, 1)`` grey, ``(H, W, 3)`` colour,
            ``(H, W, 4)`` colour + alpha (alpha dropped); ``uint8``,
            ``uint16`` (16-bit PNGs: the top 8 bits, as OpenCV's
            ``IMREAD_COLOR``) or float in [0, 1].
        order: channel order of colour frames, ``"bgr"`` (OpenCV) or ``"rgb"``.
        what: names the frame in an error.

    Returns:
        A new contiguous array (the input is never modified), or the input
        itself when it already is contiguous RGB uint8 and ``order="rgb"``.

    Raises:
        ShapeError: another shape or dtype, an empty or too large frame (one line).
    """
    if order not in ("bgr", "rgb"):
        raise ValueError(f"order must be 'bgr' or 'rgb', not {order!r}")
    a = np.asarray(frame)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ShapeError(f"{what} has shape {a.shape}; expected (H, W) grey, (H, W, 3) colour or "
                         "(H, W, 4) colour with alpha")
    check_frame_pixels(a.shape[1], a.shape[0], what)
    a = pixels8(a, what)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    a = a[:, :, :3]
    if order == "bgr":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


def pixels8(a: np.ndarray, what: str = "frame") -> np.ndarray:
    """Pixel values as uint8, channels untouched: the one rule for 16-bit and float frames.

    ``uint8`` is returned as it is; ``uint16`` keeps its top 8 bits
    (``v >> 8``, what OpenCV's ``IMREAD_COLOR`` does with a 16-bit PNG; within
    one level of ``v / 257``); float is read as [0, 1] (``rint(v * 255)``).

    Raises:
        ShapeError: another dtype; float values that are not finite or not in
            [0, 1] (a 0-255 float frame: divide it by 255 first).
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a >> 8).astype(np.uint8)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ShapeError(f"{what} holds NaN or infinite values; expected pixel values in [0, 1]")
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise ShapeError(f"{what} is float with values in [{lo:g}, {hi:g}]; expected [0, 1] (divide a 0-255 "
                             "float frame by 255, or pass it as uint8)")
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    raise ShapeError(f"{what} has dtype {a.dtype}; expected uint8, uint16 or float pixels in [0, 1]")


def check_fit(fit: str) -> str:
    """``fit`` if it is one of :data:`FITS`.

    Raises:
        EnetError: another value.
    """
    if fit not in FITS:
        raise EnetError(f"unknown fit {fit!r}; expected one of {', '.join(FITS)}")
    return fit


@dataclass(frozen=True)
class Placement:
    """Where a frame lands in the network input, and how labels go back to the frame.

    Attributes:
        frame_size: ``(h0, w0)`` of the frame.
        size: ``(H, W)`` of the network input.
        src: ``(y, x, h, w)``: the part of the frame that is used (all of it
            except with ``crop``).
        dst: ``(y, x, h, w)``: the part of the network input it fills (all of
            it except with ``letterbox``; the rest is the mean colour).
    """

    frame_size: tuple[int, int]
    size: tuple[int, int]
    src: tuple[int, int, int, int]
    dst: tuple[int, int, int, int]

    @classmethod
    def of(cls, frame_size: Sequence[int], size: Sequence[int], fit: str = DEFAULT_FIT) -> Placement:
        """The placement of a ``frame_size`` frame in a ``size`` input by ``fit`` (:data:`FITS`)."""
        h0, w0 = int(frame_size[0]), int(frame_size[1])
        h, w = int(size[0]), int(size[1])
        full_frame, full_net = (0, 0, h0, w0), (0, 0, h, w)
        if check_fit(fit) == "stretch" or h0 * w == w0 * h:
            return cls((h0, w0), (h, w), full_frame, full_net)
        if fit == "letterbox":
            s = min(h / h0, w / w0)
            hh, ww = min(h, max(1, round(h0 * s))), min(w, max(1, round(w0 * s)))
            return cls((h0, w0), (h, w), full_frame, ((h - hh) // 2, (w - ww) // 2, hh, ww))
        s = max(h / h0, w / w0)
        hh, ww = min(h0, max(1, round(h / s))), min(w0, max(1, round(w / s)))
        return cls((h0, w0), (h, w), ((h0 - hh) // 2, (w0 - ww) // 2, hh, ww), full_net)

    def content(self, labels: np.ndarray) -> np.ndarray:
        """The part of network-size ``labels (H, W)`` that shows the frame (a view)."""
        y, x, h, w = self.dst
        return labels[y:y + h, x:x + w]

    def labels_to_frame(self, labels: np.ndarray) -> np.ndarray:
        """uint8 labels ``(H, W)`` at the network size -> uint8 ``(h0, w0)`` at the frame's.

        Nearest-neighbour on uint8. With ``crop``, the frame's borders that
        the network did not see take the labels of the nearest seen pixel.
        """
        part = self.content(labels)
        y, x, h, w = self.src
        h0, w0 = self.frame_size
        if part.shape != (h, w) or (h, w) != (h0, w0):
            cv2 = require("cv2")
            if part.shape != (h, w):
                part = cv2.resize(np.ascontiguousarray(part), (w, h), interpolation=cv2.INTER_NEAREST)
            if (h, w) != (h0, w0):
                part = cv2.copyMakeBorder(part, y, h0 - y - h, x, w0 - x - w, cv2.BORDER_REPLICATE)
        return part


def check_resize(method: str) -> str:
    """``method`` if it is one of :data:`RESIZE_METHODS`.

    Raises:
        EnetError: an unknown method (metadata from a newer toolkit?).
    """
    if method not in RESIZE_METHODS:
        raise EnetError(f"unknown resize method {method!r} in the model's metadata; "
                        f"expected one of {', '.join(RESIZE_METHODS)} (upgrade enet-rt?)")
    return method


def resize_rgb(image: np.ndarray, size: Sequence[int], method: str = DEFAULT_RESIZE) -> np.ndarray:
    """RGB ``uint8 (H0, W0, 3)`` -> ``(H, W, 3)`` with ``method``; the same array when the size matches."""
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    cv2 = require("cv2")
    return cv2.resize(image, (w, h), interpolation=getattr(cv2, _CV2_FLAG[check_resize(method)]))


def place(image: np.ndarray, placement: Placement, method: str, pad: Sequence[int]) -> np.ndarray:
    """uint8 ``(h0, w0[, k])`` -> ``(H, W[, k])`` as ``placement`` says: cut, resize, pad with ``pad``."""
    y, x, h, w = placement.src
    if (h, w) != image.shape[:2]:
        image = image[y:y + h, x:x + w]
    dy, dx, dh, dw = placement.dst
    image = resize_rgb(image, (dh, dw), method) if image.shape[:2] != (dh, dw) else image
    hh, ww = placement.size
    if (dh, dw) != (hh, ww):
        cv2 = require("cv2")
        value = [float(v) for v in pad][: 1 if image.ndim == 2 else image.shape[2]]
        image = cv2.copyMakeBorder(np.ascontiguousarray(image), dy, hh - dy - dh, dx, ww - dx - dw,
                                   cv2.BORDER_CONSTANT, value=value + [0.0] * (4 - len(value)))
    return image


@functools.lru_cache(maxsize=8)
def _table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """float32 ``(3, 256)``: the normalised value of every uint8 level per channel.

    Computed with the same float32 operations, in the same order, as the
    per-pixel formula ``(x * float32(1/255) - mean) / std``, so a lookup gives
    bit-identical results (tests/enet check it).
    """
    levels = np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    return np.stack([(levels - m[c]) / s[c] for c in range(3)]).astype(np.float32)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` -> normalised float32 ``(3, H, W)`` (no resize)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    return _scale_chw(image, mean, std)


def _scale_chw(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Pixels ``(..., H, W, 3)`` -> contiguous float32 ``(..., 3, H, W)``, normalised.

    One formula, in one order of float32 operations, for one frame or a
    stack: a batch is bit-identical to its frames done one by one. uint8
    pixels go through :func:`_table` (bit-identical to the formula and
    faster, which matters in the camera pipeline); other dtypes use the
    formula.
    """
    if pixels.dtype == np.uint8:
        table = _table(tuple(float(v) for v in mean), tuple(float(v) for v in std))
        out = np.empty((*pixels.shape[:-3], 3, *pixels.shape[-3:-1]), dtype=np.float32)
        for c in range(3):
            np.take(table[c], pixels[..., c], out=out[..., c, :, :])
        return out
    x = pixels.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


@dataclass(frozen=True)
class Preprocess:
    """RGB uint8 frames -> float32 NCHW network input, as the model's metadata says.

    Attributes:
        size: ``(H, W)`` of the network input.
        mean, std: per-channel RGB normalisation of pixels in [0, 1].
        resize: one of :data:`RESIZE_METHODS`.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = DEFAULT_RESIZE
    #: one of :data:`FITS`; "stretch" for datasets (their frames have the model's aspect ratio)
    fit: str = "stretch"

    def __post_init__(self) -> None:
        check_resize(self.resize)
        check_fit(self.fit)

    @classmethod
    def from_meta(cls, meta: dict[str, Any], size: Sequence[int] | None = None, *,
                  fit: str = "stretch") -> Preprocess:
        """The preprocessing of a model from its metadata.

        Args:
            meta: checkpoint / ONNX / engine-sidecar metadata (``mean``,
                ``std``, ``input_size``, optional ``resize``).
            size: ``(H, W)`` the network runs at, when not the metadata's
                ``input_size`` (a backend's static input shape).
            fit: how frames of another aspect ratio are fitted (:data:`FITS`).
        """
        hw = size if size is not None else meta["input_size"]
        return cls(size=(int(hw[0]), int(hw[1])), mean=tuple(float(v) for v in meta["mean"]),  # type: ignore[arg-type]
                   std=tuple(float(v) for v in meta["std"]),  # type: ignore[arg-type]
                   resize=str(meta.get("resize", DEFAULT_RESIZE)), fit=fit)

    @property
    def pad_rgb(self) -> tuple[int, int, int]:
        """The letterbox colour: the mean, as uint8 RGB (it normalises to about 0)."""
        return tuple(int(round(m * 255.0)) for m in self.mean)  # type: ignore[return-value]

    def placement(self, frame_size: Sequence[int]) -> Placement:
        """Where a frame of ``(h0, w0)`` goes in the network input (:attr:`fit`)."""
        return Placement.of(frame_size, self.size, self.fit)

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 ``(H0, W0, 3)`` -> uint8 ``(H, W, 3)`` at the network size (fitted by :attr:`fit`)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
        if rgb.shape[:2] == self.size:
            return rgb
        return place(rgb, self.placement(rgb.shape[:2]), self.resize, self.pad_rgb)

    def frame(self, frame: np.ndarray, order: str = "bgr", what: str = "frame") -> tuple[np.ndarray, Placement]:
        """Any frame -> float32 ``(3, H, W)`` network input and its :class:`Placement`, in one pass.

        The same numbers as ``self(to_rgb8(frame, order=order))``: frames
        are converted to uint8 (:func:`pixels8`), cut/resized/padded in uint8
        with their own channel order, and normalised by one table lookup
        per channel into the output (``cv2.LUT``), without an RGB copy.

        Args:
            frame: ``(H, W)`` / ``(H, W, 1)`` grey, ``(H, W, 3)`` colour, ``(H, W, 4)``
                colour + alpha (dropped); uint8, uint16 or float in [0, 1].
            order: ``"bgr"`` (OpenCV, the API) or ``"rgb"`` (enet-run's sources).

        Raises:
            ShapeError: not such a frame (one line).
        """
        if order not in ("bgr", "rgb"):
            raise ValueError(f"order must be 'bgr' or 'rgb', not {order!r}")
        a = np.asarray(frame)
        if a.ndim == 3 and a.shape[2] in (1, 4):
            a = a[:, :, 0] if a.shape[2] == 1 else a[:, :, :3]
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
            raise ShapeError(f"{what} has shape {a.shape}; expected (H, W) grey, (H, W, 3) colour or "
                             "(H, W, 4) colour with alpha")
        check_frame_pixels(a.shape[1], a.shape[0], what)
        a = pixels8(a, what)
        cv2 = require("cv2")
        if a.ndim == 2:  # grey: three equal channels, as to_rgb8 makes them (the pad colour is per channel)
            a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_GRAY2RGB)
            order = "rgb"
        pl = self.placement(a.shape[:2])
        a = place(a, pl, self.resize, self.pad_rgb if order == "rgb" else self.pad_rgb[::-1])
        planes = list(cv2.split(np.ascontiguousarray(a)))
        if order == "bgr":
            planes = planes[::-1]
        table = _table(tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std))
        out = np.empty((3, *self.size), dtype=np.float32)
        for c in range(3):
            cv2.LUT(planes[c], table[c].reshape(1, 256), dst=out[c])
        return out, pl

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """One RGB uint8 frame -> float32 ``(3, H, W)``."""
        return _scale_chw(self.image(rgb), self.mean, self.std)

    def batch(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """RGB uint8 frames (a list, or an array ``(N, H0, W0, 3)``) -> float32 ``(N, 3, H, W)``.

        Bit-identical to ``np.stack([self(f) for f in frames])``, in one
        vectorised pass.
        """
        stack = np.stack([self.image(f) for f in frames])
        return _scale_chw(stack, self.mean, self.std)
