"""ONNX MaxPool(indices) + MaxUnpool for ``--unpool native``.

PyTorch's ONNX exporters have no MaxUnpool: the TorchScript exporter fails on
``max_unpool2d`` and the dynamo exporter lowers it to ScatterND. For runtimes
that implement ONNX MaxUnpool (ONNX Runtime, OpenVINO) this module swaps the
pool and unpool of a model's downsampling/upsampling bottlenecks for a
matched pair of autograd functions whose ONNX symbolics are a plain
``MaxPool`` with both outputs and a ``MaxUnpool``.

Index conventions differ: PyTorch's ``max_pool2d`` indices are flat per
``(H*W)`` plane, ONNX's ``MaxPool`` indices (``storage_order=0``) are flat
over the whole ``N*C*H*W`` tensor, and each framework's unpool expects its
own. The pair keeps each side consistent: in eager PyTorch both run PyTorch's
kernels (per-plane indices), in the ONNX graph the MaxPool indices go
straight into MaxUnpool (whole-tensor indices), so no index ever crosses the
conventions and no conversion nodes are needed. ``tests/export`` checks this
with batch > 1, where a mix-up would scatter values into the wrong image.

TensorRT's parser rejects both (MaxPool's Indices output and MaxUnpool), so
this form is for ONNX Runtime/OpenVINO only; the default ``mask`` form is
exact and TensorRT-native.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enet.model import ENet


class _MaxPool2x2WithIndices(torch.autograd.Function):
    """2x2/2 max-pool returning (values, indices); ONNX: MaxPool with 2 outputs."""

    @staticmethod
    def forward(ctx, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return F.max_pool2d(x, 2, 2, return_indices=True)

    @staticmethod
    def symbolic(g, x):  # type: ignore[no-untyped-def]
        return g.op("MaxPool", x, kernel_shape_i=[2, 2], strides_i=[2, 2], outputs=2)


class _MaxUnpool2x2(torch.autograd.Function):
    """Inverse of :class:`_MaxPool2x2WithIndices`; ONNX: MaxUnpool.

    The output is ``(N, C, 2h, 2w)``, the MaxUnpool default
    ``(h - 1) * stride + kernel``, so the ONNX node needs no ``output_shape``
    input (ENet inputs are multiples of 8, every pooled size is exact).
    """

    @staticmethod
    def forward(ctx, y: Tensor, indices: Tensor) -> Tensor:  # type: ignore[override]
        # int(): under the TorchScript tracer sizes are tensors, and
        # F.max_unpool2d's Python size checks refuse those.
        size = [2 * int(y.shape[-2]), 2 * int(y.shape[-1])]
        return torch.ops.aten.max_unpool2d(y, indices, size)

    @staticmethod
    def symbolic(g, y, indices):  # type: ignore[no-untyped-def]
        return g.op("MaxUnpool", y, indices, kernel_shape_i=[2, 2], strides_i=[2, 2])


class OnnxMaxPool2d(nn.Module):
    """Drop-in for ``nn.MaxPool2d(2, 2, return_indices=True)``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _MaxPool2x2WithIndices.apply(x)


class OnnxMaxUnpool2d(nn.Module):
    """Drop-in for ``nn.MaxUnpool2d(2, 2)``; ``output_size`` must be twice the input."""

    def forward(self, x: Tensor, indices: Tensor, output_size: object = None) -> Tensor:
        return _MaxUnpool2x2.apply(x, indices)


def native_unpool_model(model: ENet) -> ENet:
    """A copy of ``model`` in ``indices`` form whose pool/unpool export as ONNX MaxPool/MaxUnpool.

    Args:
        model: an ENet in either unpool form; it is not modified.

    Returns:
        A deep copy in eval mode, numerically identical to ``model``.
    """
    m = copy.deepcopy(model).set_unpool("indices").eval()
    for down in (m.down1, m.down2):
        down.pool = OnnxMaxPool2d()
    for up in (m.up4, m.up5):
        up.max_unpool = OnnxMaxUnpool2d()
    return m
