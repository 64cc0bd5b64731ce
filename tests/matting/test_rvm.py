"""Robust Video Matting: official parameter layout, shapes and ranges, recurrent state, ONNX parity, loading."""

import math
import subprocess
import sys

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.matting import rvm
from neuralframe.matting.rvm import RVM, RVMStep, load_rvm

# Every entry of the official MattingNetwork("mobilenetv3").state_dict(), i.e. of rvm_mobilenetv3.pth:
# "key shape" ("-" for a 0-d tensor). Derived by reading PeterL1n/RobustVideoMatting at commit
# 53d74c6826735f01f4406b5ca9075eee27bec094 (model/model.py, mobilenetv3.py, lraspp.py, decoder.py,
# deep_guided_filter.py) together with torchvision's MobileNetV3 that its encoder subclasses (features.0
# stem, 15 InvertedResidual blocks whose `block` holds [expand when widening], depthwise, [SqueezeExcitation
# fc1/fc2 with make_divisible(expanded // 4, 8) channels], project; features.16 the 1x1 to 960; avgpool and
# classifier deleted by RVM). A standalone script expanded that config into this list; it does not use
# rvm.py. 380 entries, 3,748,633 parameters.
OFFICIAL_KEYS = """
backbone.features.0.0.weight 16x3x3x3
backbone.features.0.1.weight 16
backbone.features.0.1.bias 16
backbone.features.0.1.running_mean 16
backbone.features.0.1.running_var 16
backbone.features.0.1.num_batches_tracked -
backbone.features.1.block.0.0.weight 16x1x3x3
backbone.features.1.block.0.1.weight 16
backbone.features.1.block.0.1.bias 16
backbone.features.1.block.0.1.running_mean 16
backbone.features.1.block.0.1.running_var 16
backbone.features.1.block.0.1.num_batches_tracked -
backbone.features.1.block.1.0.weight 16x16x1x1
backbone.features.1.block.1.1.weight 16
backbone.features.1.block.1.1.bias 16
backbone.features.1.block.1.1.running_mean 16
backbone.features.1.block.1.1.running_var 16
backbone.features.1.block.1.1.num_batches_tracked -
backbone.features.2.block.0.0.weight 64x16x1x1
backbone.features.2.block.0.1.weight 64
backbone.features.2.block.0.1.bias 64
backbone.features.2.block.0.1.running_mean 64
backbone.features.2.block.0.1.running_var 64
backbone.features.2.block.0.1.num_batches_tracked -
backbone.features.2.block.1.0.weight 64x1x3x3
backbone.features.2.block.1.1.weight 64
backbone.features.2.block.1.1.bias 64
backbone.features.2.block.1.1.running_mean 64
backbone.features.2.block.1.1.running_var 64
backbone.features.2.block.1.1.num_batches_tracked -
backbone.features.2.block.2.0.weight 24x64x1x1
backbone.features.2.block.2.1.weight 24
backbone.features.2.block.2.1.bias 24
backbone.features.2.block.2.1.running_mean 24
backbone.features.2.block.2.1.running_var 24
backbone.features.2.block.2.1.num_batches_tracked -
backbone.features.3.block.0.0.weight 72x24x1x1
backbone.features.3.block.0.1.weight 72
backbone.features.3.block.0.1.bias 72
backbone.features.3.block.0.1.running_mean 72
backbone.features.3.block.0.1.running_var 72
backbone.features.3.block.0.1.num_batches_tracked -
backbone.features.3.block.1.0.weight 72x1x3x3
backbone.features.3.block.1.1.weight 72
backbone.features.3.block.1.1.bias 72
backbone.features.3.block.1.1.running_mean 72
backbone.features.3.block.1.1.running_var 72
backbone.features.3.block.1.1.num_batches_tracked -
backbone.features.3.block.2.0.weight 24x72x1x1
backbone.features.3.block.2.1.weight 24
backbone.features.3.block.2.1.bias 24
backbone.features.3.block.2.1.running_mean 24
backbone.features.3.block.2.1.running_var 24
backbone.features.3.block.2.1.num_batches_tracked -
backbone.features.4.block.0.0.weight 72x24x1x1
backbone.features.4.block.0.1.weight 72
backbone.features.4.block.0.1.bias 72
backbone.features.4.block.0.1.running_mean 72
backbone.features.4.block.0.1.running_var 72
backbone.features.4.block.0.1.num_batches_tracked -
backbone.features.4.block.1.0.weight 72x1x5x5
backbone.features.4.block.1.1.weight 72
backbone.features.4.block.1.1.bias 72
backbone.features.4.block.1.1.running_mean 72
backbone.features.4.block.1.1.running_var 72
backbone.features.4.block.1.1.num_batches_tracked -
backbone.features.4.block.2.fc1.weight 24x72x1x1
backbone.features.4.block.2.fc1.bias 24
backbone.features.4.block.2.fc2.weight 72x24x1x1
backbone.features.4.block.2.fc2.bias 72
backbone.features.4.block.3.0.weight 40x72x1x1
backbone.features.4.block.3.1.weight 40
backbone.features.4.block.3.1.bias 40
backbone.features.4.block.3.1.running_mean 40
backbone.features.4.block.3.1.running_var 40
backbone.features.4.block.3.1.num_batches_tracked -
backbone.features.5.block.0.0.weight 120x40x1x1
backbone.features.5.block.0.1.weight 120
backbone.features.5.block.0.1.bias 120
backbone.features.5.block.0.1.running_mean 120
backbone.features.5.block.0.1.running_var 120
backbone.features.5.block.0.1.num_batches_tracked -
backbone.features.5.block.1.0.weight 120x1x5x5
backbone.features.5.block.1.1.weight 120
backbone.features.5.block.1.1.bias 120
backbone.features.5.block.1.1.running_mean 120
backbone.features.5.block.1.1.running_var 120
backbone.features.5.block.1.1.num_batches_tracked -
backbone.features.5.block.2.fc1.weight 32x120x1x1
backbone.features.5.block.2.fc1.bias 32
backbone.features.5.block.2.fc2.weight 120x32x1x1
backbone.features.5.block.2.fc2.bias 120
backbone.features.5.block.3.0.weight 40x120x1x1
backbone.features.5.block.3.1.weight 40
backbone.features.5.block.3.1.bias 40
backbone.features.5.block.3.1.running_mean 40
backbone.features.5.block.3.1.running_var 40
backbone.features.5.block.3.1.num_batches_tracked -
backbone.features.6.block.0.0.weight 120x40x1x1
backbone.features.6.block.0.1.weight 120
backbone.features.6.block.0.1.bias 120
backbone.features.6.block.0.1.running_mean 120
backbone.features.6.block.0.1.running_var 120
backbone.features.6.block.0.1.num_batches_tracked -
backbone.features.6.block.1.0.weight 120x1x5x5
backbone.features.6.block.1.1.weight 120
backbone.features.6.block.1.1.bias 120
backbone.features.6.block.1.1.running_mean 120
backbone.features.6.block.1.1.running_var 120
backbone.features.6.block.1.1.num_batches_tracked -
backbone.features.6.block.2.fc1.weight 32x120x1x1
backbone.features.6.block.2.fc1.bias 32
backbone.features.6.block.2.fc2.weight 120x32x1x1
backbone.features.6.block.2.fc2.bias 120
backbone.features.6.block.3.0.weight 40x120x1x1
backbone.features.6.block.3.1.weight 40
backbone.features.6.block.3.1.bias 40
backbone.features.6.block.3.1.running_mean 40
backbone.features.6.block.3.1.running_var 40
backbone.features.6.block.3.1.num_batches_tracked -
backbone.features.7.block.0.0.weight 240x40x1x1
backbone.features.7.block.0.1.weight 240
backbone.features.7.block.0.1.bias 240
backbone.features.7.block.0.1.running_mean 240
backbone.features.7.block.0.1.running_var 240
backbone.features.7.block.0.1.num_batches_tracked -
backbone.features.7.block.1.0.weight 240x1x3x3
backbone.features.7.block.1.1.weight 240
backbone.features.7.block.1.1.bias 240
backbone.features.7.block.1.1.running_mean 240
backbone.features.7.block.1.1.running_var 240
backbone.features.7.block.1.1.num_batches_tracked -
backbone.features.7.block.2.0.weight 80x240x1x1
backbone.features.7.block.2.1.weight 80
backbone.features.7.block.2.1.bias 80
backbone.features.7.block.2.1.running_mean 80
backbone.features.7.block.2.1.running_var 80
backbone.features.7.block.2.1.num_batches_tracked -
backbone.features.8.block.0.0.weight 200x80x1x1
backbone.features.8.block.0.1.weight 200
backbone.features.8.block.0.1.bias 200
backbone.features.8.block.0.1.running_mean 200
backbone.features.8.block.0.1.running_var 200
backbone.features.8.block.0.1.num_batches_tracked -
backbone.features.8.block.1.0.weight 200x1x3x3
backbone.features.8.block.1.1.weight 200
backbone.features.8.block.1.1.bias 200
backbone.features.8.block.1.1.running_mean 200
backbone.features.8.block.1.1.running_var 200
backbone.features.8.block.1.1.num_batches_tracked -
backbone.features.8.block.2.0.weight 80x200x1x1
backbone.features.8.block.2.1.weight 80
backbone.features.8.block.2.1.bias 80
backbone.features.8.block.2.1.running_mean 80
backbone.features.8.block.2.1.running_var 80
backbone.features.8.block.2.1.num_batches_tracked -
backbone.features.9.block.0.0.weight 184x80x1x1
backbone.features.9.block.0.1.weight 184
backbone.features.9.block.0.1.bias 184
backbone.features.9.block.0.1.running_mean 184
backbone.features.9.block.0.1.running_var 184
backbone.features.9.block.0.1.num_batches_tracked -
backbone.features.9.block.1.0.weight 184x1x3x3
backbone.features.9.block.1.1.weight 184
backbone.features.9.block.1.1.bias 184
backbone.features.9.block.1.1.running_mean 184
backbone.features.9.block.1.1.running_var 184
backbone.features.9.block.1.1.num_batches_tracked -
backbone.features.9.block.2.0.weight 80x184x1x1
backbone.features.9.block.2.1.weight 80
backbone.features.9.block.2.1.bias 80
backbone.features.9.block.2.1.running_mean 80
backbone.features.9.block.2.1.running_var 80
backbone.features.9.block.2.1.num_batches_tracked -
backbone.features.10.block.0.0.weight 184x80x1x1
backbone.features.10.block.0.1.weight 184
backbone.features.10.block.0.1.bias 184
backbone.features.10.block.0.1.running_mean 184
backbone.features.10.block.0.1.running_var 184
backbone.features.10.block.0.1.num_batches_tracked -
backbone.features.10.block.1.0.weight 184x1x3x3
backbone.features.10.block.1.1.weight 184
backbone.features.10.block.1.1.bias 184
backbone.features.10.block.1.1.running_mean 184
backbone.features.10.block.1.1.running_var 184
backbone.features.10.block.1.1.num_batches_tracked -
backbone.features.10.block.2.0.weight 80x184x1x1
backbone.features.10.block.2.1.weight 80
backbone.features.10.block.2.1.bias 80
backbone.features.10.block.2.1.running_mean 80
backbone.features.10.block.2.1.running_var 80
backbone.features.10.block.2.1.num_batches_tracked -
backbone.features.11.block.0.0.weight 480x80x1x1
backbone.features.11.block.0.1.weight 480
backbone.features.11.block.0.1.bias 480
backbone.features.11.block.0.1.running_mean 480
backbone.features.11.block.0.1.running_var 480
backbone.features.11.block.0.1.num_batches_tracked -
backbone.features.11.block.1.0.weight 480x1x3x3
backbone.features.11.block.1.1.weight 480
backbone.features.11.block.1.1.bias 480
backbone.features.11.block.1.1.running_mean 480
backbone.features.11.block.1.1.running_var 480
backbone.features.11.block.1.1.num_batches_tracked -
backbone.features.11.block.2.fc1.weight 120x480x1x1
backbone.features.11.block.2.fc1.bias 120
backbone.features.11.block.2.fc2.weight 480x120x1x1
backbone.features.11.block.2.fc2.bias 480
backbone.features.11.block.3.0.weight 112x480x1x1
backbone.features.11.block.3.1.weight 112
backbone.features.11.block.3.1.bias 112
backbone.features.11.block.3.1.running_mean 112
backbone.features.11.block.3.1.running_var 112
backbone.features.11.block.3.1.num_batches_tracked -
backbone.features.12.block.0.0.weight 672x112x1x1
backbone.features.12.block.0.1.weight 672
backbone.features.12.block.0.1.bias 672
backbone.features.12.block.0.1.running_mean 672
backbone.features.12.block.0.1.running_var 672
backbone.features.12.block.0.1.num_batches_tracked -
backbone.features.12.block.1.0.weight 672x1x3x3
backbone.features.12.block.1.1.weight 672
backbone.features.12.block.1.1.bias 672
backbone.features.12.block.1.1.running_mean 672
backbone.features.12.block.1.1.running_var 672
backbone.features.12.block.1.1.num_batches_tracked -
backbone.features.12.block.2.fc1.weight 168x672x1x1
backbone.features.12.block.2.fc1.bias 168
backbone.features.12.block.2.fc2.weight 672x168x1x1
backbone.features.12.block.2.fc2.bias 672
backbone.features.12.block.3.0.weight 112x672x1x1
backbone.features.12.block.3.1.weight 112
backbone.features.12.block.3.1.bias 112
backbone.features.12.block.3.1.running_mean 112
backbone.features.12.block.3.1.running_var 112
backbone.features.12.block.3.1.num_batches_tracked -
backbone.features.13.block.0.0.weight 672x112x1x1
backbone.features.13.block.0.1.weight 672
backbone.features.13.block.0.1.bias 672
backbone.features.13.block.0.1.running_mean 672
backbone.features.13.block.0.1.running_var 672
backbone.features.13.block.0.1.num_batches_tracked -
backbone.features.13.block.1.0.weight 672x1x5x5
backbone.features.13.block.1.1.weight 672
backbone.features.13.block.1.1.bias 672
backbone.features.13.block.1.1.running_mean 672
backbone.features.13.block.1.1.running_var 672
backbone.features.13.block.1.1.num_batches_tracked -
backbone.features.13.block.2.fc1.weight 168x672x1x1
backbone.features.13.block.2.fc1.bias 168
backbone.features.13.block.2.fc2.weight 672x168x1x1
backbone.features.13.block.2.fc2.bias 672
backbone.features.13.block.3.0.weight 160x672x1x1
backbone.features.13.block.3.1.weight 160
backbone.features.13.block.3.1.bias 160
backbone.features.13.block.3.1.running_mean 160
backbone.features.13.block.3.1.running_var 160
backbone.features.13.block.3.1.num_batches_tracked -
backbone.features.14.block.0.0.weight 960x160x1x1
backbone.features.14.block.0.1.weight 960
backbone.features.14.block.0.1.bias 960
backbone.features.14.block.0.1.running_mean 960
backbone.features.14.block.0.1.running_var 960
backbone.features.14.block.0.1.num_batches_tracked -
backbone.features.14.block.1.0.weight 960x1x5x5
backbone.features.14.block.1.1.weight 960
backbone.features.14.block.1.1.bias 960
backbone.features.14.block.1.1.running_mean 960
backbone.features.14.block.1.1.running_var 960
backbone.features.14.block.1.1.num_batches_tracked -
backbone.features.14.block.2.fc1.weight 240x960x1x1
backbone.features.14.block.2.fc1.bias 240
backbone.features.14.block.2.fc2.weight 960x240x1x1
backbone.features.14.block.2.fc2.bias 960
backbone.features.14.block.3.0.weight 160x960x1x1
backbone.features.14.block.3.1.weight 160
backbone.features.14.block.3.1.bias 160
backbone.features.14.block.3.1.running_mean 160
backbone.features.14.block.3.1.running_var 160
backbone.features.14.block.3.1.num_batches_tracked -
backbone.features.15.block.0.0.weight 960x160x1x1
backbone.features.15.block.0.1.weight 960
backbone.features.15.block.0.1.bias 960
backbone.features.15.block.0.1.running_mean 960
backbone.features.15.block.0.1.running_var 960
backbone.features.15.block.0.1.num_batches_tracked -
backbone.features.15.block.1.0.weight 960x1x5x5
backbone.features.15.block.1.1.weight 960
backbone.features.15.block.1.1.bias 960
backbone.features.15.block.1.1.running_mean 960
backbone.features.15.block.1.1.running_var 960
backbone.features.15.block.1.1.num_batches_tracked -
backbone.features.15.block.2.fc1.weight 240x960x1x1
backbone.features.15.block.2.fc1.bias 240
backbone.features.15.block.2.fc2.weight 960x240x1x1
backbone.features.15.block.2.fc2.bias 960
backbone.features.15.block.3.0.weight 160x960x1x1
backbone.features.15.block.3.1.weight 160
backbone.features.15.block.3.1.bias 160
backbone.features.15.block.3.1.running_mean 160
backbone.features.15.block.3.1.running_var 160
backbone.features.15.block.3.1.num_batches_tracked -
backbone.features.16.0.weight 960x160x1x1
backbone.features.16.1.weight 960
backbone.features.16.1.bias 960
backbone.features.16.1.running_mean 960
backbone.features.16.1.running_var 960
backbone.features.16.1.num_batches_tracked -
aspp.aspp1.0.weight 128x960x1x1
aspp.aspp1.1.weight 128
aspp.aspp1.1.bias 128
aspp.aspp1.1.running_mean 128
aspp.aspp1.1.running_var 128
aspp.aspp1.1.num_batches_tracked -
aspp.aspp2.1.weight 128x960x1x1
decoder.decode4.gru.ih.0.weight 128x128x3x3
decoder.decode4.gru.ih.0.bias 128
decoder.decode4.gru.hh.0.weight 64x128x3x3
decoder.decode4.gru.hh.0.bias 64
decoder.decode3.conv.0.weight 80x171x3x3
decoder.decode3.conv.1.weight 80
decoder.decode3.conv.1.bias 80
decoder.decode3.conv.1.running_mean 80
decoder.decode3.conv.1.running_var 80
decoder.decode3.conv.1.num_batches_tracked -
decoder.decode3.gru.ih.0.weight 80x80x3x3
decoder.decode3.gru.ih.0.bias 80
decoder.decode3.gru.hh.0.weight 40x80x3x3
decoder.decode3.gru.hh.0.bias 40
decoder.decode2.conv.0.weight 40x107x3x3
decoder.decode2.conv.1.weight 40
decoder.decode2.conv.1.bias 40
decoder.decode2.conv.1.running_mean 40
decoder.decode2.conv.1.running_var 40
decoder.decode2.conv.1.num_batches_tracked -
decoder.decode2.gru.ih.0.weight 40x40x3x3
decoder.decode2.gru.ih.0.bias 40
decoder.decode2.gru.hh.0.weight 20x40x3x3
decoder.decode2.gru.hh.0.bias 20
decoder.decode1.conv.0.weight 32x59x3x3
decoder.decode1.conv.1.weight 32
decoder.decode1.conv.1.bias 32
decoder.decode1.conv.1.running_mean 32
decoder.decode1.conv.1.running_var 32
decoder.decode1.conv.1.num_batches_tracked -
decoder.decode1.gru.ih.0.weight 32x32x3x3
decoder.decode1.gru.ih.0.bias 32
decoder.decode1.gru.hh.0.weight 16x32x3x3
decoder.decode1.gru.hh.0.bias 16
decoder.decode0.conv.0.weight 16x35x3x3
decoder.decode0.conv.1.weight 16
decoder.decode0.conv.1.bias 16
decoder.decode0.conv.1.running_mean 16
decoder.decode0.conv.1.running_var 16
decoder.decode0.conv.1.num_batches_tracked -
decoder.decode0.conv.3.weight 16x16x3x3
decoder.decode0.conv.4.weight 16
decoder.decode0.conv.4.bias 16
decoder.decode0.conv.4.running_mean 16
decoder.decode0.conv.4.running_var 16
decoder.decode0.conv.4.num_batches_tracked -
project_mat.conv.weight 4x16x1x1
project_mat.conv.bias 4
project_seg.conv.weight 1x16x1x1
project_seg.conv.bias 1
refiner.box_filter.weight 4x1x3x3
refiner.conv.0.weight 16x24x1x1
refiner.conv.1.weight 16
refiner.conv.1.bias 16
refiner.conv.1.running_mean 16
refiner.conv.1.running_var 16
refiner.conv.1.num_batches_tracked -
refiner.conv.3.weight 16x16x1x1
refiner.conv.4.weight 16
refiner.conv.4.bias 16
refiner.conv.4.running_mean 16
refiner.conv.4.running_var 16
refiner.conv.4.num_batches_tracked -
refiner.conv.6.weight 4x16x1x1
refiner.conv.6.bias 4
"""


def _official() -> dict[str, tuple[int, ...]]:
    table = {}
    for line in OFFICIAL_KEYS.strip().splitlines():
        key, shape = line.split()
        table[key] = () if shape == "-" else tuple(int(n) for n in shape.split("x"))
    return table


def _randomise(model: RVM, seed: int = 0) -> RVM:
    """Random weights and batch-norm statistics, so no layer is an identity and the outputs spread."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(".bias") and "backbone" in name:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    model.eval()
    # calibrate the output head on a frame: each raw output channel gets mean 0.5 and std 1, so the fgr
    # residual and alpha spread over and beyond [0, 1] and the clamp must act
    with torch.inference_mode():
        _, hid, _ = model._decode(_frames(1, 144, 256)[0], None, None, None, None, 1.0)
        raw = model.project_mat(hid)
    mean, std = raw.mean((0, 2, 3)), raw.std((0, 2, 3))
    with torch.no_grad():
        conv = model.project_mat.conv
        conv.weight.div_(std.view(4, 1, 1, 1))
        conv.bias.copy_((conv.bias - mean) / std + 0.5)
    return model


@pytest.fixture(scope="module")
def model() -> RVM:
    torch.manual_seed(0)
    return _randomise(RVM())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the runners share 2 cores; torch's spinning thread pool is many times slower under contention
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _frames(n: int, h: int, w: int, seed: int = 1) -> list[torch.Tensor]:
    """A smooth moving picture (a bright disc drifting over a gradient), so frames differ like video."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, 1 - x]) * 0.6
    out = []
    for t in range(n):
        disc = (((x - 0.3 - 0.1 * t) ** 2 + (y - 0.5) ** 2) < 0.04).float()
        frame = base * (1 - disc) + disc * torch.tensor([0.9, 0.7, 0.6]).view(3, 1, 1)
        out.append((frame + 0.02 * torch.randn(3, h, w, generator=g)).clamp(0, 1)[None])
    return out


def test_state_dict_matches_the_official_checkpoint():
    ours = {k: tuple(v.shape) for k, v in RVM().state_dict().items()}
    official = _official()
    assert len(official) == 380
    assert sorted(set(official) - set(ours)) == [] and sorted(set(ours) - set(official)) == []
    wrong = {k: (ours[k], official[k]) for k in official if ours[k] != official[k]}
    assert wrong == {}
    assert sum(p.numel() for p in RVM().parameters()) == 3_748_633
    assert sum(math.prod(s) for k, s in official.items() if "running" not in k and "num_batches" not in k) == 3_748_633
    # the official weights load as they are, strictly
    RVM().load_state_dict({k: torch.zeros(s) for k, s in official.items()}, strict=True)


@pytest.mark.parametrize("size", [(144, 256), (288, 512)])
@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_outputs_have_frame_shape_and_unit_range(model, size, ratio):
    src = _frames(1, *size)[0]
    with torch.inference_mode():
        fgr, pha, *rec = model(src, downsample_ratio=ratio)
    assert fgr.shape == (1, 3, *size) and pha.shape == (1, 1, *size)
    assert [tuple(r.shape) for r in rec] == [tuple(r.shape) for r in model.initial_state(src, ratio)]
    for out in (fgr, pha):
        assert torch.isfinite(out).all()
        assert out.min().item() == 0.0 and out.max().item() == 1.0  # the wide head saturates: clamped
    # a matte, not a constant: the alpha varies over the frame
    assert 0.05 < (pha > 0.5).float().mean().item() < 0.95


def test_initial_state_shapes():
    src = torch.rand(2, 3, 1080, 1920)
    r1, r2, r3, r4 = RVM().initial_state(src, 0.25)  # the network sees 270x480
    assert [tuple(r.shape) for r in (r1, r2, r3, r4)] == [(2, 16, 135, 240), (2, 20, 68, 120),
                                                           (2, 40, 34, 60), (2, 64, 17, 30)]
    assert all(r.abs().sum() == 0 and r.dtype == src.dtype for r in (r1, r2, r3, r4))


@pytest.mark.parametrize("size,ratio", [((97, 131), 1.0), ((97, 131), 0.37), ((250, 333), 0.25)])
def test_odd_sizes_round_trip(model, size, ratio):
    # odd sizes round up on the way down and are cropped on the way up; the states must agree with initial_state
    src = torch.rand(1, 3, *size)
    with torch.inference_mode():
        fgr, pha, *rec = model(src, downsample_ratio=ratio)
        fgr2, pha2, *_ = model(src, *rec, downsample_ratio=ratio)
    assert fgr.shape == (1, 3, *size) and pha2.shape == (1, 1, *size)
    assert [r.shape for r in rec] == [r.shape for r in model.initial_state(src, ratio)]


def test_none_state_is_the_zero_state(model):
    src = _frames(1, 144, 256)[0]
    with torch.inference_mode():
        a = model(src, downsample_ratio=0.5)
        b = model(src, *model.initial_state(src, 0.5), downsample_ratio=0.5)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_recurrent_state_carries_over_frames(model):
    frames = _frames(3, 144, 256)
    rec = [None] * 4
    shapes = None
    with torch.inference_mode():
        for t, src in enumerate(frames):
            fgr, pha, *new = model(src, *rec, downsample_ratio=0.5)
            assert shapes is None or [r.shape for r in new] == shapes
            shapes = [r.shape for r in new]
            assert all(r.abs().max() > 0 for r in new)
            if t > 0:
                # the same frame without the history gives a different matte: the state is used
                _, pha_fresh, *_ = model(src, downsample_ratio=0.5)
                assert (pha - pha_fresh).abs().max().item() > 1e-3
                assert any((a - b).abs().max() > 1e-4 for a, b in zip(new, rec))
            rec = new
        # a clip [B, T, 3, H, W] is the same as frame-by-frame calls
        fgr_c, pha_c, *rec_c = model(torch.stack([f[0] for f in frames])[None], downsample_ratio=0.5)
    assert fgr_c.shape == (1, 3, 3, 144, 256) and pha_c.shape == (1, 3, 1, 144, 256)
    torch.testing.assert_close(pha_c[:, -1], pha, rtol=0, atol=1e-6)
    for a, b in zip(rec_c, rec):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("ratio", [0, 0.0, -0.25, 1.5, 2, float("nan"), float("inf"), "0.5", None, True])
def test_downsample_ratio_must_be_in_unit_interval(ratio):
    model = RVM().eval()
    src = torch.rand(1, 3, 64, 64)
    with pytest.raises(InputError, match=r"downsample_ratio must be .*in \(0, 1\]"):
        model(src, downsample_ratio=ratio)
    with pytest.raises(InputError, match="downsample_ratio"):
        model.initial_state(src, ratio)
    with pytest.raises(InputError, match="downsample_ratio"):
        RVMStep(model, ratio)


def test_bad_inputs_are_named(model):
    src = torch.rand(1, 3, 64, 64)
    r1, r2, r3, r4 = model.initial_state(src, 1.0)
    with pytest.raises(InputError, match=r"r3 must be \[1, 40, 8, 8\].*got \[1, 40, 4, 4\]"):
        model(src, r1, r2, torch.zeros(1, 40, 4, 4), r4)
    with pytest.raises(InputError, match="all four recurrent states"):
        model(src, r1, None, r3, r4)
    with pytest.raises(InputError, match=r"src must be RGB frames"):
        model(torch.rand(1, 4, 64, 64))
    with pytest.raises(InputError, match="floating point"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(InputError, match="below one pixel"):
        model(torch.rand(1, 3, 64, 3), downsample_ratio=0.25)


def test_onnx_export_matches_onnxruntime(model, tmp_path):
    pytest.importorskip("onnxruntime")
    from neuralframe.backend.runtime import OnnxEngine

    ratio = 0.5
    path = rvm.export_onnx(model, tmp_path / "rvm.onnx", size=(144, 256), downsample_ratio=ratio)
    engine = OnnxEngine(path, providers=["CPUExecutionProvider"], threads=1)
    assert [s.name for s in engine.inputs] == list(rvm.ONNX_INPUTS)
    assert [s.name for s in engine.outputs] == list(rvm.ONNX_OUTPUTS)
    step = RVMStep(model, ratio)
    for size in [(144, 256), (288, 512)]:  # traced at one size, run at both
        frames = _frames(2, *size)
        rec = model.initial_state(frames[0], ratio)
        ort_rec = rec
        for src in frames:  # two frames, so the second runs on states each side produced itself
            with torch.inference_mode():
                ours = step(src, *rec)
            theirs = engine(src=src, **{f"r{i}i": r for i, r in enumerate(ort_rec, start=1)})
            for name, a in zip(rvm.ONNX_OUTPUTS, ours):
                b = theirs[name]
                assert b.shape == a.shape, name
                assert (a - b).abs().max().item() <= 1e-4, (size, name)
            rec = ours[2:]
            ort_rec = tuple(theirs[f"r{i}o"] for i in range(1, 5))


def test_load_rvm_round_trips_a_saved_state_dict(model, tmp_path):
    path = tmp_path / "rvm_mobilenetv3.pth"
    torch.save(model.state_dict(), path)
    loaded = load_rvm(path)
    assert not loaded.training
    src = _frames(1, 144, 256)[0]
    with torch.inference_mode():
        for a, b in zip(model(src, downsample_ratio=0.5), loaded(src, downsample_ratio=0.5)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # checkpoints that dropped the training-only batch counters still load
    light = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(light, tmp_path / "light.pth")
    torch.testing.assert_close(load_rvm(tmp_path / "light.pth").refiner.conv[6].bias, model.refiner.conv[6].bias)


def test_load_rvm_names_the_file_and_the_first_bad_key(model, tmp_path):
    state = model.state_dict()
    missing = dict(state)
    del missing["decoder.decode2.gru.hh.0.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(InputError, match=r"missing\.pth.*missing key 'decoder\.decode2\.gru\.hh\.0\.weight'"):
        load_rvm(tmp_path / "missing.pth")

    extra = {"module." + k: v for k, v in state.items()}  # e.g. saved from a DataParallel wrapper
    torch.save(extra, tmp_path / "prefixed.pth")
    with pytest.raises(InputError, match=r"prefixed\.pth.*missing key 'backbone\.features\.0\.0\.weight' and \d+ more"):
        load_rvm(tmp_path / "prefixed.pth")

    unexpected = dict(state, **{"backbone.classifier.0.weight": torch.zeros(1280, 960)})
    torch.save(unexpected, tmp_path / "unexpected.pth")
    with pytest.raises(InputError, match=r"unexpected\.pth.*unexpected key 'backbone\.classifier\.0\.weight'"):
        load_rvm(tmp_path / "unexpected.pth")

    reshaped = dict(state, **{"aspp.aspp1.0.weight": torch.zeros(256, 960, 1, 1)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(InputError, match=r"reshaped\.pth.*'aspp\.aspp1\.0\.weight' should be \[128, 960, 1, 1\]"):
        load_rvm(tmp_path / "reshaped.pth")

    good = tmp_path / "truncated.pth"
    torch.save(state, good)
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match=r"truncated\.pth' could not be read"):
        load_rvm(good)

    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(InputError, match=r"list\.pth' are not a state dict"):
        load_rvm(tmp_path / "list.pth")

    with pytest.raises(InputError, match=r"nowhere\.pth' do not exist"):
        load_rvm(tmp_path / "nowhere.pth")


def test_importing_the_package_does_not_load_rvm():
    probe = ("import sys, neuralframe, neuralframe.matting\n"
             "print('neuralframe.matting.rvm' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
