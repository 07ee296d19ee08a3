"""ENet architecture: Table 1 shapes, parameter count, unpooling forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from enet.errors import ShapeError
from enet.model import (ENet, Bottleneck, DownsamplingBottleneck, UpsamplingBottleneck, count_flops,
                        count_parameters, unpool_with_mask, window_first_max_mask)


def _stage_shapes(model: ENet, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    x = model.initial(x); shapes["initial"] = tuple(x.shape)
    x, m1 = model.down1(x); shapes["1.0"] = tuple(x.shape)
    x = model.stage1(x); shapes["stage1"] = tuple(x.shape)
    x, m2 = model.down2(x); shapes["2.0"] = tuple(x.shape)
    x = model.stage2(x); shapes["stage2"] = tuple(x.shape)
    x = model.stage3(x); shapes["stage3"] = tuple(x.shape)
    x = model.up4(x, m2); shapes["4.0"] = tuple(x.shape)
    x = model.stage4(x); shapes["stage4"] = tuple(x.shape)
    x = model.up5(x, m1); shapes["5.0"] = tuple(x.shape)
    x = model.stage5(x); shapes["stage5"] = tuple(x.shape)
    shapes["fullconv"] = tuple(model.fullconv(x).shape)
    return shapes


def test_table1_output_sizes_stage_by_stage():
    # Table 1 lists output sizes for a 512x512 input.
    model = ENet(11).eval()
    with torch.no_grad():
        s = _stage_shapes(model, torch.zeros(1, 3, 512, 512))
    assert s == {
        "initial": (1, 16, 256, 256), "1.0": (1, 64, 128, 128), "stage1": (1, 64, 128, 128),
        "2.0": (1, 128, 64, 64), "stage2": (1, 128, 64, 64), "stage3": (1, 128, 64, 64),
        "4.0": (1, 64, 128, 128), "stage4": (1, 64, 128, 128), "5.0": (1, 16, 256, 256),
        "stage5": (1, 16, 256, 256), "fullconv": (1, 11, 512, 512),
    }


def test_table1_bottleneck_layout():
    model = ENet(11)
    assert len(model.stage1) == 4 and len(model.stage4) == 2 and len(model.stage5) == 1
    for stage in (model.stage2, model.stage3):
        kinds = [(b.kind, b.dilation) for b in stage]
        assert kinds == [("regular", 1), ("dilated", 2), ("asymmetric", 1), ("dilated", 4),
                         ("regular", 1), ("dilated", 8), ("asymmetric", 1), ("dilated", 16)]
        asym = stage[2].ext
        ks = [m.kernel_size for m in asym if isinstance(m, nn.Conv2d)]
        assert ks == [(1, 1), (5, 1), (1, 5), (1, 1)]
    # initial block: 13 conv filters, 3x3 stride 2, concatenated with pooling -> 16
    assert model.initial.conv.out_channels == 13 and model.initial.conv.kernel_size == (3, 3)
    assert model.initial.conv.stride == (2, 2)
    # projections without bias; downsampling projection is 2x2 stride 2
    assert model.down1.ext[0].kernel_size == (2, 2) and model.down1.ext[0].stride == (2, 2)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert isinstance(model.up4.max_unpool, nn.MaxUnpool2d)


def test_prelu_and_spatial_dropout_rates():
    model = ENet(11)
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())
    assert sum(isinstance(m, nn.PReLU) for m in model.modules()) > 50

    def rate(block: nn.Module) -> float:
        return next(m.p for m in block.modules() if isinstance(m, nn.Dropout2d))

    assert rate(model.down1) == 0.01
    assert all(rate(b) == 0.01 for b in model.stage1)
    assert rate(model.down2) == 0.1
    assert all(rate(b) == 0.1 for b in [*model.stage2, *model.stage3, model.up4, *model.stage4])


def test_parameter_count_within_5_percent_of_paper():
    n = count_parameters(ENet(11))
    assert abs(n - 0.37e6) / 0.37e6 < 0.05, n


def test_flops_at_640x360_near_table3():
    gflops = count_flops(ENet(11), 360, 640) / 1e9
    assert 3.0 < gflops < 4.2  # paper: 3.83 (its exact counting rules are not given)


@pytest.mark.parametrize("h,w", [(360, 482), (100, 64), (7, 8)])
def test_rejects_sizes_not_multiple_of_8(h, w):
    with pytest.raises(ShapeError, match="multiple of 8"):
        ENet(11)(torch.zeros(1, 3, h, w))


def _tie_heavy(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-1, 2, shape, generator=g).float()  # values in {-1, 0, 1}: many ties
    x[..., :4, :4] = 0.0  # all-zero windows
    return x


@pytest.mark.parametrize("maker", ["random", "ties", "zeros", "relu"])
def test_mask_pool_matches_maxpool_indices(maker):
    shape = (2, 5, 8, 12)
    g = torch.Generator().manual_seed(1)
    x = {"random": torch.randn(shape, generator=g), "ties": _tie_heavy(shape, 2),
         "zeros": torch.zeros(shape), "relu": torch.relu(torch.randn(shape, generator=g))}[maker]
    pooled, idx = nn.functional.max_pool2d(x, 2, 2, return_indices=True)
    mpooled, mask = window_first_max_mask(x)
    assert torch.equal(pooled, mpooled)
    y = torch.randn(pooled.shape, generator=g)
    ref = nn.functional.max_unpool2d(y, idx, 2, 2, output_size=x.shape[-2:])
    out = unpool_with_mask(y, mask)
    assert torch.equal(ref, out)
    # bit-identical, including the sign of zeros
    assert torch.equal(torch.signbit(ref), torch.signbit(out))
    assert int(mask.sum()) == pooled.numel()  # exactly one position per window


@pytest.mark.parametrize("kind", ["random", "ties"])
def test_two_unpool_forms_bit_identical_whole_network(kind):
    torch.manual_seed(0)
    model = ENet(11).eval()
    # non-trivial BN statistics so activations are not all near zero
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 64, 96) if kind == "random" else _tie_heavy((2, 3, 64, 96), 3)
    with torch.no_grad():
        a = model.set_unpool("indices")(x)
        b = model.set_unpool("mask")(x)
    assert torch.equal(a, b)


def test_blocks_shape_contracts():
    x = torch.randn(1, 64, 16, 24)
    assert Bottleneck(64, kind="asymmetric")(x).shape == x.shape
    assert Bottleneck(64, kind="dilated", dilation=16)(x).shape == x.shape
    down = DownsamplingBottleneck(64, 128).eval()
    y, mem = down(x)
    assert y.shape == (1, 128, 8, 12)
    assert UpsamplingBottleneck(128, 64).eval()(y, mem).shape == x.shape
