"""Which ONNX ops TensorRT's ONNX parser runs natively, and since which release.

The table below was read from onnx-tensorrt's operator support matrix
(``operators.md`` / ``docs/operators.md``) at the releases we checked:
TensorRT 5.1, 6.0, 7.2, 8.4, 8.5 and 10.15. ``since`` is the *earliest
checked* release whose matrix lists the op as supported, so an op may have
arrived between two checked releases (e.g. "7.2" means "not in 6.0, in 7.2").
It covers the ops an exported ENet can contain plus the ops ENet ports
commonly trip over (MaxUnpool, ScatterND, NonZero, ...). Ops not in the table
are reported as unknown, which counts as unsupported.

Besides op names the parser has per-node restrictions; the ones that matter
for ENet are checked on the nodes themselves:

* MaxPool with a second (``Indices``) output: rejected by every release.
* Pad outside the last two axes: 7.2 pads only the last two (H, W); ENet's
  channel zero-padding in the downsampling bottleneck needs >= 8.4.
* ``axes`` of Slice/Squeeze/Unsqueeze/Reduce* and the weights of
  Conv/ConvTranspose must be initializers (build-time constants).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import onnx
from packaging.version import Version

#: Releases whose onnx-tensorrt operator matrix the table was read from.
CHECKED_RELEASES = ("5.1", "6.0", "7.2", "8.4", "8.5", "10.15")

#: Highest default-domain opset each checked release parses ("supports
#: operators up to Opset N"; 10.x: "inclusive range of opset 9 to N").
_OPSET_SINCE: tuple[tuple[int, str], ...] = (
    (9, "5.1"), (10, "6.0"), (11, "7.2"), (13, "8.0"), (17, "8.5"), (20, "10.0"), (24, "10.15"),
)

_V51 = ("Abs Add ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant Conv "
        "ConvTranspose DepthToSpace Div Dropout Elu Exp Flatten Floor Gather Gemm GlobalAveragePool "
        "GlobalMaxPool HardSigmoid Identity InstanceNormalization LRN LeakyRelu Log LogSoftmax MatMul Max "
        "MaxPool Mean Min Mul Neg PRelu Pad Pow Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp "
        "ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Selu Shape Sigmoid "
        "Sin Sinh Cos Cosh Tan Tanh Asin Asinh Acos Acosh Atan Atanh Slice Softmax Softplus Softsign "
        "SpaceToDepth Split Sqrt Squeeze Sub Sum TopK Transpose Unsqueeze Upsample ImageScaler "
        "ParametricSoftplus ScaledTanh ThresholdedRelu")
_V60 = "Resize"
_V72 = ("And ConstantOfShape DequantizeLinear Equal Erf Expand Greater GRU Less Loop LSTM Not Or "
        "QuantizeLinear RandomUniform RandomUniformLike Range RNN Scan Size Tile Where")
_V84 = ("Celu CumSum Einsum EyeLike GatherElements GatherND GlobalLpPool GreaterOrEqual If IsNaN LessOrEqual "
        "LpNormalization LpPool ReverseSequence Round Scatter ScatterElements ScatterND Sign Xor")
_V1015 = ("CastLike GridSample GroupNormalization Gelu HardSwish Hardmax IsInf LayerNormalization "
          "MeanVarianceNormalization Mish Mod NonMaxSuppression NonZero OneHot RandomNormal RandomNormalLike "
          "RoiAlign Shrink")
#: Listed as unsupported ("N") by every checked release.
_NEVER = ("MaxUnpool MaxRoiPool Compress BitShift ConvInteger MatMulInteger QLinearConv QLinearMatMul Det "
          "Unique Multinomial StringNormalizer TfIdfVectorizer ConcatFromSequence SequenceAt SequenceConstruct "
          "SequenceEmpty SequenceErase SequenceInsert SequenceLength SplitToSequence DynamicQuantizeLinear "
          "NegativeLogLikelihoodLoss SoftmaxCrossEntropyLoss Optional OptionalGetElement OptionalHasElement "
          "BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad AffineGrid Bernoulli DFT "
          "MelWeightMatrix RegexFullMatch ImageDecoder")

_NOTES = {
    "MaxUnpool": "not implemented by the parser; use --unpool mask",
    "ScatterND": "not before 8.x; what PyTorch's dynamo exporter lowers MaxUnpool2d to",
    "Pad": "7.2: zero padding of the last 2 axes only",
    "Dropout": "the 7.2 matrix lists it as unsupported; an eval-mode export has none",
    "Reciprocal": "the 7.2 and 8.4 matrices list it as unsupported",
    "Where": "FP32, FP16, INT32, BOOL",
    "And": "BOOL only",
    "Or": "BOOL only",
    "Not": "BOOL only",
    "Equal": "FP32, FP16, INT32",
}


def _build_table() -> dict[str, str | None]:
    table: dict[str, str | None] = {}
    for since, names in (("5.1", _V51), ("6.0", _V60), ("7.2", _V72), ("8.4", _V84), ("10.15", _V1015)):
        for name in names.split():
            table.setdefault(name, since)
    for name in _NEVER.split():
        table[name] = None
    return table


#: ONNX op type -> earliest checked TensorRT release that parses it (None: none does).
TRT_OP_SINCE: dict[str, str | None] = _build_table()

_AXES_INPUT = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceMean": 1,
               "ReduceSum": 1, "ReduceProd": 1, "ReduceL1": 1, "ReduceL2": 1, "ReduceLogSum": 1,
               "ReduceLogSumExp": 1, "ReduceSumSquare": 1}


@dataclasses.dataclass
class OpSupport:
    """One op type of a graph and what TensorRT's parser says about it.

    Attributes:
        op: ONNX op type (``domain::op`` outside the default domain).
        count: nodes of this type in the main graph.
        supported: parsed natively by some TensorRT release (and no node of
            this type hits a restriction that no release lifts).
        since: earliest checked release that parses it; None when none does.
        note: restriction or reason, empty when there is none.
    """

    op: str
    count: int
    supported: bool
    since: str | None
    note: str = ""


@dataclasses.dataclass
class TrtSupportReport:
    """Result of :func:`check_trt_support`.

    Attributes:
        ops: one entry per op type, most frequent first.
        unsupported: op types no TensorRT release parses natively (including
            restrictions such as MaxPool's Indices output); empty means the
            graph needs no plugin.
        opset: default-domain opset of the model.
        min_trt_version: lowest TensorRT release (among those checked) that
            parses every op, every node restriction and the opset; None when
            ``unsupported`` is not empty.
        problems: node-level findings, one line each.
    """

    ops: list[OpSupport]
    unsupported: list[str]
    opset: int
    min_trt_version: str | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.unsupported

    def op_counts(self) -> dict[str, int]:
        return {o.op: o.count for o in self.ops}

    def to_text(self) -> str:
        """Human-readable table, one op per line."""
        width = max([len(o.op) for o in self.ops] + [2])
        lines = [f"  {'op':<{width}}  count  TensorRT parser"]
        for o in self.ops:
            where = f">= {o.since}" if o.supported else "NO"
            lines.append(f"  {o.op:<{width}}  {o.count:5d}  {where}" + (f"  ({o.note})" if o.note else ""))
        for p in self.problems:
            lines.append(f"  ! {p}")
        if self.min_trt_version:
            lines.append(f"  verdict: every op is native in TensorRT's ONNX parser from TensorRT "
                         f"{self.min_trt_version} on (opset {self.opset})")
        else:
            lines.append(f"  verdict: NOT parseable by TensorRT without plugins: {', '.join(self.unsupported)}")
        return "\n".join(lines)


def _max_version(versions: list[str]) -> str:
    return max(versions, key=Version)


def opset_min_trt(opset: int) -> str | None:
    """Lowest checked TensorRT release whose parser accepts default-domain ``opset``."""
    for top, release in _OPSET_SINCE:
        if opset <= top:
            return release
    return None


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    consts = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = a.t
    return consts


def check_trt_support(model: onnx.ModelProto | str | Any) -> TrtSupportReport:
    """Check every op of ``model`` against TensorRT's ONNX parser support.

    Args:
        model: an ``onnx.ModelProto`` or a path to an ``.onnx`` file.

    Returns:
        A :class:`TrtSupportReport`; ``report.unsupported`` is empty for the
        default ``--unpool mask`` ENet graph and holds ``MaxUnpool`` (and
        ``MaxPool[indices]``) for the ``--unpool native`` graph.
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    consts = _constants(graph)
    counts: Counter[str] = Counter()
    problems: list[str] = []
    extra_min: dict[str, str] = {}  # op -> release a node restriction needs
    blocked: set[str] = set()       # op types with a node no release parses
    for node in graph.node:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[op] += 1
        if op == "MaxPool" and len([o for o in node.output if o]) > 1:
            blocked.add("MaxPool[indices]")
            problems.append(f"MaxPool {node.name or node.output[0]} has an Indices output, which no TensorRT "
                            "release parses")
        elif op == "Pad" and len(node.input) > 1:
            if node.input[1] not in consts:  # computed pads: assume the worst
                extra_min["Pad"] = "8.4"
            else:
                pads = onnx.numpy_helper.to_array(consts[node.input[1]]).tolist()
                rank = len(pads) // 2
                if any(p for i, p in enumerate(pads) if i % rank < rank - 2):
                    extra_min["Pad"] = "8.4"
        elif op in _AXES_INPUT and len(node.input) > _AXES_INPUT[op]:
            axes = node.input[_AXES_INPUT[op]]
            if axes and axes not in consts:
                problems.append(f"{op} {node.name or node.output[0]}: axes is computed at run time; TensorRT "
                                "wants an initializer")
        elif op in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] not in consts:
            problems.append(f"{op} {node.name or node.output[0]}: weights are not an initializer (TensorRT < 10 "
                            "needs constant weights)")
    ops: list[OpSupport] = []
    unsupported: list[str] = []
    for op, n in counts.most_common():
        since = TRT_OP_SINCE.get(op)
        known = op in TRT_OP_SINCE
        note = _NOTES.get(op, "" if known else "not in the checked support matrices")
        if since is not None and op in extra_min:
            since = _max_version([since, extra_min[op]])
            if op == "Pad":
                note = "pads beyond H, W (or computed pads): 7.2 pads only the last 2 axes"
        supported = since is not None
        if op == "MaxPool" and "MaxPool[indices]" in blocked:
            supported, since = False, None
            unsupported.append("MaxPool[indices]")
            note = "the Indices (second) output is unsupported in every release"
        elif not supported:
            unsupported.append(op)
        ops.append(OpSupport(op, n, supported, since, note))
    min_trt: str | None = None
    if not unsupported:
        needed = [o.since for o in ops if o.since] + [opset_min_trt(opset) or "99"]
        min_trt = _max_version(needed)
        if min_trt == "99":
            problems.append(f"opset {opset} is newer than any checked TensorRT release parses")
            min_trt = None
    return TrtSupportReport(ops=ops, unsupported=unsupported, opset=opset, min_trt_version=min_trt,
                            problems=problems)
