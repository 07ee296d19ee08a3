"""Export an enet-rt checkpoint to ONNX for ONNX Runtime and TensorRT.

Graph contract:

* input ``input``: float32 ``(N, 3, H, W)``, normalised RGB (see
  :mod:`enet.transforms`), ``H`` and ``W`` multiples of 8; ``N`` fixed, or
  the symbolic ``N`` with ``dynamic_batch``.
* output ``logits``: float32 ``(N, C, H, W)``; with ``labels=True`` also
  ``labels``: int32 ``(N, H, W)``, the in-graph argmax over classes (first
  maximum, as ``torch.argmax``), so a runtime can copy 1/C of the data back.
* eval-mode graph: BatchNorm folded into the convolutions it follows (the one
  BN after the initial block's Concat stays: it follows a max-pool branch as
  well, so no convolution can absorb it; TensorRT runs it as a Scale layer),
  no Dropout, simplified with onnx-simplifier, ``onnx.checker`` full check.
* ``metadata_props``: the checkpoint's metadata as JSON strings, see
  :func:`onnx_metadata` and :func:`read_onnx_metadata`.

Unpooling (paper Section 3): ``unpool="mask"`` (default) exports the model's
exact indices-free form (Reshape/Transpose/ReduceMax/Equal/And/Not/Or/Where),
which TensorRT's parser runs natively; ``unpool="native"`` exports ONNX
MaxPool-with-indices + MaxUnpool (:mod:`enet.export.unpool`), for ONNX
Runtime/OpenVINO only.

Exporter: PyTorch's TorchScript-based exporter (``dynamo=False``). The
torch.export-based exporter (default since torch 2.9) only emits opset >= 18
(its down-conversion fails on Pad), and TensorRT 8.5 (JetPack 5) parses at
most opset 17, TensorRT 8.0/8.2 (JetPack 4.6) at most 13; the TorchScript
exporter also works on every torch >= 2.1 this toolkit supports.
"""

# torch 2.13: dynamo=False warns "will be removed"; when it is, translate the
# two unpool functions with a custom_translation_table and down-convert.

from __future__ import annotations

import copy
import dataclasses
import inspect
import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from enet._lazy import require
from enet.errors import EnetError, ShapeError
from enet.model import ENet, check_input_size, count_parameters

from .trt_support import TrtSupportReport, check_trt_support

log = logging.getLogger(__name__)

#: TensorRT 8.5+ (JetPack 5, desktop 8.5-10.x) parses opset 17; use 13 for
#: TensorRT 8.0/8.2 (JetPack 4.6).
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 20
UNPOOL_MODES = ("mask", "native")
#: Parity bounds of the issue: ORT vs PyTorch logits, and argmax agreement.
PARITY_ATOL = 1e-4
#: A max-pool window "ties" when its top-2 gap is <= TIE_REL * max(1, |max|).
TIE_REL = 1e-5
FORMAT = "enet-rt-onnx"
FORMAT_VERSION = 1


class ExportError(EnetError):
    """The export cannot be done as asked (bad option, unwritable output)."""


class ParityError(EnetError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance."""


class OnnxMetadataError(EnetError):
    """An ONNX file is unreadable or lacks enet-rt metadata."""


@dataclasses.dataclass
class ParityResult:
    """ONNX Runtime vs PyTorch on the same inputs.

    Max-pool picks one element per 2x2 window and the decoder puts values
    back there. Where two window values tie, or differ by less than float32
    rounding, two float32 runtimes (PyTorch CPU vs CUDA too) can pick
    different elements, and the logits around that window then differ by
    O(feature size), not O(rounding). So frames are judged one by one: each
    must meet the bounds (``max |diff| <= atol``, argmax 100%), or the miss
    must be *explained*: the check reads ONNX Runtime's own pooling choices
    (the max-pool inputs of the ``mask`` graph, or the indices of the
    ``native`` one), finds the windows where they differ from PyTorch's, and
    accepts the frame only when there is at least one such window and every
    one of them is a tie in PyTorch's values (top-2 gap <=
    ``TIE_REL * max(1, |max|)``, exact ties included). A frame over the
    bounds with no differing window, or one with a clear winner, fails.

    Attributes:
        frames: images compared.
        source: where they came from ("CamVid val" or "random").
        max_abs_diff: max |logits_ort - logits_torch| over all frames.
        argmax_agreement: fraction of pixels whose class agrees (1.0 = all).
        labels_agreement: same for the in-graph ``labels`` output; None
            without it.
        input_shape: the NCHW shape fed per run.
        frame_diffs: max |diff| per frame.
        frame_agreement: argmax agreement per frame (the lower of logits
            argmax and ``labels`` when present).
        flips: per frame, pooling windows where ONNX Runtime chose another
            element than PyTorch; None when the graph's pooling could not be
            read (then a frame over the bounds fails).
        flip_gaps: per frame, the largest relative PyTorch top-2 gap among
            those windows (0.0 for exact ties or no flips).
        pool_input_diff: max |diff| of the max-pool inputs (ORT vs PyTorch),
            None when not read.
    """

    frames: int
    source: str
    max_abs_diff: float
    argmax_agreement: float
    labels_agreement: float | None
    input_shape: tuple[int, int, int, int]
    frame_diffs: list[float] = dataclasses.field(default_factory=list)
    frame_agreement: list[float] = dataclasses.field(default_factory=list)
    flips: list[int] | None = None
    flip_gaps: list[float] | None = None
    pool_input_diff: float | None = None
    atol: float = PARITY_ATOL

    @property
    def strict_ok(self) -> bool:
        """Every frame within the bounds (the issue's criterion, no exceptions)."""
        return (self.max_abs_diff <= self.atol and self.argmax_agreement == 1.0
                and self.labels_agreement in (None, 1.0))

    def _frame_ok(self, i: int) -> bool:
        return self.frame_diffs[i] <= self.atol and self.frame_agreement[i] == 1.0

    def _explained(self, i: int) -> bool:
        if self.flips is None or self.flip_gaps is None:
            return False
        return self.flips[i] > 0 and self.flip_gaps[i] <= TIE_REL

    @property
    def ok(self) -> bool:
        """Every frame within the bounds, or over them only through pooling ties (see the class)."""
        if self.strict_ok:
            return True
        return all(self._frame_ok(i) or self._explained(i) for i in range(len(self.frame_diffs)))

    def to_text(self) -> str:
        s = (f"parity ONNX Runtime vs PyTorch on {self.frames} {self.source} frame(s), runs of "
             f"{list(self.input_shape)}: max |logit diff| {self.max_abs_diff:.2e} (limit {self.atol:.0e}), "
             f"argmax agreement {100 * self.argmax_agreement:.4f}%")
        if self.labels_agreement is not None:
            s += f", labels output {100 * self.labels_agreement:.4f}%"
        over = [i for i in range(len(self.frame_diffs)) if not self._frame_ok(i)]
        if over:
            clean = [i for i in range(len(self.frame_diffs)) if i not in over]
            if self.ok:
                assert self.flips is not None and self.flip_gaps is not None
                s += (f"; {len(over)} frame(s) over the limit, each only where ONNX Runtime's max-pool chose "
                      f"another element of a tied window ({', '.join(str(self.flips[i]) for i in over)} "
                      f"window(s); PyTorch's top-2 gap there <= {max(self.flip_gaps[i] for i in over):.1e} "
                      "relative" + (f"; pool inputs agree to {self.pool_input_diff:.1e}"
                                    if self.pool_input_diff is not None else "") + ")")
            elif self.flips is None:
                s += f"; {len(over)} frame(s) over the limit (pooling choices not readable from this graph)"
            else:
                bad = [i for i in over if not self._explained(i)]
                s += (f"; {len(bad)} frame(s) over the limit NOT explained by tied max-pool windows "
                      f"(differing windows: {', '.join(str(self.flips[i]) for i in bad)})")
            if clean:
                s += (f"; the other {len(clean)}: max |diff| {max(self.frame_diffs[i] for i in clean):.2e}, "
                      f"argmax {100 * min(self.frame_agreement[i] for i in clean):.4f}%")
        return s + (" - OK" if self.ok else " - FAILED")


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        meta: the metadata stored in it (as :func:`read_onnx_metadata` returns).
        input_shape: ``(N, 3, H, W)``; ``N`` is the string ``"N"`` with a
            dynamic batch.
        output_names: ``["logits"]`` or ``["logits", "labels"]``.
        opset: default-domain opset.
        unpool: ``"mask"`` or ``"native"``.
        simplified: onnx-simplifier ran.
        parameters: parameters of the PyTorch model.
        onnx_weights: values in the ONNX initializers (after BN folding).
        file_size: bytes written.
        sha256: of the written file.
        source: the checkpoint.
        trt: op check against TensorRT's parser.
        parity: ORT vs PyTorch check, when asked for.
    """

    path: Path
    meta: dict[str, Any]
    input_shape: tuple[int | str, int, int, int]
    output_names: list[str]
    opset: int
    unpool: str
    simplified: bool
    parameters: int
    onnx_weights: int
    file_size: int
    sha256: str
    source: Path
    trt: TrtSupportReport
    parity: ParityResult | None = None

    def op_counts(self) -> dict[str, int]:
        return self.trt.op_counts()


class _ExportHead(nn.Module):
    """ENet plus the optional int32 argmax ``labels`` output."""

    def __init__(self, model: nn.Module, labels: bool) -> None:
        super().__init__()
        self.model, self.labels = model, labels

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        logits = self.model(x)
        if not self.labels:
            return logits
        return logits, logits.argmax(dim=1).to(torch.int32)


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("enet-rt")
    except PackageNotFoundError:
        return "unknown"


def check_export_options(*, height: int, width: int, batch: int = 1, opset: int = DEFAULT_OPSET,
                         unpool: str = "mask") -> None:
    """Validate export options before any work.

    Raises:
        ShapeError: height/width not positive multiples of 8.
        ExportError: bad batch, opset or unpool mode.
    """
    check_input_size(height, width)
    if not isinstance(batch, int) or batch < 1:
        raise ExportError(f"batch must be a positive integer, not {batch!r}; or use --dynamic-batch")
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} "
                          f"(default {DEFAULT_OPSET}; 13 for TensorRT 8.0/8.2)")
    if unpool not in UNPOOL_MODES:
        raise ExportError(f"unpool must be one of {', '.join(UNPOOL_MODES)}, not {unpool!r}")


def build_onnx(model: ENet, *, height: int, width: int, batch: int = 1, dynamic_batch: bool = False,
               opset: int = DEFAULT_OPSET, unpool: str = "mask", simplify: bool = True, labels: bool = False,
               metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """Export ``model`` to an in-memory, checked ONNX model (see module docstring).

    Args:
        model: ENet (either unpool form); not modified.
        height, width: input size, multiples of 8.
        batch: static batch size (ignored with ``dynamic_batch``).
        dynamic_batch: make the batch axis the symbolic ``N``.
        opset: default-domain opset, ``MIN_OPSET..MAX_OPSET``.
        unpool: ``"mask"`` (TensorRT-native) or ``"native"`` (ONNX MaxUnpool).
        simplify: run onnx-simplifier.
        labels: add the int32 ``labels`` output ``(N, H, W)``.
        metadata: ``metadata_props`` to set (string values).

    Returns:
        The model; ``onnx.checker.check_model(full_check=True)`` passed.
    """
    check_export_options(height=height, width=width, batch=batch, opset=opset, unpool=unpool)
    if unpool == "native":
        from .unpool import native_unpool_model

        net: nn.Module = native_unpool_model(model)
    else:
        net = copy.deepcopy(model).set_unpool("mask")
    head = _ExportHead(net, labels).eval()
    n = 2 if dynamic_batch else batch  # trace with N=2 so nothing hard-codes N=1
    dummy = torch.zeros(n, 3, height, width)
    outputs = ["logits", "labels"] if labels else ["logits"]
    kwargs: dict[str, Any] = dict(
        opset_version=opset, input_names=["input"], output_names=outputs, do_constant_folding=True,
        training=torch.onnx.TrainingMode.EVAL,
    )
    if dynamic_batch:
        kwargs["dynamic_axes"] = {name: {0: "N"} for name in ["input", *outputs]}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter's deprecation and tracer warnings are about
        # PyTorch's roadmap, not this model (see module docstring)
        warnings.simplefilter("ignore")
        torch.onnx.export(head, (dummy,), buf, **kwargs)
    proto = onnx.load_from_string(buf.getvalue())
    if simplify:
        onnxsim = require("onnxsim")
        proto, ok = onnxsim.simplify(proto)
        if not ok:  # pragma: no cover - onnxsim's own check failed: a bug
            raise RuntimeError("onnx-simplifier could not validate the simplified model")
    if not dynamic_batch:
        _fix_batch(proto, batch)
    proto.producer_name = "enet-rt"
    proto.producer_version = toolkit_version()
    proto.doc_string = "ENet (Paszke et al. 2016) semantic segmentation, exported by enet-export"
    del proto.metadata_props[:]
    for k, v in (metadata or {}).items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _fix_batch(proto: onnx.ModelProto, batch: int) -> None:
    """Keep static batch dims static (the tracer sometimes leaves them symbolic)."""
    for vi in list(proto.graph.input) + list(proto.graph.output):
        d = vi.type.tensor_type.shape.dim[0]
        if not d.HasField("dim_value"):
            d.dim_value = batch


def onnx_metadata(meta: dict[str, Any], *, height: int, width: int, unpool: str, source_sha256: str,
                  source_name: str = "", labels: bool = False) -> dict[str, str]:
    """``metadata_props`` for an export: checkpoint metadata plus provenance, JSON-encoded.

    Keys: ``classes``, ``palette``, ``void_index``, ``mean``, ``std``,
    ``input_size`` ([H, W] of this graph), ``checkpoint_input_size``,
    ``metrics`` (when the checkpoint has them), ``source_sha256``,
    ``source_name``, ``toolkit_version``, ``unpool``, ``outputs``,
    ``format``, ``format_version``.
    """
    out: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": list(meta["classes"]),
        "palette": [list(c) for c in meta["palette"]],
        "void_index": meta.get("void_index"),
        "mean": list(meta["mean"]),
        "std": list(meta["std"]),
        "input_size": [height, width],
        "checkpoint_input_size": list(meta["input_size"]),
        "source_sha256": source_sha256,
        "source_name": source_name,
        "toolkit_version": toolkit_version(),
        "unpool": unpool,
        "outputs": ["logits", "labels"] if labels else ["logits"],
    }
    if meta.get("metrics"):
        out["metrics"] = meta["metrics"]
    return {k: json.dumps(v) for k, v in out.items()}


def read_onnx_metadata(path_or_model: str | os.PathLike[str] | onnx.ModelProto) -> dict[str, Any]:
    """The enet-rt metadata of an exported ONNX model, JSON-decoded.

    Returns:
        The checkpoint metadata keys (``classes``, ``palette``, ``mean``,
        ``std``, ``input_size`` [H, W], ``void_index``) plus
        ``source_sha256``, ``toolkit_version``, ``unpool`` and the other keys
        of :func:`onnx_metadata`.

    Raises:
        OnnxMetadataError: missing or unreadable file, or no enet-rt metadata.
    """
    if isinstance(path_or_model, onnx.ModelProto):
        proto, name = path_or_model, "ONNX model"
    else:
        p = Path(path_or_model)
        name = str(p)
        if not p.is_file():
            raise OnnxMetadataError(f"ONNX file {p} does not exist")
        try:
            proto = onnx.load(str(p), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several types
            raise OnnxMetadataError(f"{p} is not a readable ONNX model ({type(exc).__name__}); "
                                    "expected a file written by enet-export") from None
    meta: dict[str, Any] = {}
    for prop in proto.metadata_props:
        try:
            meta[prop.key] = json.loads(prop.value)
        except ValueError:
            meta[prop.key] = prop.value
    if "classes" not in meta or "input_size" not in meta:
        raise OnnxMetadataError(f"{name} has no enet-rt metadata (classes, input_size); "
                                "re-export it with enet-export")
    return meta


# --------------------------------------------------------------------------- parity

def parity_frames(n: int, height: int, width: int, *, camvid_root: str | os.PathLike[str] | None = None,
                  seed: int = 0) -> tuple[list[np.ndarray], str]:
    """``n`` RGB uint8 ``(height, width, 3)`` images for parity checks.

    Real val frames of the dataset at ``camvid_root`` (evenly spaced over the
    split, resized to the export size) when it has a val split, else seeded
    random images.

    Returns:
        ``(images, source)`` with source ``"CamVid val"`` or ``"random"``.
    """
    from enet.defaults import default_camvid_root

    from enet.datasets import open_dataset

    root = Path(camvid_root) if camvid_root is not None else default_camvid_root()
    info = open_dataset(root) if root.is_dir() else None
    files = info.image_paths("val") if info is not None and info.has_split("val") else []
    if not files:
        log.warning("val frames not found at %s; checking parity on random images", root)
        rng = np.random.default_rng(seed)
        return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)], "random"
    cv2 = require("cv2")
    picks = np.linspace(0, len(files) - 1, n).round().astype(int) if n > 1 else np.array([0])
    images = []
    for i in picks:
        bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise EnetError(f"cannot read CamVid frame {files[i]}; expected an RGB PNG")
        if bgr.shape[:2] != (height, width):
            bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
        images.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    return images, "CamVid val" if info.kind == "camvid" else f"{root.name} val"


def verify_parity(onnx_model: onnx.ModelProto | bytes | str | os.PathLike[str], model: ENet, *,
                  mean: Sequence[float], std: Sequence[float], frames: int = 3,
                  camvid_root: str | os.PathLike[str] | None = None, threads: int | None = None) -> ParityResult:
    """Run ``onnx_model`` in ONNX Runtime (CPU) and ``model`` in PyTorch on the same frames.

    The PyTorch reference is ``model`` in its training form (``indices``:
    MaxPool2d/MaxUnpool2d), so the check covers the unpool rewrite too.

    Args:
        onnx_model: model proto, serialized bytes or a path.
        model: the checkpoint's ENet.
        mean, std: normalisation from the metadata.
        frames: images to compare (>= 1).
        camvid_root: CamVid root (default: :func:`enet.defaults.default_camvid_root`).
        threads: ORT intra-op threads (default: ORT's).
    """
    ort = require("onnxruntime")
    if isinstance(onnx_model, onnx.ModelProto):
        data = onnx_model.SerializeToString()
    elif isinstance(onnx_model, bytes):
        data = onnx_model
    else:
        data = Path(onnx_model).read_bytes()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    proto = onnx.load_model_from_string(data)
    out_names = [o.name for o in proto.graph.output]
    probes = pool_probes(proto)
    if probes:
        # read ORT's own pooling choices too: expose them as extra outputs
        for _kind, name in probes:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        data = proto.SerializeToString()
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dims = list(inp.shape)
    h, w = int(dims[2]), int(dims[3])
    images, source = parity_frames(max(1, frames), h, w, camvid_root=camvid_root)
    from enet.transforms import normalize_batch

    x_all = normalize_batch(images, mean, std)
    # a dynamic batch runs all frames at once (batch > 1 exercises the
    # cross-image index convention of --unpool native); a static one in
    # chunks of its size, cycling frames to fill the last chunk
    bsz = int(dims[0]) if isinstance(dims[0], int) else len(images)
    ref_model = copy.deepcopy(model).set_unpool("indices").eval()
    pool_inputs: list[Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: pool_inputs.append(args[0]))
             for m in (ref_model.down1, ref_model.down2)]
    n_img = len(images)
    diffs, agreement = [0.0] * n_img, [1.0] * n_img
    flips, flip_gaps = [0] * n_img, [0.0] * n_img
    readable = probes is not None  # ORT's pooling choices can be compared with PyTorch's
    pool_diff: float | None = None
    agree = total = lab_agree = 0
    try:
        for start in range(0, n_img, bsz):
            idx = [(start + k) % n_img for k in range(bsz)]
            x = x_all[idx]
            run = sess.run(None, {inp.name: x})
            outs = dict(zip(out_names, run))
            pool_inputs.clear()
            with torch.inference_mode():
                ref = ref_model(torch.from_numpy(x)).numpy()
            frame_flips = np.zeros(len(idx), np.int64)
            frame_gaps = np.zeros(len(idx))
            readable = readable and len(pool_inputs) == len(probes)
            if readable:
                for (kind, _name), t, got in zip(probes, pool_inputs, run[len(out_names):]):
                    fl, gap, diff = compare_pool_choices(t.numpy(), got, kind)
                    if fl is None:  # layout not understood: no explanation possible
                        readable = False
                        break
                    frame_flips += fl
                    frame_gaps = np.maximum(frame_gaps, gap)
                    if diff is not None:
                        pool_diff = diff if pool_diff is None else max(pool_diff, diff)
            logits = outs["logits"]
            if logits.shape != ref.shape:
                raise ParityError(f"ONNX logits shape {logits.shape} differs from PyTorch's {ref.shape}")
            ref_cls = ref.argmax(1)
            for k, i in enumerate(idx[: n_img - start]):
                diffs[i] = float(np.abs(logits[k] - ref[k]).max())
                same = logits[k].argmax(0) == ref_cls[k]
                agreement[i] = float(same.mean())
                agree += int(same.sum())
                total += same.size
                if "labels" in outs:
                    lab_same = outs["labels"][k] == ref_cls[k]
                    lab_agree += int(lab_same.sum())
                    agreement[i] = min(agreement[i], float(lab_same.mean()))
                flips[i] = int(frame_flips[k])
                flip_gaps[i] = float(frame_gaps[k])
    finally:
        for hk in hooks:
            hk.remove()
    return ParityResult(frames=n_img, source=source, max_abs_diff=max(diffs), argmax_agreement=agree / total,
                        labels_agreement=(lab_agree / total) if "labels" in out_names else None,
                        input_shape=(bsz, 3, h, w), frame_diffs=diffs, frame_agreement=agreement,
                        flips=flips if readable else None, flip_gaps=flip_gaps if readable else None,
                        pool_input_diff=pool_diff if readable else None)


def pool_probes(model: onnx.ModelProto) -> list[tuple[str, str]] | None:
    """The tensors that show ONNX Runtime's choice in each unpooled max-pool, in graph order.

    ``("mask", name)``: the window tensor ``(N, C, 4, H/2, W/2)`` that the
    exact unpooling reduces with ReduceMax; ``("native", name)``: MaxPool's
    indices output. None when the graph has neither (nothing to read).
    """
    nodes = model.graph.node
    mask = [("mask", n.input[0]) for n in nodes if n.op_type == "ReduceMax"]
    native = [("native", n.output[1]) for n in nodes if n.op_type == "MaxPool" and len(n.output) > 1 and n.output[1]]
    found = mask or native
    return found if len(found) == 2 else None


def compare_pool_choices(x: np.ndarray, got: np.ndarray, kind: str) -> tuple[np.ndarray | None, np.ndarray, float | None]:
    """Where ONNX Runtime's 2x2 max-pool choice differs from PyTorch's, per image.

    Args:
        x: PyTorch's max-pool input ``(N, C, H, W)``; PyTorch keeps the first
            maximum of each window in row-major order.
        got: the probe from :func:`pool_probes`: ORT's window tensor
            ``(N, C, 4, H/2, W/2)`` (``mask``) or its MaxPool indices
            ``(N, C, H/2, W/2)`` into the flattened input (``native``).
        kind: ``"mask"`` or ``"native"``.

    Returns:
        ``(flips, gaps, input_diff)``: differing windows per image, the
        largest relative PyTorch top-2 gap among them per image, and the max
        |diff| of the pool inputs (``mask`` only). ``flips`` is None when
        ``got`` does not have the expected layout.
    """
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 5, 2, 4).reshape(n, c, 4, -1)
    mine = win.argmax(2)
    diff = None
    if kind == "mask":
        if got.size != x.size:
            return None, np.zeros(n), None
        theirs_win = got.reshape(n, c, 4, -1)
        diff = float(np.abs(theirs_win - win).max())
        theirs = theirs_win.argmax(2)
    else:
        if got.size * 4 != x.size:
            return None, np.zeros(n), None
        pos = got.reshape(n, c, -1).astype(np.int64) % (h * w)
        theirs = (pos // w % 2) * 2 + pos % w % 2
    flipped = mine != theirs
    if flipped.mean() > 0.5:  # not rounding: the layout is not the one assumed
        return None, np.zeros(n), diff
    srt = np.sort(win, axis=2)
    rel = (srt[:, :, -1] - srt[:, :, -2]) / np.maximum(1.0, np.abs(srt[:, :, -1]))
    gaps = np.where(flipped, rel, 0.0).reshape(n, -1).max(1)
    return flipped.reshape(n, -1).sum(1), gaps, diff


# --------------------------------------------------------------------------- export

def check_output_path(output: str | os.PathLike[str]) -> Path:
    """Refuse an output that cannot be written, before the (slow) export.

    Raises:
        ExportError: the path is a folder, or its folder is missing or read-only.
    """
    out = Path(output)
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ExportError(f"cannot write {out}: it is a folder; give a file name such as {out / 'enet.onnx'}")
    if not folder.is_dir():
        raise ExportError(f"cannot write {out}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {out}: folder {folder} is not writable; choose another -o")
    return out


def export_onnx(model_path: str | os.PathLike[str] | None, output: str | os.PathLike[str], *,
                height: int | None = None, width: int | None = None, batch: int = 1,
                dynamic_batch: bool = False, opset: int | None = None, unpool: str = "mask",
                simplify: bool = True, labels: bool = False, verify: int = 0,
                camvid_root: str | os.PathLike[str] | None = None) -> ExportResult:
    """Export an enet-rt checkpoint to ``output`` (written atomically).

    Args:
        model_path: checkpoint; None for the reference model
            (:func:`enet.defaults.default_model_path`).
        output: ``.onnx`` path; its folder must exist.
        height, width: input size (default: the checkpoint's ``input_size``).
        batch: static batch size.
        dynamic_batch: symbolic batch ``N`` instead.
        opset: default :data:`DEFAULT_OPSET`.
        unpool: ``"mask"`` (TensorRT-native, default) or ``"native"``.
        simplify: run onnx-simplifier.
        labels: add the int32 ``labels`` output ``(N, H, W)``.
        verify: compare ONNX Runtime with PyTorch on this many CamVid val
            frames before writing (0: skip); a failure writes nothing.
        camvid_root: CamVid root for ``verify``.

    Raises:
        CheckpointError: missing, corrupt or non-ENet checkpoint.
        ShapeError: height/width not multiples of 8.
        ExportError: bad options or unwritable output.
        ParityError: ``verify`` found a mismatch (nothing is written).
    """
    from enet.checkpoint import load_model
    from enet.defaults import default_model_path
    from enet.fileio import atomic_path, sha256_file

    opset = DEFAULT_OPSET if opset is None else opset
    for name, v in (("height", height), ("width", width)):
        if v is not None and (not isinstance(v, int) or v <= 0):
            raise ShapeError(f"{name} must be a positive multiple of 8, not {v!r}")
    if height is not None and width is not None:
        check_export_options(height=height, width=width, batch=batch, opset=opset, unpool=unpool)
    out = check_output_path(output)
    src = Path(model_path) if model_path is not None else default_model_path()
    model, meta = load_model(src)
    h = int(height if height is not None else meta["input_size"][0])
    w = int(width if width is not None else meta["input_size"][1])
    check_export_options(height=h, width=w, batch=batch, opset=opset, unpool=unpool)
    sha = sha256_file(src)
    props = onnx_metadata(meta, height=h, width=w, unpool=unpool, source_sha256=sha, source_name=src.name,
                          labels=labels)
    log.info("exporting %s at %dx%d (opset %d, unpool %s)", src, h, w, opset, unpool)
    proto = build_onnx(model, height=h, width=w, batch=batch, dynamic_batch=dynamic_batch, opset=opset,
                       unpool=unpool, simplify=simplify, labels=labels, metadata=props)
    data = proto.SerializeToString()
    parity = None
    if verify > 0:
        parity = verify_parity(data, model, mean=meta["mean"], std=meta["std"], frames=verify,
                               camvid_root=camvid_root)
        log.info("%s", parity.to_text())
        if parity.ok and not parity.strict_ok:
            log.warning("parity misses the bounds only where max-pool windows tie; see ParityResult")
        if not parity.ok:
            raise ParityError(f"not writing {out}: {parity.to_text()}; this is a bug, please report it")
    try:
        with atomic_path(out) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from None
    trt = check_trt_support(proto)
    weights = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    return ExportResult(
        path=out, meta=read_onnx_metadata(proto), input_shape=("N" if dynamic_batch else batch, 3, h, w),
        output_names=[o.name for o in proto.graph.output], opset=opset, unpool=unpool, simplified=simplify,
        parameters=count_parameters(model), onnx_weights=weights, file_size=len(data),
        sha256=sha256_file(out), source=src, trt=trt, parity=parity,
    )


def format_report(result: ExportResult) -> str:
    """The compatibility report ``enet-export`` prints after an export."""
    n, _, h, w = result.input_shape
    c = len(result.meta["classes"])
    lines = [
        f"wrote {result.path} ({result.file_size / 1e6:.2f} MB, sha256 {result.sha256[:16]}) from {result.source}",
        f"  input   input   float32 [{n}, 3, {h}, {w}]",
        f"  output  logits  float32 [{n}, {c}, {h}, {w}]",
    ]
    if "labels" in result.output_names:
        lines.append(f"  output  labels  int32   [{n}, {h}, {w}]")
    lines += [
        f"  opset {result.opset}, unpool {result.unpool}, {'simplified' if result.simplified else 'not simplified'}, "
        f"{result.parameters:,} parameters ({result.onnx_weights:,} ONNX weights after BN folding), "
        f"{sum(result.op_counts().values())} nodes",
        "TensorRT ONNX parser support (onnx-tensorrt operator matrices):",
        result.trt.to_text(),
    ]
    if result.parity is not None:
        lines.append(result.parity.to_text())
    return "\n".join(lines)
