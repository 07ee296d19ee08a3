"""Exact rewrites of an exported ENet ONNX graph into forms CPU runtimes run faster.

The default ``enet-export`` graph is written for TensorRT (see
:mod:`enet.export.onnx`). Two of its forms cost CPU runtimes much more than
their arithmetic (measured with ONNX Runtime's profiler and OpenVINO's
per-layer counters on the shipped model at 480x360, see docs/bench.md):

* the ``mask`` unpooling works in space-to-depth layout: a 6-D Transpose of
  the full-resolution activation in the encoder and its inverse in the
  decoder, and OpenVINO converts layouts around every one of them;
* ``PRelu`` with its ``(C, 1, 1)`` slope: ONNX Runtime's CPU provider runs it
  as an unvectorised broadcast (the largest op in its profile), and
  OpenVINO's fused eltwise kernels keep a rank-3 slope in planar layout, so
  the residual chain runs in NCHW while the convolutions run in NHWC, with a
  layout reorder around each bottleneck.

Each rewrite here computes the same numbers (exactly, not approximately):

* :func:`select_unpool`: pool with ``MaxPool``; the first-maximum mask at
  full resolution from ``Equal(x, nearest-upsampled max)``, with ties broken
  towards the first window element as PyTorch does (weights 8, 4, 2, 1 in
  row-major window order, and the position whose weight is the window's
  maximum weight wins); unpool as ``Where(mask, nearest-upsampled y, 0)``.
  Nearest upsampling by 2 copies values, Equal and Where select them, so
  every value is bit-identical to the mask form's.
* :func:`rank4_prelu_slopes`: slope ``(C, 1, 1)`` -> ``(1, C, 1, 1)``; the
  same broadcast.
* :func:`decompose_prelu`: ``PRelu(x, s) = Relu(x) + Min(x, 0) * s``. For
  ``x >= 0`` this is ``x + (+-0)``, for ``x < 0`` it is ``0 + x * s``: each a
  single rounding, the one ``PRelu`` makes.
* :func:`max_prelu`: ``PRelu(x, s) = Max(x, x * s)`` where every slope of the
  layer is at most 1, ``Min(x, x * s)`` where every slope is at least 1 (other
  layers: :func:`decompose_prelu`'s form). With ``s <= 1``, ``x * s <= x``
  for ``x >= 0`` and ``x * s >= x`` for ``x < 0``; rounding to float is
  monotone, so the rounded ``x * s`` keeps that order and ``Max`` returns
  ``x`` or the one rounding ``PRelu`` makes (``s >= 1``: mirrored, ``Min``).

* :func:`mul_unpool`: the select form's ``Where(mask, v, 0)`` (the
  placement, and the window scores of the first-maximum mask) as
  ``v * Cast(mask, float)``: ``v * 1 = v`` and ``v * 0 = 0`` exactly (a
  zero may come out as ``-0.0``, equal to ``0.0`` in every later compare
  and sum, so logits and labels keep their values). ONNX Runtime's CPU
  provider runs a broadcast-free ``Mul`` faster than its ``Where``.
* :func:`nchwc_prelu` (ONNX Runtime on x86-64): ``PRelu(x, s) = Relu(x) +
  Relu(x * -1) * -s``. ``x * -1`` and ``Relu`` are exact; for ``x >= 0`` the
  sum is ``x + (+-0)``, for ``x < 0`` it is ``0 + (-x) * (-s)``, the one
  rounding ``PRelu`` makes (any slope, infinities included). ONNX Runtime
  runs the per-channel ``Mul`` as depthwise 1x1 convolutions in its blocked
  NCHWc layout and fuses the ``Relu`` and the ``Add`` into them, so a
  bottleneck stays in NCHWc; ``Max`` has no NCHWc kernel, and the ``Max``
  form converted layouts around every PReLU (175 ``ReorderOutput`` and 81
  ``ReorderInput`` per run, 12 ms of 49 in its profile; this form: 19 and 9).
  Applied where :func:`_nchwc_channels` forecasts ``x`` as blocked (105 of
  the shipped model's 113 PReLU layers; the others keep :func:`max_prelu`).
* :func:`pad_conv`: the downsampling bottleneck's zero ``Pad`` of the channel
  axis as a 1x1 ``Conv`` by ``[I; 0]`` (``Pad`` has no NCHWc kernel, and the
  residual chain starts there): ``1 * x + 0 * ...`` is ``x`` and the padded
  channels ``+-0``, for finite inputs (an infinity would give NaN there).

* :func:`labels_head`: the class labels as ``C - ReduceMax(Where(Equal(L,
  ReduceMax(L)), [C, C-1, ..., 1], 0))`` over the class axis, cast to
  uint8, instead of ``ArgMax`` (OpenVINO runs ArgMax as a ``TopK``, 23% of
  its INT8 time in issue 30's profile) or a host argmax of the logits (a
  copy of the logits and NumPy's strided argmax). Max and Equal are exact;
  the weight of the first class that reaches the maximum is the largest
  among the maxima, so the result is ``argmax``'s, ties to the first index.
  OpenVINO's form takes both maxima as an element-wise ``Max`` of the
  class planes (``Split`` of the logits seen as ``(N, C, H*W)``), which it
  runs in place and vectorised: a third of the time of the earlier
  ``(C, 1, 1)`` ``MaxPool`` over ``(N, 1, C, H, W)``, itself half of a
  channel ``ReduceMax``. ONNX Runtime keeps the graph's ``ArgMax``, which
  its profiler puts at a third of the head's time.
* :func:`row_pair_pool`: a 2x2/2 ``MaxPool`` of a graph input with fewer
  than 16 channels (the initial block's pooling of the image) over the
  input seen as ``(N, C*H/2, 2, W)``: every window holds the same four
  values, so the maxima are the same numbers. OpenVINO pools a 3-channel
  map in its 16-channel blocked layout, after a conversion that cost more
  than the pooling.

All ops used are in the ONNX default domain and TensorRT-native, but the
TensorRT path keeps the graph ``enet-export`` wrote; these forms are applied
in memory when a CPU backend loads a model (:func:`cpu_form`). Tests check
each against the original graph in ONNX Runtime (logits and argmax). Only
numpy and onnx are imported: running an ``.onnx`` needs no torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)

#: Space-to-depth permutation of the mask form's encoder, and its inverse in the decoder.
_S2D_PERM = [0, 1, 3, 5, 2, 4]
_D2S_PERM = [0, 1, 4, 2, 5, 3]
#: First-maximum tie break: row-major window order (0,0), (0,1), (1,0), (1,1) -> distinct weights.
_WINDOW_WEIGHTS = np.array([[8.0, 4.0], [2.0, 1.0]], dtype=np.float32).reshape(1, 1, 2, 2)

#: Rewrites per CPU runtime, in order; chosen by measurement (docs/bench.md). ``ort-fast``: ``nchwc_prelu`` first
#: (PReLUs on blocked tensors), ``max_prelu`` for the rest; the backend skips the NCHWc ones off x86-64.
FORMS: dict[str, tuple[str, ...]] = {
    "openvino": ("select_unpool", "rank4_prelu_slopes", "row_pair_pool", "labels_head_split"),
    "ort-fast": ("select_unpool", "mul_unpool", "pad_conv", "nchwc_prelu", "max_prelu"),
}


class _Graph:
    """Producer/consumer index over a graph's nodes (rebuilt after each rewrite)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        g = model.graph
        self.producer = {o: n for n in g.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.initializers = {i.name: i for i in g.initializer}
        self.graph_outputs = {o.name for o in g.output}

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant node output, else None."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _used_names(model: onnx.ModelProto) -> set[str]:
    used = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.initializer}
    return used | {n.name for n in model.graph.node}


def _fresh(model: onnx.ModelProto, base: str, used: set[str] | None = None) -> str:
    """A tensor/node name not used in ``model`` (nor in ``used``, when given: then it is added there)."""
    if used is None:
        used = _used_names(model)
    name, k = base, 0
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def _replace_nodes(model: onnx.ModelProto, remove: set[int], insert_after: dict[int, list[onnx.NodeProto]]) -> None:
    """Drop nodes (by id) and insert new ones after given nodes, keeping topological order."""
    nodes: list[onnx.NodeProto] = []
    for n in model.graph.node:
        if id(n) not in remove:
            nodes.append(onnx.NodeProto.FromString(n.SerializeToString()))
        for extra in insert_after.get(id(n), []):
            nodes.append(extra)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _set_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    """Make ``nodes`` the graph's nodes, in order (copied first: some may be the graph's own, which
    clearing the repeated field would leave detached or empty)."""
    new = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
    del model.graph.node[:]
    model.graph.node.extend(new)


def _rewrite_each(model: onnx.ModelProto,
                  rewrite: Callable[[onnx.NodeProto, int], list[onnx.NodeProto] | None]) -> int:
    """Each node of ``model`` (a copy the caller owns) through ``rewrite(node, changed so far)``: the
    nodes that replace it, or None to keep it. The graph gets the new node list when any changed;
    returns how many did."""
    nodes: list[onnx.NodeProto] = []
    count = 0
    for n in model.graph.node:
        new = rewrite(n, count)
        if new is None:
            nodes.append(n)
        else:
            nodes += new
            count += 1
    if count:
        _set_nodes(model, nodes)
    return count


def _is_s2d(node: onnx.NodeProto) -> bool:
    return node.op_type == "Transpose" and list(_attr(node, "perm", [])) == _S2D_PERM


def _backward_cone(g: _Graph, start: str, stop: set[str], *, stop_at_s2d: bool = False) -> list[onnx.NodeProto]:
    """Nodes that ``start`` depends on, not walking past tensors in ``stop`` (nor past a
    space-to-depth Transpose with ``stop_at_s2d``: it is included, its inputs are not)."""
    seen: dict[int, onnx.NodeProto] = {}
    todo = [start]
    while todo:
        t = todo.pop()
        if t in stop:
            continue
        node = g.producer.get(t)
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        if not (stop_at_s2d and _is_s2d(node)):
            todo.extend(i for i in node.input if i)
    return list(seen.values())


def _static_hw(model: onnx.ModelProto, tensor: str) -> tuple[int, int] | None:
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        if vi.name == tensor:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:]):
                return int(dims[2].dim_value), int(dims[3].dim_value)
    return None


def _decoders_by_mask(model: onnx.ModelProto, g: _Graph) -> dict[str, list[tuple]]:
    """The mask-form unpoolings, grouped by the encoder mask they read.

    A decoder is ``Where(mask, Unsqueeze(y), 0) -> Reshape -> Transpose(d2s) -> Reshape``;
    returns ``{mask tensor: [(where, unsqueeze, [reshape, transpose, reshape]), ...]}``.
    """
    masks: dict[str, list[tuple]] = {}
    for w in model.graph.node:
        if w.op_type != "Where":
            continue
        unsq = g.producer.get(w.input[1])
        chain = []
        t = w.output[0]
        for op in ("Reshape", "Transpose", "Reshape"):
            cons = g.consumers.get(t, [])
            if len(cons) != 1 or cons[0].op_type != op:
                break
            chain.append(cons[0])
            t = cons[0].output[0]
        if (unsq is None or unsq.op_type != "Unsqueeze" or len(chain) != 3
                or list(_attr(chain[1], "perm", [])) != _D2S_PERM):
            continue
        masks.setdefault(w.input[0], []).append((w, unsq, chain))
    return masks


@dataclass
class _Encoder:
    """One matched mask-form pooling: its input ``x`` (static ``h`` x ``w``), first Reshape, ReduceMax and cone."""

    x: str
    r0: onnx.NodeProto
    rmax: onnx.NodeProto
    cone_ids: set[int]
    h: int
    w: int


def _match_encoder(model: onnx.ModelProto, g: _Graph, m5: str, decs: list[tuple]) -> _Encoder | None:
    """The encoder pattern that computes mask ``m5``, or None when the graph differs (left unchanged).

    X -> Reshape -> Transpose(s2d) -> Reshape -> R5 -> ReduceMax(axis 2) = P, Equal(R5, P) ... -> m5, with no
    intermediate leaving the pattern (only P and the mask, read by ``decs`` alone).
    """
    transposes = [n for n in _backward_cone(g, m5, set(), stop_at_s2d=True) if _is_s2d(n)]
    if len(transposes) != 1:
        return None
    r0 = g.producer.get(transposes[0].input[0])
    if r0 is None or r0.op_type != "Reshape":
        return None
    x = r0.input[0]
    cone = [n for n in _backward_cone(g, m5, {x}) if n.op_type != "Constant"]
    rmax = [n for n in cone if n.op_type == "ReduceMax"]
    if len(rmax) != 1 or int(_attr(rmax[0], "keepdims", 1)) != 0:
        return None
    axes = _attr(rmax[0], "axes") or (list(g.const(rmax[0].input[1])) if len(rmax[0].input) > 1 else None)
    if axes is None or [int(a) for a in axes] != [2]:
        return None
    pooled = rmax[0].output[0]
    cone_ids = {id(n) for n in cone}
    internal = {o for n in cone for o in n.output} - {pooled, m5}
    leaks = [t for t in internal if t in g.graph_outputs
             or any(id(c) not in cone_ids for c in g.consumers.get(t, []))]
    dec_ids = {id(n) for d in decs for n in (d[0], d[1], *d[2])}
    if leaks or any(id(c) not in dec_ids for c in g.consumers.get(m5, [])) or m5 in g.graph_outputs:
        return None
    hw = _static_hw(model, x)
    if hw is None or hw[0] % 2 or hw[1] % 2:
        return None
    return _Encoder(x, r0, rmax[0], cone_ids, *hw)


class _SelectBuilder:
    """Makes the select-form nodes (shared constants: zero, the x2 scales, the window weights)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        self.zero = _fresh(model, "cpu_graph/zero")
        self.scales = _fresh(model, "cpu_graph/up2_scales")
        self.weights = _fresh(model, "cpu_graph/window_weights")
        self.inits: list[onnx.TensorProto] = []

    def upsample(self, src: str, dst: str, name: str) -> onnx.NodeProto:
        if self.opset >= 13:
            return helper.make_node("Resize", [src, "", self.scales], [dst], name=name, mode="nearest",
                                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        return helper.make_node("Resize", [src, "", self.scales], [dst], name=name, mode="nearest")  # pragma: no cover

    def encoder(self, enc: _Encoder, tag: str) -> tuple[list[onnx.NodeProto], str]:
        """MaxPool plus the full-resolution first-maximum mask; returns the nodes and the mask's name."""
        x, pooled = enc.x, enc.rmax.output[0]
        wfull = _fresh(self.model, f"{tag}/weights_tiled")
        self.inits.append(numpy_helper.from_array(np.array([1, 1, enc.h // 2, enc.w // 2], dtype=np.int64),
                                                  wfull + "_repeats"))
        up_p, eq, s, smax, up_s, mask = (f"{tag}/{k}" for k in ("up_max", "is_max", "score", "window_score",
                                                              "up_window_score", "first_max"))
        return [
            helper.make_node("MaxPool", [x], [pooled], name=f"{tag}/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
            self.upsample(pooled, up_p, f"{tag}/ResizeMax"),
            helper.make_node("Equal", [x, up_p], [eq], name=f"{tag}/Equal"),
            helper.make_node("Tile", [self.weights, wfull + "_repeats"], [wfull], name=f"{tag}/Tile"),
            helper.make_node("Where", [eq, wfull, self.zero], [s], name=f"{tag}/Score"),
            helper.make_node("MaxPool", [s], [smax], name=f"{tag}/MaxScore", kernel_shape=[2, 2], strides=[2, 2]),
            self.upsample(smax, up_s, f"{tag}/ResizeScore"),
            helper.make_node("Equal", [s, up_s], [mask], name=f"{tag}/FirstMax"),
        ], mask

    def decoder(self, y: str, out: str, mask: str, tag: str) -> list[onnx.NodeProto]:
        """Unpooling as ``Where(mask, nearest-upsampled y, 0)``."""
        return [self.upsample(y, f"{tag}/up", f"{tag}/Resize"),
                helper.make_node("Where", [mask, f"{tag}/up", self.zero], [out], name=f"{tag}/Place")]

    def constants(self) -> list[onnx.TensorProto]:
        return self.inits + [numpy_helper.from_array(np.array(0.0, dtype=np.float32), self.zero),
                             numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), self.scales),
                             numpy_helper.from_array(_WINDOW_WEIGHTS, self.weights)]


def select_unpool(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Rewrite each mask-form pool/unpool pair into the full-resolution select form (module docstring).

    Args:
        model: an ONNX model from ``enet-export`` (any precision; Q/DQ nodes
            around convolutions are left alone). Not modified.

    Returns:
        ``(new model, number of encoder masks rewritten)``; a graph without
        the mask form (``--unpool native``, or a pattern this module does not
        recognise) comes back unchanged with 0.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    build = _SelectBuilder(model)
    remove: set[int] = set()
    insert_after: dict[int, list[onnx.NodeProto]] = {}
    rewritten = 0
    for m5, decs in _decoders_by_mask(model, g).items():
        enc = _match_encoder(model, g, m5, decs)
        if enc is None:
            continue
        name = enc.rmax.name
        tag = name.rsplit("/", 1)[0] + "/select" if "/" in name else f"select_{rewritten}"
        insert_after[id(enc.r0)], mask = build.encoder(enc, tag)
        remove |= enc.cone_ids
        rewritten += 1
        for where, unsq, chain in decs:
            out = chain[-1].output[0]
            dtag = where.name.rsplit("/", 1)[0] + "/select" if "/" in where.name else f"unpool_{out}"
            remove |= {id(where), id(unsq), *(id(n) for n in chain)}
            insert_after[id(chain[-1])] = build.decoder(unsq.input[0], out, mask, dtag)
    if not rewritten:
        return model, 0
    # the replaced nodes are inserted where the removed ones were (after the first Reshape of the
    # encoder, after the last Reshape of the decoder), so their inputs are defined before them
    _replace_nodes(model, remove, insert_after)
    model.graph.initializer.extend(build.constants())
    _prune_unused(model)
    return model, rewritten


def _prune_unused(model: onnx.ModelProto) -> None:
    """Drop Constant nodes and initializers nothing reads any more."""
    while True:
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if n.op_type == "Constant" and not set(n.output) & used]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def rank4_prelu_slopes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """PRelu slopes ``(C, 1, 1)`` -> ``(1, C, 1, 1)`` (same broadcast); returns ``(model, slopes changed)``."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    done: set[str] = set()
    for n in model.graph.node:
        if n.op_type != "PRelu" or len(n.input) < 2 or n.input[1] in done:
            continue
        init = g.initializers.get(n.input[1])
        if init is None or len(init.dims) != 3 or list(init.dims[1:]) != [1, 1]:
            continue
        value = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(value.reshape(1, -1, 1, 1), init.name))
        done.add(init.name)
    return model, len(done)


def _rewrite_prelu(model: onnx.ModelProto, *, two_op: bool) -> tuple[onnx.ModelProto, int]:
    """Every ``PRelu`` in the four-op form, or (``two_op``) in the ``Max``/``Min`` form where it applies."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    zero = _fresh(model, "cpu_graph/prelu_zero")
    four = 0

    def one(n: onnx.NodeProto, done: int) -> list[onnx.NodeProto] | None:
        nonlocal four
        if n.op_type != "PRelu":
            return None
        x, s, out = n.input[0], n.input[1], n.output[0]
        tag = n.name or f"prelu_{done + 1}"
        slope = g.const(s) if two_op else None
        op = None if slope is None else "Max" if (slope <= 1).all() else "Min" if (slope >= 1).all() else None
        if op is None:
            four += 1
            return [
                helper.make_node("Relu", [x], [f"{tag}/pos"], name=f"{tag}/Relu"),
                helper.make_node("Min", [x, zero], [f"{tag}/neg"], name=f"{tag}/Min"),
                helper.make_node("Mul", [f"{tag}/neg", s], [f"{tag}/neg_scaled"], name=f"{tag}/Mul"),
                helper.make_node("Add", [f"{tag}/pos", f"{tag}/neg_scaled"], [out], name=f"{tag}/Add"),
            ]
        return [
            helper.make_node("Mul", [x, s], [f"{tag}/scaled"], name=f"{tag}/Mul"),
            helper.make_node(op, [x, f"{tag}/scaled"], [out], name=f"{tag}/{op}"),
        ]

    count = _rewrite_each(model, one)
    if four:
        model.graph.initializer.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), zero))
    log.debug("%d PRelu rewritten, %d in the four-op form", count, four)
    return model, count


def decompose_prelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``PRelu(x, s)`` -> ``Relu(x) + Min(x, 0) * s`` (exact, see module docstring); returns ``(model, count)``."""
    return _rewrite_prelu(model, two_op=False)


def max_prelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``PRelu(x, s)`` -> ``Max(x, x * s)`` (all ``s <= 1``) or ``Min(x, x * s)`` (all ``s >= 1``).

    Exact (module docstring). A layer with slopes on both sides of 1, or a
    slope that is not a constant, gets :func:`decompose_prelu`'s form.
    Returns ``(model, PRelu nodes rewritten)``. Two ops instead of four: the
    shipped model in ONNX Runtime ran 15-20% faster than with the four-op
    form at 480x360 (docs/bench.md).
    """
    return _rewrite_prelu(model, two_op=True)


def mul_unpool(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """The select form's ``Where(mask, v, 0)`` -> ``Mul(v, Cast(mask, float))`` (module docstring).

    Only the ``Where`` nodes :func:`select_unpool` wrote (``.../Place`` and
    ``.../Score``, whose third input is its scalar zero) change. Returns
    ``(new model, count)``.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)

    def one(n: onnx.NodeProto, _: int) -> list[onnx.NodeProto] | None:
        zero = g.const(n.input[2]) if n.op_type == "Where" and len(n.input) == 3 else None
        if (zero is None or zero.shape != () or float(zero) != 0.0 or not n.name.endswith(("/Place", "/Score"))
                or not n.input[2].startswith("cpu_graph/zero")):
            return None
        weight = f"{n.name}/mask_f"
        cast = (helper.make_node("CastLike", [n.input[0], n.input[1]], [weight], name=f"{n.name}/Cast") if opset >= 15
                else helper.make_node("Cast", [n.input[0]], [weight], name=f"{n.name}/Cast", to=onnx.TensorProto.FLOAT))
        return [cast, helper.make_node("Mul", [n.input[1], weight], [n.output[0]], name=f"{n.name}/Mul")]

    count = _rewrite_each(model, one)
    if count:
        _prune_unused(model)
    return model, count


#: ONNX Runtime's NCHWc block on AVX-512 (8 on AVX2): channel counts it keeps in NCHWc are multiples of it.
_NCHWC_BLOCK = 16


def _nchwc_channels(model: onnx.ModelProto) -> dict[str, int]:
    """Tensors ONNX Runtime's NCHWc transformer would keep in its blocked layout -> their channels.

    A static forecast of ``onnxruntime/core/optimizer/nchwc_transformer.cc``
    (ORT 1.32) on this graph: ``Conv`` with constant weights and block-aligned
    channels (depthwise included), ``MaxPool``/``AveragePool`` on aligned
    channels, ``Add``/``Sum``/``Mul`` whose inputs are all blocked (``Mul``
    also by a per-channel constant, which ORT runs as a depthwise ``Conv``),
    ``Relu``/``Sigmoid``/``Tanh``, channel ``Concat`` of aligned inputs,
    ``BatchNormalization`` and nearest ``Resize``. ``PRelu`` counts as blocked
    when its input is (:func:`nchwc_prelu` rewrites it so). Only a speed
    heuristic: a wrong guess costs time, never exactness.
    """
    g = _Graph(model)
    b = _NCHWC_BLOCK
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {vi.name: vi.type.tensor_type.shape.dim for vi in [*inferred.graph.value_info, *inferred.graph.input]}

    def static_channels(t: str) -> int | None:
        d = dims.get(t)
        return int(d[1].dim_value) if d is not None and len(d) == 4 and d[1].HasField("dim_value") else None

    blocked: dict[str, int] = {}
    for n in model.graph.node:
        op, ins = n.op_type, [i for i in n.input if i]
        c: int | None = None
        if op == "Conv":
            w = g.const(n.input[1])
            groups = int(_attr(n, "group", 1))
            if w is not None and w.ndim == 4 and w.dtype == np.float32:
                out, per_group = int(w.shape[0]), int(w.shape[1])
                if groups == 1 and (per_group < b or per_group % b == 0):
                    c = out
                elif groups > 1 and out % b == 0 and (
                        (per_group == 1 and out == groups) or (per_group % b == 0 and (out // groups) % b == 0)):
                    c = out
        elif op in ("MaxPool", "AveragePool") and len(n.output) == 1:
            ch = blocked.get(n.input[0], static_channels(n.input[0]))
            c = ch if ch is not None and ch % b == 0 else None
        elif op in ("Add", "Sum", "Mul") and ins:
            chans = {blocked.get(i) for i in ins}
            if len(chans) == 1 and None not in chans:
                c = chans.pop()
            elif op == "Mul" and len(ins) == 2 and (ins[0] in blocked) != (ins[1] in blocked):
                x, k = (ins[0], g.const(ins[1])) if ins[0] in blocked else (ins[1], g.const(ins[0]))
                if k is not None and k.size == blocked[x] and k.ndim >= 3 and k.shape[-3] == k.size:
                    c = blocked[x]
        elif op in ("Relu", "Sigmoid", "Tanh", "BatchNormalization", "PRelu") and ins[0] in blocked:
            c = blocked[ins[0]]
        elif op == "Concat" and int(_attr(n, "axis", 0)) == 1 and all(blocked.get(i, 1) % b == 0 for i in ins):
            c = sum(blocked[i] for i in ins)
        elif op == "Resize" and ins[0] in blocked and len(n.input) == 3 and _nearest_floor(n):
            scales = g.const(n.input[2])  # integer spatial scales only
            if scales is not None and scales.shape == (4,) and list(scales[:2]) == [1, 1] and all(
                    v >= 1 and float(int(v)) == v for v in scales[2:]):
                c = blocked[ins[0]]
        if c is not None:
            blocked[n.output[0]] = c
    return blocked


def _nearest_floor(node: onnx.NodeProto) -> bool:
    """A ``Resize`` that ONNX Runtime's NCHWc ``Upsample`` takes: nearest, asymmetric, floor."""
    def text(name: str, default: str) -> str:
        v = _attr(node, name, default)
        return v.decode() if isinstance(v, bytes) else str(v)

    return (text("mode", "nearest") == "nearest"
            and text("coordinate_transformation_mode", "half_pixel") == "asymmetric"
            and text("nearest_mode", "round_prefer_floor") == "floor")


def nchwc_prelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``PRelu(x, s)`` -> ``Relu(x) + Relu(x * -1) * -s`` where ONNX Runtime keeps ``x`` in NCHWc.

    Exact: ``x * -1`` and ``Relu`` are exact; for ``x >= 0`` the sum is
    ``x + (+-0)``, for ``x < 0`` it is ``0 + (-x) * (-s)``: the one rounding
    ``PRelu`` makes. ONNX Runtime runs each per-channel ``Mul`` as a
    depthwise 1x1 NCHWc ``Conv``, fuses the first ``Relu`` and the ``Add``
    into those, and keeps the whole bottleneck in its blocked layout, where
    :func:`max_prelu`'s ``Max`` (no NCHWc kernel) converts layouts around
    every PReLU. Only a ``PRelu`` whose input :func:`_nchwc_channels`
    forecasts as blocked and whose slope is a ``(C, 1, 1)`` or ``(1, C, 1, 1)``
    constant changes; run :func:`max_prelu` after it for the others.
    Returns ``(new model, count)``.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    blocked = _nchwc_channels(model)
    used = _used_names(model)
    inits: list[onnx.TensorProto] = []

    def one(n: onnx.NodeProto, done: int) -> list[onnx.NodeProto] | None:
        s = g.const(n.input[1]) if n.op_type == "PRelu" and len(n.input) > 1 else None
        c = blocked.get(n.input[0]) if s is not None else None
        if c is None or s.dtype != np.float32 or s.size != c or s.ndim not in (3, 4) or s.shape[-3] != c:
            return None
        x, out = n.input[0], n.output[0]
        tag = n.name or f"prelu_{done + 1}"
        minus, slope = _fresh(model, f"{tag}/minus_one", used), _fresh(model, f"{tag}/minus_slope", used)
        neg, neg_part, scaled, pos = (_fresh(model, f"{tag}/{k}", used)
                                      for k in ("negated", "neg_part", "scaled", "pos"))
        inits.extend([numpy_helper.from_array(np.full((c, 1, 1), -1.0, np.float32), minus),
                      numpy_helper.from_array((-s).reshape(c, 1, 1).astype(np.float32), slope)])
        return [
            helper.make_node("Mul", [x, minus], [neg], name=f"{tag}/Negate"),
            helper.make_node("Relu", [neg], [neg_part], name=f"{tag}/NegPart"),
            helper.make_node("Mul", [neg_part, slope], [scaled], name=f"{tag}/Scale"),
            helper.make_node("Relu", [x], [pos], name=f"{tag}/PosPart"),
            helper.make_node("Add", [pos, scaled], [out], name=f"{tag}/Add"),
        ]

    count = _rewrite_each(model, one)
    if count:
        model.graph.initializer.extend(inits)
        _prune_unused(model)
    log.debug("%d PRelu in the NCHWc form", count)
    return model, count


def pad_conv(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A zero ``Pad`` of the channel axis (the downsampling bottleneck's main branch) -> 1x1 ``Conv`` by ``[I; 0]``.

    ``Pad`` has no NCHWc kernel in ONNX Runtime, so the residual chain that
    starts there runs in NCHW with layout conversions around it; a 1x1
    ``Conv`` keeps it blocked. Each output is ``1 * x_c`` plus products by 0
    (``+-0``), so the values are the padded input's for finite inputs (an
    infinite or NaN input would make every padded channel NaN; real
    activations are finite). Only constant-mode, zero-valued pads of the
    channel end of a 4-D input with static channels change. Returns
    ``(new model, count)``.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    blocked = _nchwc_channels(model)
    inits: list[onnx.TensorProto] = []

    def one(n: onnx.NodeProto, _: int) -> list[onnx.NodeProto] | None:
        pads = g.const(n.input[1]) if n.op_type == "Pad" and len(n.input) > 1 else None
        value = g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else np.float32(0.0)
        mode = _attr(n, "mode", b"constant")
        c = blocked.get(n.input[0])
        if (pads is None or value is None or c is None or pads.shape != (8,) or float(value) != 0.0
                or mode not in (b"constant", "constant") or any(int(pads[i]) for i in (0, 1, 2, 3, 4, 6, 7))
                or int(pads[5]) <= 0 or len(n.input) > 3):
            return None
        weight = np.zeros((c + int(pads[5]), c, 1, 1), np.float32)
        weight[np.arange(c), np.arange(c)] = 1.0
        name = _fresh(model, f"{n.name or 'pad'}/embed")
        inits.append(numpy_helper.from_array(weight, name))
        return [helper.make_node("Conv", [n.input[0], name], [n.output[0]], name=f"{n.name or 'pad'}/Embed",
                                 kernel_shape=[1, 1])]

    count = _rewrite_each(model, one)
    if count:
        model.graph.initializer.extend(inits)
        _prune_unused(model)
    return model, count


#: Name of the uint8 labels output :func:`labels_head` adds to a model that has logits only.
LABELS_OUTPUT = "labels"


#: Fewer channels than this: :func:`row_pair_pool` rewrites the layer's 2x2 pooling.
_FEW_CHANNELS = 16


def _static_chw(model: onnx.ModelProto, tensor: str) -> tuple[int, int, int] | None:
    """Static ``(C, H, W)`` of a 4-D graph input (the only tensors :func:`row_pair_pool` needs)."""
    for vi in model.graph.input:
        if vi.name == tensor:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == 4 and all(d.HasField("dim_value") for d in dims[1:]):
                return int(dims[1].dim_value), int(dims[2].dim_value), int(dims[3].dim_value)
    return None


def row_pair_pool(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A 2x2/2 ``MaxPool`` of a graph input with few channels, as one over row pairs (module docstring).

    ``(N, C, H, W)`` (``C`` < 16, ``H`` and ``W`` even) is seen as ``(N, C*H/2,
    2, W)``; each 2x2 window then still holds the same four values of one
    channel, so the maxima are the same numbers. OpenVINO converts a
    3-channel map into its 16-channel blocked layout before pooling it
    (the initial block's pooling of the image, about 1.5 ms at 480x360,
    docs/bench.md); with ``C*H/2`` channels it pools in place. Returns
    ``(new model, pools rewritten)``; the input is not modified.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())

    def one(node: onnx.NodeProto, done: int) -> list[onnx.NodeProto] | None:
        chw = _static_chw(model, node.input[0]) if node.op_type == "MaxPool" and node.input else None
        plain = (len(node.output) == 1 and list(_attr(node, "kernel_shape", [])) == [2, 2]
                 and list(_attr(node, "strides", [1, 1])) == [2, 2] and not any(_attr(node, "pads", []))
                 and all(d == 1 for d in _attr(node, "dilations", [1, 1])) and not _attr(node, "ceil_mode", 0)
                 and _attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"))
        if chw is None or not plain or chw[0] >= _FEW_CHANNELS or chw[1] % 2 or chw[2] % 2:
            return None
        c, h, w = chw
        tag = _fresh(model, f"cpu_graph/row_pool{done}")
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array([-1, c * h // 2, 2, w], dtype=np.int64), f"{tag}/rows"),
            numpy_helper.from_array(np.array([-1, c, h // 2, w // 2], dtype=np.int64), f"{tag}/back"),
        ])
        return [
            helper.make_node("Reshape", [node.input[0], f"{tag}/rows"], [f"{tag}/pairs"], name=f"{tag}/Rows"),
            helper.make_node("MaxPool", [f"{tag}/pairs"], [f"{tag}/max"], name=f"{tag}/Pool",
                             kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Reshape", [f"{tag}/max", f"{tag}/back"], [node.output[0]], name=f"{tag}/Back"),
        ]

    return model, _rewrite_each(model, one)


def _logits_output(model: onnx.ModelProto) -> onnx.ValueInfoProto | None:
    return next((o for o in model.graph.output
                 if o.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)), None)


def labels_head(model: onnx.ModelProto, *, pool: bool = False, split: bool = False) -> tuple[onnx.ModelProto, int]:
    """uint8 class labels from the logits by the Max/Equal form (module docstring).

    ``pool``: the two maxima over the classes as ``MaxPool`` with a ``(C, 1, 1)``
    kernel on the logits seen as ``(N, 1, C, H, W)`` (static ``H``, ``W``;
    else the ``ReduceMax`` form): OpenVINO runs that as a vertical max over
    planes, about half the time of its channel ``ReduceMax`` in its
    per-layer counters (docs/bench.md). The same values either way for
    finite logits (ONNX Runtime's MaxPool starts from ``-FLT_MAX``, so a pixel
    whose logits are all ``-inf`` would get label ``C``).

    ``split``: the logits seen as ``(N, C, H*W)`` (static ``H``, ``W``), split
    into their ``C`` planes, and each maximum an element-wise ``Max`` of the
    planes. OpenVINO splits a planar tensor in place and fuses the ``Max``
    into one element-wise kernel, vectorised along the pixels; its pooling
    kernel takes the ``(C, 1, 1)`` window one pixel at a time (a third of
    the time in its per-layer counters, docs/bench.md). Same values as the
    other forms, ``-inf`` included.

    A graph with an integer labels output (``ArgMax`` over axis 1 of the
    logits, maybe through a ``Cast``): that output is computed the new way
    and becomes uint8 ``(N, H, W)``. A graph with logits only gains a
    ``labels`` output. The logits output stays. Returns ``(new model, 1)``,
    or the model unchanged with 0 when it has no 4-D float logits output,
    more than 255 classes, or a labels output computed some other way.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = _Graph(model)
    logits = _logits_output(model)
    dims = logits.type.tensor_type.shape.dim if logits is not None else []
    if logits is None or len(dims) != 4 or not dims[1].HasField("dim_value") or not 0 < dims[1].dim_value < 256:
        return model, 0
    classes = int(dims[1].dim_value)
    outputs = [o for o in model.graph.output if o is not logits]
    remove: set[int] = set()
    label_out = None
    for o in outputs:
        if o.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            continue
        node = g.producer.get(o.name)
        chain = []
        while node is not None and node.op_type == "Cast":
            chain.append(node)
            node = g.producer.get(node.input[0])
        if (node is None or node.op_type != "ArgMax" or node.input[0] != logits.name
                or int(_attr(node, "axis", 0)) != 1 or int(_attr(node, "select_last_index", 0))):
            return model, 0
        mine = {id(node), *(id(n) for n in chain)}
        if any(id(c) not in mine for n in (node, *chain[1:]) for c in g.consumers.get(n.output[0], [])):
            return model, 0  # an intermediate read elsewhere: leave the graph alone
        keepdims = int(_attr(node, "keepdims", 1))
        remove |= mine
        label_out = o
        break
    tag = _fresh(model, "cpu_graph/labels")
    name = label_out.name if label_out is not None else _fresh(model, LABELS_OUTPUT)
    weights, zero, count = f"{tag}/class_weights", f"{tag}/zero", f"{tag}/classes"
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)

    def reduce_max(src: str, dst: str, keep: int, nm: str) -> list[onnx.NodeProto]:
        if opset >= 18:
            return [helper.make_node("ReduceMax", [src, f"{tag}/axis"], [dst], name=nm, keepdims=keep)]
        return [helper.make_node("ReduceMax", [src], [dst], name=nm, keepdims=keep, axes=[1])]

    keep = keepdims if label_out is not None else 0
    h, w = dims[2], dims[3]
    static = h.HasField("dim_value") and w.HasField("dim_value")
    if split and static:
        hw = [int(h.dim_value), int(w.dim_value)]
        planes = [f"{tag}/class{c}" for c in range(classes)]
        scores = [f"{tag}/score{c}" for c in range(classes)]
        nodes = [
            helper.make_node("Reshape", [logits.name, f"{tag}/shape3"], [f"{tag}/flat"], name=f"{tag}/Flat"),
            helper.make_node("Split", [f"{tag}/flat", f"{tag}/ones"], planes, name=f"{tag}/Planes", axis=1),
            helper.make_node("Max", planes, [f"{tag}/max"], name=f"{tag}/Max"),
            helper.make_node("Equal", [f"{tag}/flat", f"{tag}/max"], [f"{tag}/is_max"], name=f"{tag}/IsMax"),
            helper.make_node("Where", [f"{tag}/is_max", weights, zero], [f"{tag}/score"], name=f"{tag}/Score"),
            helper.make_node("Split", [f"{tag}/score", f"{tag}/ones"], scores, name=f"{tag}/Scores", axis=1),
            helper.make_node("Max", scores, [f"{tag}/first3"], name=f"{tag}/First"),
            helper.make_node("Reshape", [f"{tag}/first3", f"{tag}/shape_out"], [f"{tag}/first"], name=f"{tag}/Back"),
            helper.make_node("Sub", [count, f"{tag}/first"], [f"{tag}/index"], name=f"{tag}/Index"),
            helper.make_node("Cast", [f"{tag}/index"], [name], name=f"{tag}/Cast", to=onnx.TensorProto.UINT8),
        ]
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array([-1, classes, hw[0] * hw[1]], dtype=np.int64), f"{tag}/shape3"),
            numpy_helper.from_array(np.ones(classes, dtype=np.int64), f"{tag}/ones"),
            numpy_helper.from_array(np.array([-1, *([1] if keep else []), *hw], dtype=np.int64), f"{tag}/shape_out"),
        ])
        weights_shape: tuple[int, ...] = (1, classes, 1)
        pool = False
    elif pool and static:
        hw = [int(h.dim_value), int(w.dim_value)]
        nodes = [
            helper.make_node("Reshape", [logits.name, f"{tag}/shape5"], [f"{tag}/planes"], name=f"{tag}/Planes"),
            helper.make_node("MaxPool", [f"{tag}/planes"], [f"{tag}/max"], name=f"{tag}/Max",
                             kernel_shape=[classes, 1, 1]),
            helper.make_node("Equal", [f"{tag}/planes", f"{tag}/max"], [f"{tag}/is_max"], name=f"{tag}/IsMax"),
            helper.make_node("Where", [f"{tag}/is_max", weights, zero], [f"{tag}/score"], name=f"{tag}/Score"),
            helper.make_node("MaxPool", [f"{tag}/score"], [f"{tag}/first5"], name=f"{tag}/First",
                             kernel_shape=[classes, 1, 1]),
            helper.make_node("Reshape", [f"{tag}/first5", f"{tag}/shape_out"], [f"{tag}/first"], name=f"{tag}/Back"),
            helper.make_node("Sub", [count, f"{tag}/first"], [f"{tag}/index"], name=f"{tag}/Index"),
            helper.make_node("Cast", [f"{tag}/index"], [name], name=f"{tag}/Cast", to=onnx.TensorProto.UINT8),
        ]
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array([-1, 1, classes, *hw], dtype=np.int64), f"{tag}/shape5"),
            numpy_helper.from_array(np.array([-1, *([1] if keep else []), *hw], dtype=np.int64), f"{tag}/shape_out"),
        ])
        weights_shape = (1, 1, classes, 1, 1)
    else:
        pool = split = False
        weights_shape = (1, classes, 1, 1)
    nodes = nodes if pool or split else [
        *reduce_max(logits.name, f"{tag}/max", 1, f"{tag}/Max"),
        helper.make_node("Equal", [logits.name, f"{tag}/max"], [f"{tag}/is_max"], name=f"{tag}/IsMax"),
        helper.make_node("Where", [f"{tag}/is_max", weights, zero], [f"{tag}/score"], name=f"{tag}/Score"),
        *reduce_max(f"{tag}/score", f"{tag}/first", keep, f"{tag}/First"),
        helper.make_node("Sub", [count, f"{tag}/first"], [f"{tag}/index"], name=f"{tag}/Index"),
        helper.make_node("Cast", [f"{tag}/index"], [name], name=f"{tag}/Cast", to=onnx.TensorProto.UINT8),
    ]
    kept = [onnx.NodeProto.FromString(n.SerializeToString()) for n in model.graph.node if id(n) not in remove]
    del model.graph.node[:]
    model.graph.node.extend(kept + nodes)
    model.graph.initializer.extend([
        numpy_helper.from_array(np.arange(classes, 0, -1, dtype=np.float32).reshape(weights_shape), weights),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), zero),
        numpy_helper.from_array(np.array(classes, dtype=np.float32), count),
    ])
    if opset >= 18 and not pool and not split:
        model.graph.initializer.append(numpy_helper.from_array(np.array([1], dtype=np.int64), f"{tag}/axis"))
    out = helper.make_tensor_value_info(name, onnx.TensorProto.UINT8, None)
    for d in [dims[0], *([None] if keep else []), dims[2], dims[3]]:
        dim = out.type.tensor_type.shape.dim.add()
        if d is None:
            dim.dim_value = 1
        else:
            dim.CopyFrom(d)
    if label_out is not None:
        label_out.CopyFrom(out)
    else:
        model.graph.output.append(out)
    _prune_unused(model)
    return model, 1


_REWRITES = {"select_unpool": select_unpool, "rank4_prelu_slopes": rank4_prelu_slopes,
             "decompose_prelu": decompose_prelu, "max_prelu": max_prelu, "labels_head": labels_head,
             "labels_head_pool": lambda m: labels_head(m, pool=True),
             "labels_head_split": lambda m: labels_head(m, split=True),
             "mul_unpool": mul_unpool, "row_pair_pool": row_pair_pool, "pad_conv": pad_conv,
             "nchwc_prelu": nchwc_prelu}


def cpu_form(model: onnx.ModelProto, runtime: str, *,
             skip: tuple[str, ...] = ()) -> tuple[onnx.ModelProto, dict[str, int]]:
    """The graph form for ``runtime`` (a key of :data:`FORMS`): its rewrites applied in order (but ``skip``).

    Returns:
        ``(new model, {rewrite: places changed})``; the input is not modified.

    Raises:
        KeyError: unknown runtime.
    """
    done: dict[str, int] = {}
    for name in FORMS[runtime]:
        if name not in skip:
            model, done[name] = _REWRITES[name](model)
    log.debug("%s graph form: %s", runtime, done)
    return model, done
