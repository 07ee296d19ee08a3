"""ENet (Paszke et al. 2016, arXiv 1606.02147), Table 1 layout.

Shape contract: ``ENet(x)`` takes float32 ``(N, 3, H, W)`` with ``H`` and
``W`` multiples of 8 and returns logits ``(N, C, H, W)``.

Unpooling comes in two interchangeable forms that share every weight:

* ``unpool="indices"``: ``MaxPool2d(return_indices=True)`` in the encoder and
  ``MaxUnpool2d`` in the decoder, as in the paper (Section 3, Figure 2).
* ``unpool="mask"``: an exact, indices-free form for export. The encoder keeps
  a boolean one-hot mask of each 2x2 window's first maximum (space-to-depth,
  equality with the window max, first-true selection); the decoder places each
  value with ``where`` and depth-to-space. It uses only Reshape, Transpose,
  ReduceMax, Equal, Not/And and Where, which TensorRT's ONNX parser runs
  natively, and picks the same element as PyTorch's max-pool (the first
  maximum in row-major window order), ties included, so both forms give
  bit-identical outputs.
"""

from __future__ import annotations

from typing import Literal, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from enet.transforms import check_input_size

UnpoolMode = Literal["indices", "mask"]
# What a downsampling bottleneck hands to its upsampling twin.
PoolMemory = Union[Tensor, tuple[Tensor, tuple[int, int]]]

ARCH_NAME = "enet"
ARCH_VERSION = 1


def _conv_bn_prelu(cin: int, cout: int, kernel: tuple[int, int], *, stride: int = 1,
                   padding: tuple[int, int] = (0, 0), dilation: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.PReLU(cout),
    ]


def window_first_max_mask(x: Tensor) -> tuple[Tensor, Tensor]:
    """2x2/stride-2 max-pool of ``x`` and the one-hot mask of each window's max.

    Args:
        x: ``(N, C, H, W)`` with even ``H`` and ``W``.

    Returns:
        ``pooled (N, C, H/2, W/2)`` and ``mask (N, C, 4, H/2, W/2)`` (bool),
        true at the first maximum of each window in row-major order
        (``(0,0), (0,1), (1,0), (1,1)``), the element PyTorch's max-pool index
        points at. Ties (e.g. an all-zero window after ReLU) pick the first.
    """
    n, c, h, w = x.shape
    # space-to-depth: (N, C, h, 2, w, 2) -> (N, C, 2, 2, h, w) -> (N, C, 4, h, w)
    s = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c, 4, h // 2, w // 2)
    pooled = s.amax(dim=2)
    eq = s == pooled.unsqueeze(2)
    e0, e1, e2, e3 = eq.unbind(dim=2)
    # first-true: position k wins only if no earlier position equals the max
    m1 = e1 & ~e0
    m2 = e2 & ~(e0 | e1)
    m3 = e3 & ~(e0 | e1 | e2)
    mask = torch.stack([e0, m1, m2, m3], dim=2)
    return pooled, mask


def unpool_with_mask(y: Tensor, mask: Tensor) -> Tensor:
    """Inverse of :func:`window_first_max_mask`: put ``y`` where ``mask`` is true.

    Args:
        y: ``(N, C, h, w)`` values to place.
        mask: ``(N, C, 4, h, w)`` bool one-hot over the 4 window positions.

    Returns:
        ``(N, C, 2h, 2w)``; zero (+0.0, as MaxUnpool2d) everywhere else.
    """
    n, c, h, w = y.shape
    placed = torch.where(mask, y.unsqueeze(2), torch.zeros((), dtype=y.dtype, device=y.device))
    return placed.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, 2 * h, 2 * w)


class InitialBlock(nn.Module):
    """Table 1 "initial": 3x3/2 conv (13 filters) || 2x2 max-pool, concat -> 16.

    ``(N, 3, H, W) -> (N, 16, H/2, W/2)``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck (Figure 2b), channels unchanged.

    1x1 projection to ``channels/4``, main conv, 1x1 expansion, each followed by
    BN + PReLU; spatial dropout; residual add; PReLU.

    Args:
        kind: ``"regular"`` (3x3), ``"dilated"`` (3x3, ``dilation``) or
            ``"asymmetric"`` (``asym x 1`` then ``1 x asym``).
    """

    def __init__(self, channels: int, *, kind: str = "regular", dilation: int = 1,
                 asym: int = 5, dropout: float = 0.1) -> None:
        super().__init__()
        internal = channels // 4
        if kind == "asymmetric":
            main = _conv_bn_prelu(internal, internal, (asym, 1), padding=(asym // 2, 0)) + _conv_bn_prelu(
                internal, internal, (1, asym), padding=(0, asym // 2))
        elif kind in ("regular", "dilated"):
            main = _conv_bn_prelu(internal, internal, (3, 3), padding=(dilation, dilation), dilation=dilation)
        else:
            raise ValueError(f"unknown bottleneck kind {kind!r}")
        self.kind, self.dilation = kind, dilation
        self.ext = nn.Sequential(
            *_conv_bn_prelu(channels, internal, (1, 1)),
            *main,
            *_conv_bn_prelu(internal, channels, (1, 1)),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.ext(x))


class DownsamplingBottleneck(nn.Module):
    """Downsampling bottleneck (Figure 2b with max-pooling on the main branch).

    Main branch: 2x2 max-pool (keeping indices or mask), channels zero-padded
    to ``out_channels``. Extension: 2x2/2 projection, 3x3 conv, 1x1 expansion.
    ``(N, Cin, H, W) -> (N, Cout, H/2, W/2)`` plus the pool memory for the
    matching :class:`UpsamplingBottleneck`.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float = 0.1,
                 unpool: UnpoolMode = "indices") -> None:
        super().__init__()
        internal = in_channels // 4
        self.in_channels, self.out_channels = in_channels, out_channels
        self.unpool = unpool
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.ext = nn.Sequential(
            *_conv_bn_prelu(in_channels, internal, (2, 2), stride=2),
            *_conv_bn_prelu(internal, internal, (3, 3), padding=(1, 1)),
            *_conv_bn_prelu(internal, out_channels, (1, 1)),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor) -> tuple[Tensor, PoolMemory]:
        memory: PoolMemory
        if self.unpool == "indices":
            main, indices = self.pool(x)
            memory = (indices, (x.shape[-2], x.shape[-1]))
        else:
            main, memory = window_first_max_mask(x)
        main = F.pad(main, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))
        return self.act(main + self.ext(x)), memory


class UpsamplingBottleneck(nn.Module):
    """Upsampling bottleneck: main 1x1 conv + BN then max-unpool; extension
    1x1, 3x3/2 transposed conv, 1x1.

    ``(N, Cin, h, w) -> (N, Cout, 2h, 2w)`` using the pool memory of the
    encoder's downsampling bottleneck with ``Cout`` input channels.
    """

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float = 0.1,
                 unpool: UnpoolMode = "indices") -> None:
        super().__init__()
        internal = in_channels // 4
        self.unpool = unpool
        self.main = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.max_unpool = nn.MaxUnpool2d(2, stride=2)
        self.ext = nn.Sequential(
            *_conv_bn_prelu(in_channels, internal, (1, 1)),
            nn.ConvTranspose2d(internal, internal, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(internal),
            nn.PReLU(internal),
            *_conv_bn_prelu(internal, out_channels, (1, 1)),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(out_channels)

    def forward(self, x: Tensor, memory: PoolMemory) -> Tensor:
        main = self.main(x)
        if self.unpool == "indices":
            indices, size = memory  # type: ignore[misc]
            main = self.max_unpool(main, indices, output_size=size)
        else:
            main = unpool_with_mask(main, memory)  # type: ignore[arg-type]
        return self.act(main + self.ext(x))


def _stage23(channels: int) -> list[nn.Module]:
    """Bottlenecks x.1 .. x.8 of stages 2 and 3 (Table 1)."""
    return [
        Bottleneck(channels),                              # x.1
        Bottleneck(channels, kind="dilated", dilation=2),  # x.2
        Bottleneck(channels, kind="asymmetric", asym=5),   # x.3
        Bottleneck(channels, kind="dilated", dilation=4),  # x.4
        Bottleneck(channels),                              # x.5
        Bottleneck(channels, kind="dilated", dilation=8),  # x.6
        Bottleneck(channels, kind="asymmetric", asym=5),   # x.7
        Bottleneck(channels, kind="dilated", dilation=16),  # x.8
    ]


class ENet(nn.Module):
    """ENet for ``num_classes`` classes (Table 1).

    Stage outputs for a 512x512 input: initial 16x256x256, stage 1 64x128x128,
    stages 2-3 128x64x64, stage 4 64x128x128, stage 5 16x256x256, full conv
    Cx512x512.

    Args:
        num_classes: output channels C.
        unpool: ``"indices"`` (paper, training) or ``"mask"`` (exact,
            indices-free, for export); switch later with :meth:`set_unpool`.
    """

    def __init__(self, num_classes: int = 11, *, unpool: UnpoolMode = "indices") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.initial = InitialBlock(3, 16)
        # Stage 1: spatial dropout 0.01 (Section 4, "Regularization")
        self.down1 = DownsamplingBottleneck(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*[Bottleneck(64, dropout=0.01) for _ in range(4)])
        # Stages 2-3: dropout 0.1 from bottleneck 2.0 on
        self.down2 = DownsamplingBottleneck(64, 128, dropout=0.1)
        self.stage2 = nn.Sequential(*_stage23(128))
        self.stage3 = nn.Sequential(*_stage23(128))
        # Stages 4-5: decoder
        self.up4 = UpsamplingBottleneck(128, 64, dropout=0.1)
        self.stage4 = nn.Sequential(Bottleneck(64), Bottleneck(64))
        self.up5 = UpsamplingBottleneck(64, 16, dropout=0.1)
        self.stage5 = nn.Sequential(Bottleneck(16))
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, stride=2, bias=True)
        self.set_unpool(unpool)

    @property
    def unpool(self) -> UnpoolMode:
        return self.down1.unpool

    def set_unpool(self, mode: UnpoolMode) -> ENet:
        """Switch between the two unpooling forms; weights are untouched."""
        if mode not in ("indices", "mask"):
            raise ValueError(f"unpool must be 'indices' or 'mask', not {mode!r}")
        for m in (self.down1, self.down2, self.up4, self.up5):
            m.unpool = mode
        return self

    def encode(self, x: Tensor) -> tuple[Tensor, PoolMemory, PoolMemory]:
        """Encoder (initial to stage 3): ``(N, 128, H/8, W/8)`` and the two pool memories."""
        check_input_size(x.shape[-2], x.shape[-1])
        x = self.initial(x)
        x, mem1 = self.down1(x)
        x = self.stage1(x)
        x, mem2 = self.down2(x)
        return self.stage3(self.stage2(x)), mem1, mem2

    def forward(self, x: Tensor) -> Tensor:
        x, mem1, mem2 = self.encode(x)
        x = self.stage4(self.up4(x, mem2))
        x = self.stage5(self.up5(x, mem1))
        return self.fullconv(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, height: int = 360, width: int = 640) -> int:
    """Multiply-accumulates x 2 of convolutions at ``height x width`` (Table 3 convention).

    The paper's 3.83 GFLOPs at 640x360 counts conv and deconv multiply-adds;
    BN, PReLU and pooling are negligible and left out here as well.
    """
    flops = 0

    def hook(m: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal flops
        assert isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        if isinstance(m, nn.Conv2d):
            flops += 2 * out.numel() // out.shape[0] * k
        else:  # each input pixel scatters to out_channels x kernel
            flops += 2 * inp[0].numel() // inp[0].shape[0] * m.out_channels * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return flops


def enet(*, num_classes: int | None = None, weights: str | None = None,
         unpool: UnpoolMode = "indices") -> ENet:
    """Builder, as torchvision's ``lraspp_mobilenet_v3_large(*, weights=None, num_classes=None)``.

    Args:
        num_classes: classes of a fresh model (default 11, CamVid); with
            ``weights`` it must match the checkpoint or be None.
        weights: path of an enet-rt checkpoint; its metadata stays available
            through :func:`enet.checkpoint.load_checkpoint`.
        unpool: unpooling form (see module docstring).
    """
    if weights is None:
        return ENet(11 if num_classes is None else num_classes, unpool=unpool)
    from enet.checkpoint import load_model

    model, _ = load_model(weights, num_classes=num_classes, unpool=unpool)
    return model
