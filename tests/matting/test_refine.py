"""Refinement: every implementation against the reference, pixels of known cases, measured quality."""

import pytest
import torch

from neuralframe.errors import InputError
from neuralframe.matting import refine

pytestmark = pytest.mark.kernel("matting.guided_filter")  # every implementation: tests/conftest.py


def _img(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("shape,mask_shape,radius,scale", [((73, 129), (33, 47), 2, 4), ((64, 64), (64, 64), 1, 1),
                                                           ((90, 50), (16, 16), 3, 3)])
def test_guided_filter_matches_reference(impl, shape, mask_shape, radius, scale):
    img = _img(*shape, seed=shape[0])
    mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(1))
    ref = refine.guided_filter(img, mask, radius, 1e-3, scale, impl="reference")
    out = refine.guided_filter(img, mask, radius, 1e-3, scale, impl=impl)
    assert out.shape == shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=2e-4, rtol=0)


def test_area_downsample_and_stabilize_match_reference(impl):
    img = _img(75, 101, seed=5)
    torch.testing.assert_close(refine.area_downsample(img, (17, 30), impl=impl),
                               refine.area_downsample(img, (17, 30), impl="reference"), atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(2)
    args = [torch.rand(20, 30, generator=g), torch.rand(20, 30, generator=g), torch.rand(3, 20, 30, generator=g),
            torch.rand(3, 20, 30, generator=g)]
    torch.testing.assert_close(refine.stabilize(*args, impl=impl), refine.stabilize(*args, impl="reference"),
                               atol=1e-6, rtol=0)


def test_guided_filter_snaps_a_blurry_matte_to_the_image_edge(impl):
    img = torch.zeros((128, 128, 3), dtype=torch.uint8)
    img[:, 64:] = 255  # a hard vertical edge between columns 63 and 64
    coarse = ((torch.arange(16.0) - 7.5) * 1.5).sigmoid().expand(16, 16).contiguous()  # a soft step, 16x16
    raw = torch.nn.functional.interpolate(coarse[None, None], size=(128, 128), mode="bilinear")[0, 0]
    out = refine.guided_filter(img, coarse, radius=2, eps=1e-3, scale=4, impl=impl)
    raw_jump = (raw[:, 64] - raw[:, 63]).min().item()
    jump = (out[:, 64] - out[:, 63]).min().item()
    assert raw_jump < 0.05  # the raw matte is a ramp across the edge
    assert jump > 0.3  # ours jumps at the image's edge, between the same two columns
    assert out[:, 63].max().item() < 0.35 and out[:, 64].min().item() > 0.65
    assert out[:, :40].max().item() < 0.05 and out[:, 88:].min().item() > 0.95  # far from the edge: 0 and 1
    flat = refine.guided_filter(img, torch.full((16, 16), 0.7), impl=impl)
    assert (flat - 0.7).abs().max().item() < 1e-3  # a constant matte stays constant


def test_stabilize_damps_noise_but_follows_motion(impl):
    prev = torch.full((8, 8), 0.5)
    guide = torch.full((3, 8, 8), 0.3)
    small = refine.stabilize(torch.full((8, 8), 0.52), prev, guide, guide, rate=0.25, impl=impl)
    assert small[0, 0].item() == pytest.approx(0.5 + 0.25 * 0.02, abs=1e-6)  # jitter: a quarter step
    big = refine.stabilize(torch.full((8, 8), 1.0), prev, guide, guide, impl=impl)
    assert big[0, 0].item() == pytest.approx(1.0)  # a large change of the matte: followed at once
    moved = refine.stabilize(torch.full((8, 8), 0.52), prev, guide + 0.1, guide, impl=impl)
    assert moved[0, 0].item() == pytest.approx(0.52)  # the image moved: no lag


def test_measured_flicker_and_edge_error():
    """The refined matte flickers less than the per-frame segmenter on a still clip, and is closer to
    the known alpha near edges than the upsampled raw mask on a moving clip (measured, small clips)."""
    from neuralframe.matting.media import evaluate, make_clip

    still = evaluate(make_clip(8, (360, 640), moving=False))
    moving = evaluate(make_clip(6, (360, 640), moving=True))
    assert still["flicker_refined"] < still["flicker_raw"]
    assert moving["edge_error_refined"] < moving["edge_error_raw"]
    assert moving["mad_refined"] < moving["mad_raw"]


def test_errors():
    with pytest.raises(InputError, match="image must be uint8"):
        refine.guided_filter(torch.zeros((4, 4, 3)), torch.zeros((4, 4)))
    with pytest.raises(InputError, match="mask must be float"):
        refine.guided_filter(torch.zeros((4, 4, 3), dtype=torch.uint8), torch.zeros((1, 4, 4)))
    with pytest.raises(InputError, match="do not agree"):
        refine.stabilize(torch.zeros(4, 4), torch.zeros(4, 5), torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))
    with pytest.raises(InputError, match="eps must be positive"):
        refine.RefineSettings(eps=0)
    with pytest.raises(InputError, match="has no implementation 'gpu'"):
        refine.guided_filter(torch.zeros((4, 4, 3), dtype=torch.uint8), torch.zeros((4, 4)), impl="gpu")
