import math
import subprocess
import sys

import pytest
import torch

from neuralframe.errors import InputError, MissingDependencyError
from neuralframe.render.camera import Camera
from neuralframe.render.splat import Gaussians, rasterize, rasterize_op
from neuralframe.render.splat.procedural import front_camera, random_scene
from neuralframe.render.splat.rasterize_ref import C1

pytestmark = pytest.mark.kernel("splat.rasterize", cuda=True)


def device_for(impl: str) -> str:
    return "cuda" if impl == "cuda" else "cpu"


def render(g: Gaussians, cam: Camera, impl: str, **kw):
    out = rasterize(g.to(device_for(impl)), cam, impl=impl, **kw)
    return out.cpu()


def centred_camera(w=33, h=25, f=40.0) -> Camera:
    """A camera at the origin looking along +z whose optical axis hits the centre of pixel (16, 12)."""
    K = torch.tensor([[f, 0, 16.5], [0, f, 12.5], [0, 0, 1]], dtype=torch.float64)
    return Camera(torch.eye(4), K, w, h)


def one(mean, rgb, scale, opacity, sh_degree=0) -> Gaussians:
    return Gaussians.from_colors(torch.tensor([mean], dtype=torch.float32), torch.tensor([rgb]),
                                 torch.tensor([scale]), opacities=torch.tensor([opacity]), sh_degree=sh_degree)


def test_single_gaussian_peak_and_footprint(impl):
    cam = centred_camera()
    z, s, o = 2.0, 0.05, 0.8
    out = render(one((0.0, 0.0, z), (0.2, 0.6, 1.0), s, o), cam, impl)
    # At the centre sigma = 0: alpha is the opacity, colour alpha * rgb, depth z.
    assert out.alpha[12, 16].item() == pytest.approx(o, rel=1e-5)
    assert out.rgb[12, 16].tolist() == pytest.approx([0.2 * o, 0.6 * o, 1.0 * o], rel=1e-5)
    assert out.depth[12, 16].item() == pytest.approx(z, rel=1e-6)
    # Three pixels right: the projected variance is (f s / z)^2 plus the 0.3 px^2 low-pass filter.
    var = (40.0 * s / z) ** 2 + 0.3
    assert out.alpha[12, 19].item() == pytest.approx(o * math.exp(-0.5 * 9 / var), rel=1e-4)
    assert out.alpha[15, 16].item() == pytest.approx(o * math.exp(-0.5 * 9 / var), rel=1e-4)
    # Nothing where alpha would fall below 1/255: the footprint ends at sqrt(2 ln(255 o) var).
    edge = math.sqrt(2 * math.log(255 * o) * var)
    assert out.alpha[12, 16 + math.ceil(edge)].item() == 0.0
    assert out.alpha[12, 16 + math.floor(edge)].item() > 0.0
    assert out.alpha[0, 0].item() == 0.0 and out.depth[0, 0].item() == 0.0


def test_antialiased_compensates_opacity(impl):
    cam = centred_camera()
    s, z, o = 0.01, 2.0, 0.9
    out = render(one((0.0, 0.0, z), (1.0, 1.0, 1.0), s, o), cam, impl, antialiased=True)
    v = (40.0 * s / z) ** 2
    assert out.alpha[12, 16].item() == pytest.approx(o * v / (v + 0.3), rel=1e-4)


def test_two_gaussians_composite_front_to_back(impl):
    cam = centred_camera()
    red = one((0.0, 0.0, 2.0), (1.0, 0.0, 0.0), 0.2, 0.5)
    blue = one((0.0, 0.0, 4.0), (0.0, 0.0, 1.0), 0.4, 0.5)
    for g in (Gaussians.cat([red, blue]), Gaussians.cat([blue, red])):  # input order does not matter
        out = render(g, cam, impl, background=torch.tensor([0.0, 1.0, 0.0]))
        # Blue is seen through red: 0.5 red + 0.25 blue, and the green background through both.
        assert out.rgb[12, 16].tolist() == pytest.approx([0.5, 0.25, 0.25], rel=1e-5)
        assert out.alpha[12, 16].item() == pytest.approx(0.75, rel=1e-6)
        assert out.depth[12, 16].item() == pytest.approx((0.5 * 2 + 0.25 * 4) / 0.75, rel=1e-5)


def alpha_cap(impl: str) -> float:
    """The largest alpha one Gaussian may take: 0.99 in the reference and cpu kernels (the 3DGS paper's
    value); gsplat's CUDA kernel hard-codes 0.999 (measured on an H100, gsplat 1.5.3)."""
    return 0.999 if impl == "cuda" else 0.99


def test_opaque_front_layer_hides_the_back(impl):
    cam = centred_camera()
    front = [one((0.0, 0.0, 2.0 + 0.01 * i), (1.0, 0.0, 0.0), 0.3, 0.999) for i in range(2)]
    back = one((0.0, 0.0, 5.0), (0.0, 1.0, 0.0), 0.5, 0.999)
    out = render(Gaussians.cat([back, *front]), cam, impl)
    # Alpha is clamped at 0.99 (gsplat's kernel: 0.999); the second layer would take T below 1e-4, so the
    # pixel stops there and the back Gaussian contributes nothing even though light is left.
    cap = alpha_cap(impl)
    assert out.rgb[12, 16].tolist() == pytest.approx([cap, 0.0, 0.0], rel=1e-6, abs=1e-6)
    assert out.alpha[12, 16].item() == pytest.approx(cap, rel=1e-6)


def test_near_plane_and_behind_camera_are_culled(impl):
    cam = centred_camera()
    behind = one((0.0, 0.0, -1.0), (1.0, 1.0, 1.0), 0.3, 0.9)
    too_near = one((0.0, 0.0, 0.005), (1.0, 1.0, 1.0), 0.01, 0.9)
    off_screen = one((5.0, 0.0, 1.0), (1.0, 1.0, 1.0), 0.01, 0.9)
    out = render(Gaussians.cat([behind, too_near, off_screen]), cam, impl)
    assert out.alpha.abs().max().item() == 0.0


def test_view_dependent_colour(impl):
    cam = centred_camera()
    g = one((0.0, 0.0, 2.0), (0.5, 0.5, 0.5), 0.1, 0.999, sh_degree=1)
    g.sh[0, 2] = torch.tensor([0.3, -0.3, -2.0])  # the z-facing basis function, -C1 z... here +C1 z
    out = render(g, cam, impl)
    # Viewing direction (0, 0, 1): colour = 0.5 + C0 * dc + C1 * sh_2, clamped at 0.
    expected = [max(0.5 + C1 * v, 0.0) * alpha_cap(impl) for v in (0.3, -0.3, -2.0)]
    assert out.rgb[12, 16].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    plain = render(g, cam, impl, sh_degree=0)
    assert plain.rgb[12, 16].tolist() == pytest.approx([0.5 * alpha_cap(impl)] * 3, rel=1e-5)


@pytest.mark.parametrize("n, degree, antialiased, seed", [
    (1, 0, False, 0), (40, 1, False, 1), (600, 2, True, 2), (3000, 3, False, 3), (3000, 0, True, 4),
])
def test_matches_reference_on_random_scenes(impl, n, degree, antialiased, seed):
    # Random scenes hold Gaussians behind the camera, across the near plane and off-screen.
    g = random_scene(n, seed=seed, sh_degree=degree, log_scale_mean=-2.0 if seed % 2 else -3.0)
    cam = front_camera(70 + seed, 50 + seed, near=0.05)
    bg = torch.tensor([0.1, 0.2, 0.3])
    want = rasterize(g, cam, impl="reference", antialiased=antialiased, background=bg)
    got = render(g, cam, impl, antialiased=antialiased, background=bg)
    assert want.alpha.max() > 0.3 or n < 10
    for name in ("rgb", "alpha", "depth"):
        a, b = getattr(want, name), getattr(got, name)
        if name == "depth":
            a, b = a / 6.0, b / 6.0  # depths up to 6: compare relative to the scene depth
        err = (a - b).abs().reshape(a.shape[0], a.shape[1], -1)
        assert err.mean((0, 1)).max().item() <= 1e-5, name
        assert err.amax((0, 1)).max().item() <= 1e-3, name


def test_reference_is_differentiable():
    g = random_scene(60, seed=7, sh_degree=1, box=((-1, 1), (-1, 1), (2, 4)), log_scale_mean=-2.0)
    cam = front_camera(32, 24)
    params = {k: v.clone().requires_grad_(True) for k, v in g.tensors().items()}
    target = torch.rand(24, 32, 3, generator=torch.Generator().manual_seed(0))

    def loss_of(p):
        out = rasterize(Gaussians(**p), cam, impl="reference")
        return ((out.rgb - target) ** 2).sum() + out.depth.sum() * 1e-3

    loss = loss_of(params)
    loss.backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    # The gradient predicts a small step along itself (directional finite difference). The 1/255
    # cut-off makes the image jump where a footprint grows, which autograd does not see: 10%.
    for name in ("means", "scales", "opacities", "sh"):
        v = params[name].grad / params[name].grad.norm()
        eps = 1e-3
        with torch.no_grad():
            up = loss_of({**params, name: params[name] + eps * v})
            down = loss_of({**params, name: params[name] - eps * v})
        numeric = (up - down) / (2 * eps)
        assert numeric.item() == pytest.approx(params[name].grad.norm().item(), rel=0.1), name


def test_bad_arguments_say_what_is_wrong():
    g = random_scene(5, sh_degree=1)
    cam = front_camera(8, 8)
    with pytest.raises(InputError, match="sh_degree must be an integer from 0 to the scene's degree 1"):
        rasterize(g, cam, sh_degree=2)
    with pytest.raises(InputError, match=r"background must be an RGB colour of shape \[3\]"):
        rasterize(g, cam, background=[1.0, 0.0])
    with pytest.raises(InputError, match="unknown implementation 'fast'"):
        rasterize(g, cam, impl="fast")
    with pytest.raises((InputError, MissingDependencyError), match="cuda"):
        rasterize(g, cam, impl="cuda")
    with pytest.raises(InputError, match="Gaussians.scales must have shape"):
        Gaussians(g.means, g.quats, g.scales[:, :2], g.opacities, g.sh)


def test_auto_picks_the_cpu_kernel_on_cpu():
    assert rasterize_op.name_for("auto", "cpu") == ("cpu" if "cpu" in rasterize_op.available("cpu") else "reference")


def test_importing_stays_cheap():
    code = (
        "import sys, neuralframe, neuralframe.render\n"
        "assert 'torch' not in sys.modules, 'neuralframe.render imported torch'\n"
        "import neuralframe.render.splat\n"
        "assert 'numba' not in sys.modules, 'neuralframe.render.splat imported numba'\n"
        "assert 'neuralframe.render.splat.rasterize_cpu' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
