"""The fused kernels: every implementation against the reference and against known values."""

import pytest
import torch

from neuralframe.backend import fused
from neuralframe.errors import InputError

pytestmark = pytest.mark.kernel("fused.resize")


def _img(h, w, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w, c), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("shape,size", [((37, 53), (64, 80)), ((120, 90), (31, 47)), ((16, 16), (16, 16)),
                                        ((1, 9), (4, 3))])
def test_resize_matches_reference(impl, shape, size):
    img = _img(*shape, seed=shape[0])
    ref = fused.resize(img, size, impl="reference")
    out = fused.resize(img, size, impl=impl)
    assert out.shape == (*size, 3) and out.dtype == torch.uint8
    diff = (out.int() - ref.int()).abs()
    assert diff.max() <= 1 and diff.float().mean() < 0.01  # float rounding at exact .5 boundaries only


def test_resize_known_values(impl):
    flat = torch.full((10, 14, 3), 77, dtype=torch.uint8)
    assert (fused.resize(flat, (23, 5), impl=impl) == 77).all()
    # 1x2 -> 1x4 with half-pixel centres: [0, 200] -> [0, 50, 150, 200]
    row = torch.tensor([[[0], [200]]], dtype=torch.uint8)
    assert fused.resize(row, (1, 4), impl=impl)[0, :, 0].tolist() == [0, 50, 150, 200]


def test_to_float_and_back(impl):
    img = _img(21, 34)
    x = fused.to_float(img, mean=(0.5, 0.4, 0.3), std=0.25, impl=impl)
    ref = fused.to_float(img, mean=(0.5, 0.4, 0.3), std=0.25, impl="reference")
    assert x.shape == (3, 21, 34)
    torch.testing.assert_close(x, ref, atol=1e-6, rtol=1e-6)
    assert x[0, 0, 0].item() == pytest.approx((img[0, 0, 0].item() / 255 - 0.5) / 0.25, abs=1e-6)
    back = fused.to_uint8(x, mean=(0.5, 0.4, 0.3), std=0.25, impl=impl)
    assert torch.equal(back, img)  # the round trip is lossless


def test_to_uint8_clamps_and_rounds_half_up(impl):
    x = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 1.0, 7.0]).reshape(1, 1, 6)
    assert fused.to_uint8(x, impl=impl)[0, :, 0].tolist() == [0, 0, 1, 2, 255, 255]


def test_preprocess_is_resize_then_normalise(impl):
    img = _img(45, 61, seed=3)
    out = fused.preprocess(img, (32, 40), mean=0.5, std=0.5, impl=impl)
    ref = fused.preprocess(img, (32, 40), mean=0.5, std=0.5, impl="reference")
    assert out.shape == (3, 32, 40)
    torch.testing.assert_close(out, ref, atol=2e-6, rtol=1e-5)
    assert out.min() >= -1.0 and out.max() <= 1.0


@pytest.mark.parametrize("grade", list(fused.GRADES))
def test_color_resize_matches_reference(impl, grade):
    img = _img(50, 70, seed=5)
    m, b = fused.grade(grade)
    out = fused.color_resize(img, (36, 48), m, b, impl=impl)
    ref = fused.color_resize(img, (36, 48), m, b, impl="reference")
    assert (out.int() - ref.int()).abs().max() <= 1


def test_color_grades_do_what_they_say(impl):
    img = _img(20, 20, seed=9)
    same = fused.color_resize(img, (20, 20), *fused.grade("identity"), impl=impl)
    assert torch.equal(same, img)
    gray = fused.color_resize(img, (20, 20), *fused.grade("gray"), impl=impl)
    assert torch.equal(gray[..., 0], gray[..., 1]) and torch.equal(gray[..., 1], gray[..., 2])


def test_composite(impl):
    fg, bg = _img(30, 40, seed=1), _img(30, 40, seed=2)
    alpha = torch.rand(30, 40, generator=torch.Generator().manual_seed(0))
    out = fused.composite(fg, alpha, bg, impl=impl)
    assert torch.equal(out, fused.composite(fg, alpha, bg, impl="reference"))
    assert torch.equal(fused.composite(fg, torch.ones(30, 40), bg, impl=impl), fg)
    assert torch.equal(fused.composite(fg, torch.zeros(30, 40), bg, impl=impl), bg)


def test_shape_errors_are_clear():
    with pytest.raises(InputError, match=r"uint8 \[H, W, C\], got float32 \[3, 8, 8\]"):
        fused.resize(torch.rand(3, 8, 8), (4, 4))
    with pytest.raises(InputError, match="size must be positive"):
        fused.resize(_img(8, 8), (0, 4))
    with pytest.raises(InputError, match=r"alpha must be \[H, W\]"):
        fused.composite(_img(8, 8), torch.rand(4, 4), _img(8, 8))
    with pytest.raises(InputError, match="unknown colour grade"):
        fused.grade("vintage")
