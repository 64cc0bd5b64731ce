"""RVM's encoder: torchvision's MobileNetV3-Large module tree, rebuilt (torchvision is not a dependency) so
the official `rvm_mobilenetv3.pth` keys (`backbone.features.N.block.M...`) line up, with the last stage
dilated (stride 16) and feature taps at strides 2, 4, 8 and 16 for the decoder in `rvm.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The official weights were trained with torchvision's MobileNetV3 batch norm settings in the encoder.
_ENC_BN = {"eps": 1e-3, "momentum": 0.01}


@dataclass(frozen=True)
class _Bneck:
    """One inverted-residual block of MobileNetV3-Large (Howard et al. 2019, table 1)."""

    cin: int
    kernel: int
    expand: int
    cout: int
    se: bool
    hswish: bool
    stride: int
    dilation: int = 1


# The large model's 15 blocks; RVM dilates the last stage (stride 16 output instead of 32).
_LARGE = (
    _Bneck(16, 3, 16, 16, False, False, 1),
    _Bneck(16, 3, 64, 24, False, False, 2),    # -> stride 4
    _Bneck(24, 3, 72, 24, False, False, 1),
    _Bneck(24, 5, 72, 40, True, False, 2),     # -> stride 8
    _Bneck(40, 5, 120, 40, True, False, 1),
    _Bneck(40, 5, 120, 40, True, False, 1),
    _Bneck(40, 3, 240, 80, False, True, 2),    # -> stride 16
    _Bneck(80, 3, 200, 80, False, True, 1),
    _Bneck(80, 3, 184, 80, False, True, 1),
    _Bneck(80, 3, 184, 80, False, True, 1),
    _Bneck(80, 3, 480, 112, True, True, 1),
    _Bneck(112, 3, 672, 112, True, True, 1),
    _Bneck(112, 5, 672, 160, True, True, 1, 2),  # stride 2 in the classifier, dilation here
    _Bneck(160, 5, 960, 160, True, True, 1, 2),
    _Bneck(160, 5, 960, 160, True, True, 1, 2),
)
_TAPS = (1, 3, 6, 16)  # features index after which f1..f4 (strides 2, 4, 8, 16) are taken


def _round8(v: float) -> int:
    """Channel count rounded to a multiple of 8, never more than 10% below `v` (MobileNet's rule)."""
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, groups: int = 1,
             act: type[nn.Module] | None = None, **bn) -> nn.Sequential:
    """conv (no bias) -> batch norm -> optional activation, as indices 0, 1, 2."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 * dilation, dilation, groups, bias=False),
        nn.BatchNorm2d(cout, **bn)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global average -> fc1 -> ReLU -> fc2 -> hard sigmoid -> scale."""

    def __init__(self, channels: int):
        super().__init__()
        squeeze = _round8(channels // 4)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = self.fc2(F.relu(self.fc1(s)))
        return x * F.hardsigmoid(s)


class InvertedResidual(nn.Module):
    """expand 1x1 (when widening) -> depthwise kxk -> [squeeze-excite] -> project 1x1, + input when shapes allow."""

    def __init__(self, c: _Bneck):
        super().__init__()
        act = nn.Hardswish if c.hswish else nn.ReLU
        layers: list[nn.Module] = []
        if c.expand != c.cin:
            layers.append(_conv_bn(c.cin, c.expand, 1, act=act, **_ENC_BN))
        layers.append(_conv_bn(c.expand, c.expand, c.kernel, c.stride, c.dilation, groups=c.expand, act=act, **_ENC_BN))
        if c.se:
            layers.append(SqueezeExcite(c.expand))
        layers.append(_conv_bn(c.expand, c.cout, 1, **_ENC_BN))
        self.block = nn.Sequential(*layers)
        self.residual = c.stride == 1 and c.cin == c.cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class MobileNetV3Encoder(nn.Module):
    """MobileNetV3-Large features with taps at strides 2, 4, 8, 16; takes RGB in [0, 1] (normalises itself)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(3, 16, 3, 2, act=nn.Hardswish, **_ENC_BN)]
        layers += [InvertedResidual(c) for c in _LARGE]
        layers.append(_conv_bn(160, 960, 1, act=nn.Hardswish, **_ENC_BN))
        self.features = nn.Sequential(*layers)
        # not in the state dict: the official checkpoint has no such entries
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # x [N, 3, h, w]
        x = (x - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                taps.append(x)
        f1, f2, f3, f4 = taps  # [N, 16, h/2, w/2], [N, 24, h/4, ..], [N, 40, h/8, ..], [N, 960, h/16, ..]
        return f1, f2, f3, f4
