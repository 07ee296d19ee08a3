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
  :mod:`enet.export.metadata`; the ORT-vs-PyTorch check is
  :mod:`enet.export.parity`.

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
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from enet._lazy import require
from enet.errors import EnetError, ShapeError
from enet.model import ENet, count_parameters
from enet.transforms import DEFAULT_RESIZE, check_input_size

from .metadata import onnx_metadata, read_onnx_metadata, toolkit_version
from .parity import ParityError, ParityResult, verify_parity
from .trt_support import TrtSupportReport, check_trt_support

log = logging.getLogger(__name__)

#: TensorRT 8.5+ (JetPack 5, desktop 8.5-10.x) parses opset 17; use 13 for
#: TensorRT 8.0/8.2 (JetPack 4.6).
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 20
UNPOOL_MODES = ("mask", "native")


class ExportError(EnetError):
    """The export cannot be done as asked (bad option, unwritable output)."""


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
    while not folder.exists() and folder != folder.parent:  # missing folders are created on write (docs/cli.md)
        folder = folder.parent
    if not folder.is_dir():
        raise ExportError(f"cannot write {out}: {folder} is not a folder; choose another -o")
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
        model_path: checkpoint or shipped weights name (:func:`enet.weights.resolve_model`);
            None for the reference model.
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
    from enet.fileio import atomic_path, sha256_file
    from enet.weights import resolve_model

    opset = DEFAULT_OPSET if opset is None else opset
    for name, v in (("height", height), ("width", width)):
        if v is not None and (not isinstance(v, int) or v <= 0):
            raise ShapeError(f"{name} must be a positive multiple of 8, not {v!r}")
    if height is not None and width is not None:
        check_export_options(height=height, width=width, batch=batch, opset=opset, unpool=unpool)
    out = check_output_path(output)
    src = resolve_model(model_path)
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
        parity = verify_parity(data, model, mean=meta["mean"], std=meta["std"],
                               resize=meta.get("resize", DEFAULT_RESIZE), frames=verify, camvid_root=camvid_root)
        log.info("%s", parity.to_text())
        if parity.ok and not parity.strict_ok:
            log.warning("ONNX Runtime and PyTorch differ beyond the strict bound only where max-pool windows tie (equal values, either pick is right); the argmax agrees, so %s is written", out)
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
