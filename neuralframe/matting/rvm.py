"""Robust Video Matting (Lin et al., 2021), MobileNetV3-Large variant, with its recurrent state explicit.

    model = load_rvm("rvm_mobilenetv3.pth")               # the official weights load unchanged
    r1 = r2 = r3 = r4 = None                               # first frame: zero state
    for src in frames:                                     # float [N, 3, H, W], RGB in [0, 1]
        fgr, pha, r1, r2, r3, r4 = model(src, r1, r2, r3, r4, downsample_ratio=0.25)

The network runs on the frame scaled by `downsample_ratio` (0.25 suits HD, 0.4 for 720p-ish portraits,
1.0 for small frames); when the ratio is below 1 the deep guided filter lifts the coarse foreground and
alpha back to full resolution. The model keeps no state: `r1..r4` go in and come out, so resetting a
stream means passing None again, and the same graph exports to ONNX (`export_onnx`, where the states are
plain tensor inputs and `initial_state` gives the zeros for the first frame).

Parameter names and shapes follow the official `MattingNetwork("mobilenetv3")`, whose encoder is
torchvision's MobileNetV3 module tree; that tree is rebuilt here (torchvision is not a dependency), so
`backbone.features.N.block.M...` keys line up (`rvm_encoder.py`). `project_seg` (the segmentation head used in training) is
kept for the same reason and is reachable through `segment`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralframe.backend.weights import load_weights
from neuralframe.errors import InputError
from neuralframe.matting.rvm_encoder import MobileNetV3Encoder

STATE_CHANNELS = (16, 20, 40, 64)  # r1..r4: half of each recurrent block's channels
STATE_STRIDES = (2, 4, 8, 16)      # r1..r4, relative to the downsampled frame


class LRASPP(nn.Module):
    """Lite R-ASPP: a 1x1 conv branch gated by a global-context branch."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.aspp1 = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.aspp2 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.aspp1(x) * self.aspp2(x)


class ConvGRU(nn.Module):
    """Convolutional GRU cell; `ih` gives the reset and update gates (in that order), `hh` the candidate."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.Tanh())

    def forward(self, x: Tensor, h: Tensor | None) -> Tensor:  # x, h [N, C, h, w] -> new h
        if h is None:
            h = torch.zeros_like(x)
        reset, update = self.ih(torch.cat([x, h], 1)).split(self.channels, 1)
        candidate = self.hh(torch.cat([x, reset * h], 1))
        return h + update * (candidate - h)


def _up2(x: Tensor, like: Tensor) -> Tensor:
    """Bilinear x2, cropped to `like`'s size (odd sizes were rounded up on the way down)."""
    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[:, :, :like.shape[2], :like.shape[3]]


class BottleneckBlock(nn.Module):
    """Recurrence on the second half of the LR-ASPP features."""

    def __init__(self, channels: int):
        super().__init__()
        self.half = channels // 2
        self.gru = ConvGRU(self.half)

    def forward(self, x: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor]:
        a, b = x.split(self.half, 1)
        r = self.gru(b, r)
        return torch.cat([a, r], 1), r


class UpsamplingBlock(nn.Module):
    """Upsample, join the encoder skip and the pooled frame, conv, then recurrence on half the channels."""

    def __init__(self, cin: int, skip: int, src: int, cout: int):
        super().__init__()
        self.half = cout // 2
        self.conv = nn.Sequential(nn.Conv2d(cin + skip + src, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout), nn.ReLU())
        self.gru = ConvGRU(self.half)

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Tensor | None) -> tuple[Tensor, Tensor]:
        x = self.conv(torch.cat([_up2(x, s), f, s], 1))
        a, b = x.split(self.half, 1)
        r = self.gru(b, r)
        return torch.cat([a, r], 1), r


class OutputBlock(nn.Module):
    """Back to the (downsampled) frame's resolution: upsample, join the frame, two conv layers."""

    def __init__(self, cin: int, src: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin + src, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        return self.conv(torch.cat([_up2(x, s), s], 1))


class RecurrentDecoder(nn.Module):
    """Four recurrent stages (strides 16, 8, 4, 2) and an output stage; each sees the frame pooled to its size."""

    def __init__(self, feature_channels=(16, 24, 40, 128), decoder_channels=(80, 40, 32, 16)):
        super().__init__()
        f1, f2, f3, f4 = feature_channels
        d3, d2, d1, d0 = decoder_channels
        self.decode4 = BottleneckBlock(f4)
        self.decode3 = UpsamplingBlock(f4, f3, 3, d3)
        self.decode2 = UpsamplingBlock(d3, f2, 3, d2)
        self.decode1 = UpsamplingBlock(d2, f1, 3, d1)
        self.decode0 = OutputBlock(d1, 3, d0)

    def forward(self, s0: Tensor, f1: Tensor, f2: Tensor, f3: Tensor, f4: Tensor,
                r1: Tensor | None, r2: Tensor | None, r3: Tensor | None, r4: Tensor | None):
        # ceil_mode keeps the pooled frames the same size as the encoder's (which rounds up too)
        s1 = F.avg_pool2d(s0, 2, 2, ceil_mode=True, count_include_pad=False)
        s2 = F.avg_pool2d(s1, 2, 2, ceil_mode=True, count_include_pad=False)
        s3 = F.avg_pool2d(s2, 2, 2, ceil_mode=True, count_include_pad=False)
        x, r4 = self.decode4(f4, r4)
        x, r3 = self.decode3(x, f3, s3, r3)
        x, r2 = self.decode2(x, f2, s2, r2)
        x, r1 = self.decode1(x, f1, s1, r1)
        return self.decode0(x, s0), r1, r2, r3, r4


class Projection(nn.Module):
    """1x1 conv head."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class DeepGuidedFilterRefiner(nn.Module):
    """Deep guided filter (Wu et al. 2018): a local linear model y = A x + b fitted on the small frame, with A
    predicted from the local statistics and the decoder's hidden features, then applied to the full frame.

    The guide x is RGB plus its grey mean, the target y is (fgr residual, alpha); the 3x3 box filter is a
    learned depthwise conv that starts as a mean."""

    def __init__(self, hid_channels: int = 16):
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, 3, padding=1, bias=False, groups=4)
        with torch.no_grad():
            self.box_filter.weight.fill_(1 / 9)
        self.conv = nn.Sequential(nn.Conv2d(8 + hid_channels, hid_channels, 1, bias=False),
                                  nn.BatchNorm2d(hid_channels), nn.ReLU(),
                                  nn.Conv2d(hid_channels, hid_channels, 1, bias=False),
                                  nn.BatchNorm2d(hid_channels), nn.ReLU(),
                                  nn.Conv2d(hid_channels, 4, 1))

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor,
                base_hid: Tensor) -> tuple[Tensor, Tensor]:
        """fine_src [N, 3, H, W]; base_* at the small size: src [N, 3, h, w], fgr [N, 3, ..], pha [N, 1, ..],
        hid [N, 16, ..]. Returns the full-size fgr residual [N, 3, H, W] and alpha [N, 1, H, W]."""
        fine_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], 1)
        x = torch.cat([base_src, base_src.mean(1, keepdim=True)], 1)
        y = torch.cat([base_fgr, base_pha], 1)
        box = self.box_filter
        mean_x, mean_y = box(x), box(y)
        cov_xy = box(x * y) - mean_x * mean_y
        var_x = box(x * x) - mean_x * mean_x
        a = self.conv(torch.cat([cov_xy, var_x, base_hid], 1))
        b = mean_y - a * mean_x
        ab = F.interpolate(torch.cat([a, b], 1), size=fine_src.shape[2:], mode="bilinear", align_corners=False)
        a, b = ab.split(4, 1)
        out = a * fine_x + b
        return out[:, :3], out[:, 3:]


def check_downsample_ratio(downsample_ratio: float) -> float:
    """The ratio as a float, or an InputError when it is not a number in (0, 1]."""
    if isinstance(downsample_ratio, bool) or not isinstance(downsample_ratio, (int, float)):
        raise InputError(f"downsample_ratio must be a number in (0, 1], got {downsample_ratio!r}")
    ratio = float(downsample_ratio)
    if not (0.0 < ratio <= 1.0):  # also rejects NaN
        raise InputError(f"downsample_ratio must be in (0, 1], got {downsample_ratio!r} "
                         "(0.25 suits HD frames, 1.0 runs the network at full size)")
    return ratio


def _small_size(height: int, width: int, ratio: float) -> tuple[int, int]:
    """Size of the frame the network sees: what F.interpolate(scale_factor=ratio) produces."""
    if ratio == 1.0:
        return height, width
    h, w = math.floor(height * ratio), math.floor(width * ratio)
    if h < 1 or w < 1:
        raise InputError(f"downsample_ratio {ratio} shrinks a {height}x{width} frame below one pixel")
    return h, w


def state_shapes(height: int, width: int, downsample_ratio: float = 1.0,
                 batch: int = 1) -> tuple[tuple[int, int, int, int], ...]:
    """Shapes of r1..r4 for frames of `height` x `width` at `downsample_ratio`."""
    h, w = _small_size(height, width, check_downsample_ratio(downsample_ratio))
    shapes = []
    for c, stride in zip(STATE_CHANNELS, STATE_STRIDES):
        shapes.append((batch, c, -(-h // stride), -(-w // stride)))  # each stride-2 step rounds up
    return tuple(shapes)


class RVM(nn.Module):
    """Robust Video Matting, MobileNetV3-Large: frames in, foreground and alpha out, recurrent state explicit.

    `forward(src, r1, r2, r3, r4, downsample_ratio)`:
        src: float [N, 3, H, W] (or a clip [B, T, 3, H, W]), RGB in [0, 1].
        r1..r4: the states returned for the previous frame, or None for the first one.
        downsample_ratio: in (0, 1]; the network runs on the frame scaled by it and the deep guided
            filter restores full resolution.
    Returns fgr [N, 3, H, W] and pha [N, 1, H, W] in [0, 1] (with T for clips), and the new r1..r4.
    """

    def __init__(self):
        super().__init__()
        self.backbone = MobileNetV3Encoder()
        self.aspp = LRASPP(960, 128)
        self.decoder = RecurrentDecoder((16, 24, 40, 128), (80, 40, 32, 16))
        self.project_mat = Projection(16, 4)
        self.project_seg = Projection(16, 1)
        self.refiner = DeepGuidedFilterRefiner(16)

    def forward(self, src: Tensor, r1: Tensor | None = None, r2: Tensor | None = None, r3: Tensor | None = None,
                r4: Tensor | None = None, downsample_ratio: float = 1.0):
        ratio = check_downsample_ratio(downsample_ratio)
        rec = self._check_inputs(src, (r1, r2, r3, r4), ratio)
        if src.ndim == 4:
            return self.step(src, *rec, ratio)
        # a clip: frame by frame, the state carried along (same result as separate calls)
        fgrs, phas = [], []
        for frame in src.unbind(1):
            fgr, pha, *rec = self.step(frame, *rec, ratio)
            fgrs.append(fgr)
            phas.append(pha)
        return (torch.stack(fgrs, 1), torch.stack(phas, 1), *rec)

    def step(self, src: Tensor, r1: Tensor | None, r2: Tensor | None, r3: Tensor | None, r4: Tensor | None,
             downsample_ratio: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """One frame [N, 3, H, W], no input checks (the traced/exported path); the ratio must be valid."""
        src_sm, hid, rec = self._decode(src, r1, r2, r3, r4, downsample_ratio)
        fgr_res, pha = self.project_mat(hid).split([3, 1], 1)
        if downsample_ratio != 1.0:
            fgr_res, pha = self.refiner(src, src_sm, fgr_res, pha, hid)
        fgr = (fgr_res + src).clamp(0.0, 1.0)
        return (fgr, pha.clamp(0.0, 1.0), *rec)

    def segment(self, src: Tensor, r1: Tensor | None = None, r2: Tensor | None = None, r3: Tensor | None = None,
                r4: Tensor | None = None, downsample_ratio: float = 1.0):
        """The segmentation head (trained alongside matting): logits [N, 1, h, w] at the downsampled size,
        and the new r1..r4. One frame [N, 3, H, W]."""
        ratio = check_downsample_ratio(downsample_ratio)
        if src.ndim != 4:
            raise InputError(f"segment takes one frame [N, 3, H, W], got {list(src.shape)}")
        rec = self._check_inputs(src, (r1, r2, r3, r4), ratio)
        _, hid, rec = self._decode(src, *rec, ratio)
        return (self.project_seg(hid), *rec)

    def initial_state(self, src: Tensor, downsample_ratio: float = 1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Zero r1..r4 for frames like `src` ([N, 3, H, W] or [B, T, 3, H, W]), on its device and dtype."""
        shapes = state_shapes(src.shape[-2], src.shape[-1], downsample_ratio, src.shape[0])
        r1, r2, r3, r4 = (torch.zeros(s, device=src.device, dtype=src.dtype) for s in shapes)
        return r1, r2, r3, r4

    def _decode(self, src, r1, r2, r3, r4, ratio):
        if ratio != 1.0:
            src_sm = F.interpolate(src, scale_factor=ratio, mode="bilinear", align_corners=False,
                                   recompute_scale_factor=False)
        else:
            src_sm = src
        f1, f2, f3, f4 = self.backbone(src_sm)
        hid, *rec = self.decoder(src_sm, f1, f2, f3, self.aspp(f4), r1, r2, r3, r4)
        return src_sm, hid, rec

    def _check_inputs(self, src: Tensor, rec, ratio: float):
        if not isinstance(src, Tensor) or src.ndim not in (4, 5) or src.shape[-3] != 3:
            shape = list(src.shape) if isinstance(src, Tensor) else type(src).__name__
            raise InputError(f"src must be RGB frames [N, 3, H, W] or a clip [B, T, 3, H, W], got {shape}")
        if not src.is_floating_point():
            raise InputError(f"src must be floating point in [0, 1], got {src.dtype}")
        given = [r is not None for r in rec]
        if any(given) and not all(given):
            raise InputError("pass all four recurrent states r1..r4, or none of them (first frame)")
        shapes = state_shapes(src.shape[-2], src.shape[-1], ratio, src.shape[0])
        if all(given):
            for i, (r, want) in enumerate(zip(rec, shapes), start=1):
                if tuple(r.shape) != want:
                    raise InputError(f"r{i} must be {list(want)} for a {src.shape[-2]}x{src.shape[-1]} frame at "
                                     f"downsample_ratio {ratio}, got {list(r.shape)} (did the size or ratio change? "
                                     "start again with None)")
        return rec


MattingNetwork = RVM  # the official name


class RVMStep(nn.Module):
    """RVM at a fixed downsample ratio with tensor states only: the form that traces and exports.

    `forward(src, r1, r2, r3, r4) -> (fgr, pha, r1, r2, r3, r4)`; for the first frame pass
    `model.initial_state(src, ratio)` (zeros give exactly the None path's result)."""

    def __init__(self, model: RVM, downsample_ratio: float = 0.25):
        super().__init__()
        self.model = model
        self.downsample_ratio = check_downsample_ratio(downsample_ratio)

    def forward(self, src: Tensor, r1: Tensor, r2: Tensor, r3: Tensor, r4: Tensor):
        return self.model.step(src, r1, r2, r3, r4, self.downsample_ratio)


ONNX_INPUTS = ("src", "r1i", "r2i", "r3i", "r4i")
ONNX_OUTPUTS = ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")


def export_onnx(model: RVM, path: str | os.PathLike, size: tuple[int, int] = (288, 512),
                downsample_ratio: float = 0.25, opset: int = 17, dynamic: bool = True) -> Path:
    """Export one recurrent step to ONNX at a fixed `downsample_ratio`.

    Inputs src [N, 3, H, W], r1i..r4i; outputs fgr, pha, r1o..r4o (names as in the official ONNX files).
    With `dynamic`, batch and frame size are free; `size` (H, W) is the example the graph is traced with.
    """
    import warnings

    p = Path(path)
    step = RVMStep(model, downsample_ratio).eval()
    param = next(model.parameters())
    src = torch.rand(1, 3, *size, device=param.device, dtype=param.dtype)
    rec = model.initial_state(src, downsample_ratio)
    axes = None
    if dynamic:
        axes = {"src": {0: "N", 2: "H", 3: "W"}, "fgr": {0: "N", 2: "H", 3: "W"}, "pha": {0: "N", 2: "H", 3: "W"}}
        for i in range(1, 5):
            spatial = {0: "N", 2: f"h{i}", 3: f"w{i}"}
            axes[f"r{i}i"] = spatial
            axes[f"r{i}o"] = spatial
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic, expected here
        torch.onnx.export(step, (src, *rec), str(p), input_names=list(ONNX_INPUTS), output_names=list(ONNX_OUTPUTS),
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    return p


def load_rvm(path: str | os.PathLike) -> RVM:
    """An RVM (eval mode, CPU) with the weights of a .pth state dict such as the official rvm_mobilenetv3.pth.

    Raises InputError naming the file when it is missing, unreadable, or does not match the architecture
    (the first missing or unexpected key, or a shape that differs)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"RVM weights '{p}' do not exist")
    state = load_weights(p, f"RVM weights '{p}'", like="the official rvm_mobilenetv3.pth", limit=1 << 30)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise InputError(f"RVM weights '{p}' are not a state dict (got {type(state).__name__})")
    if "backbone.conv1.weight" in state:
        raise InputError(f"RVM weights '{p}' are the ResNet-50 variant; only rvm_mobilenetv3 is supported")
    model = RVM()
    expected = model.state_dict()
    # counters only used in training; some converted checkpoints drop them
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"RVM weights '{p}' do not match the MobileNetV3 model: missing key '{missing[0]}'{more}")
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise InputError(f"RVM weights '{p}' do not match the MobileNetV3 model: "
                         f"unexpected key '{unexpected[0]}'{more}")
    for k, v in state.items():
        if not isinstance(v, Tensor) or v.shape != expected[k].shape:
            got = list(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise InputError(f"RVM weights '{p}': '{k}' should be {list(expected[k].shape)}, got {got}")
    model.load_state_dict(state, strict=False)  # strict except the optional counters, checked above
    return model.eval()
