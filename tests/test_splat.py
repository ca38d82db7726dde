"""llmlab.splat: the pure-PyTorch Gaussian-splatting rasterizer (bonus notebooks 6 and 7).

References: scipy's Rotation for quaternions, autograd for the projection Jacobian, Monte Carlo samples for the EWA
covariance, a back-to-front "over" loop for compositing, skimage.metrics for PSNR/SSIM, gradcheck for the gradients.
"""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from llmlab.splat import (Camera, GaussianModel, Gaussians, composite, covariance_2d, covariance_3d, make_scene,
                          project_gaussians, projection_jacobian, psnr, quat_to_rotmat, rasterize_2d, render,
                          ring_cameras, sh_to_rgb, ssim)
from llmlab.splat.camera import project_points
from llmlab.splat.gaussians import rgb_to_sh0


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def _random_gaussians(n, gen, sh_degree=0, scale=0.15):
    means = (torch.rand(n, 3, generator=gen) * 2 - 1) * 0.8
    return Gaussians(means, torch.rand(n, 3, generator=gen) * scale + 0.05, torch.randn(n, 4, generator=gen),
                     torch.rand(n, generator=gen) * 0.8 + 0.1, torch.randn(n, (sh_degree + 1) ** 2, 3, generator=gen))


def test_covariance_2d_rotates_the_axes():
    s = torch.tensor([[2.0, 0.5]])
    assert torch.allclose(covariance_2d(s, torch.tensor([0.0])), torch.diag(torch.tensor([4.0, 0.25]))[None])
    # a quarter turn swaps the axes; 1e-6: float32 round-off of cos(pi/2)
    assert torch.allclose(covariance_2d(s, torch.tensor([math.pi / 2])), torch.diag(torch.tensor([0.25, 4.0]))[None], atol=1e-6)


def test_quaternions_match_scipy(gen):
    q = torch.randn(16, 4, generator=gen, dtype=torch.float64)
    want = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()  # scipy is scalar-last
    assert np.allclose(quat_to_rotmat(q).numpy(), want, atol=1e-12)


def test_covariance_3d_eigenvalues_are_squared_scales(gen):
    s, q = torch.rand(8, 3, generator=gen, dtype=torch.float64) + 0.1, torch.randn(8, 4, generator=gen, dtype=torch.float64)
    ev = torch.linalg.eigvalsh(covariance_3d(s, q))
    assert torch.allclose(ev, (s**2).sort(-1).values, atol=1e-12)


def test_projection_jacobian_matches_autograd(gen):
    p = torch.randn(5, 3, generator=gen, dtype=torch.float64) + torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64)
    J = projection_jacobian(p, 50.0, 60.0)
    for i in range(5):
        ref = torch.autograd.functional.jacobian(lambda x: project_points(x[None], 50.0, 60.0, 32.0, 32.0)[0], p[i])
        assert torch.allclose(J[i], ref, atol=1e-12)


def test_ewa_covariance_matches_projected_samples():
    """A small Gaussian (sigma ~ 0.02 at depth ~4): the linearisation error is ~sigma/z ~ 0.5 %, and 400k samples
    estimate a covariance to ~0.3 %, so 3 % relative is a loose but discriminating tolerance."""
    cam = Camera.look_at((4.0, 1.0, 1.0), width=64, height=48, fov_deg=50)
    mean = torch.tensor([[0.2, -0.1, 0.3]], dtype=torch.float64)
    cov = covariance_3d(torch.tensor([[0.03, 0.01, 0.02]], dtype=torch.float64), torch.tensor([[0.9, 0.3, -0.2, 0.1]], dtype=torch.float64))
    m2, c2, _ = project_gaussians(mean, cov, cam, eps2d=0.0)
    x = torch.distributions.MultivariateNormal(mean[0], cov[0]).sample((400_000,))
    uv = project_points(cam.to_camera(x), cam.fx, cam.fy, cam.cx, cam.cy)
    assert torch.allclose(uv.mean(0), m2[0], rtol=0, atol=0.01)
    assert torch.allclose(torch.cov(uv.T), c2[0], rtol=0.03, atol=1e-3 * c2[0].abs().max().item())


def test_composite_matches_back_to_front_over(gen):
    a, c, bg = torch.rand(6, 10, generator=gen), torch.rand(6, 3, generator=gen), torch.rand(3, generator=gen)
    want = bg.expand(10, 3).clone()
    for i in reversed(range(6)):  # "over", from the back: C <- a_i c_i + (1 - a_i) C
        want = a[i, :, None] * c[i] + (1 - a[i, :, None]) * want
    assert torch.allclose(composite(a, c, bg), want, atol=1e-6)


def test_sh_degree_1_is_odd_in_the_direction(gen):
    rgb = torch.rand(4, 3, generator=gen) * 0.5 + 0.25
    sh = torch.cat([rgb_to_sh0(rgb)[:, None], 0.1 * torch.randn(4, 3, 3, generator=gen)], 1)
    d = torch.nn.functional.normalize(torch.randn(4, 3, generator=gen), dim=-1)
    assert torch.allclose(sh_to_rgb(sh[:, :1]), rgb, atol=1e-6)
    assert torch.allclose(sh_to_rgb(sh, d) + sh_to_rgb(sh, -d), 2 * rgb, atol=1e-6)  # the linear terms cancel


def test_single_gaussian_lands_on_the_optical_axis():
    cam = Camera.look_at((0.0, -3.0, 0.0), width=33, height=33)
    g = Gaussians(torch.zeros(1, 3), torch.full((1, 3), 0.2), torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([0.7]),
                  rgb_to_sh0(torch.tensor([[1.0, 0.0, 0.0]]))[:, None])
    r = render(g, cam)
    assert r.alpha.argmax().item() == 16 * 33 + 16 and abs(r.alpha.max().item() - 0.7) < 1e-3  # 1e-3: the pixel is 0.5 px off the peak
    assert abs(r.depth[16, 16].item() - 3.0) < 1e-5


def test_depth_order_not_list_order():
    cam = Camera.look_at((0.0, -4.0, 0.0), width=17, height=17)  # odd: pixel (8, 8) is centred on the axis
    means = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])  # the second is nearer the camera
    cols = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    g = Gaussians(means, torch.full((2, 3), 0.3), torch.tensor([[1.0, 0, 0, 0]]).repeat(2, 1), torch.tensor([0.9, 0.9]),
                  rgb_to_sh0(cols)[:, None])
    for idx in ([0, 1], [1, 0]):
        px = render(g[torch.tensor(idx)], cam).image[8, 8]
        assert torch.allclose(px, torch.tensor([0.9, 0.0, 0.1 * 0.9]), atol=1e-4)  # red in front, blue through it


@pytest.mark.parametrize("tile", [16, 13])
def test_tiled_equals_dense(gen, tile):
    g = _random_gaussians(60, gen, sh_degree=1)
    cam = ring_cameras(3, radius=3.0, width=40, height=35)[1]
    a, b = render(g, cam, torch.ones(3)), render(g, cam, torch.ones(3), tile_size=tile)
    assert torch.allclose(a.image, b.image, atol=1e-5) and torch.allclose(a.alpha, b.alpha, atol=1e-5)


def test_render_gradients_gradcheck(gen):
    """float64, no 3-sigma cutoff (which is a step): autograd equals finite differences for every parameter."""
    g = _random_gaussians(4, gen, sh_degree=1)
    g = Gaussians(*(t.double() for t in (g.means, g.scales, g.quats, g.opacities, g.sh)))
    cam = Camera.look_at((3.0, 0.5, 0.5), width=8, height=7, fov_deg=60)

    def f(means, scales, quats, opac, sh):
        return render(Gaussians(means, scales, quats, opac, sh), cam, torch.ones(3, dtype=torch.float64), cutoff=None).image

    args = tuple(t.clone().requires_grad_() for t in (g.means, g.scales, g.quats, g.opacities, g.sh))
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("shape", [(20, 23), (20, 23, 3), (11, 11, 3)])
@pytest.mark.parametrize("gaussian", [False, True])
def test_metrics_match_skimage(gen, shape, gaussian):
    a = torch.rand(shape, generator=gen, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if gaussian else {}
    want = structural_similarity(a.numpy(), b.numpy(), data_range=1.0, channel_axis=-1 if len(shape) == 3 else None, **kw)
    assert abs(ssim(a, b, gaussian=gaussian).item() - want) < 1e-10  # float64 both: round-off only
    assert abs(psnr(a, b).item() - peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0)) < 1e-10


def test_metrics_batch_is_per_image(gen):
    a, b = torch.rand(3, 16, 16, 3, generator=gen), torch.rand(3, 16, 16, 3, generator=gen)
    assert psnr(a, b).shape == (3,) and torch.allclose(ssim(a, b)[1], ssim(a[1], b[1]))


def test_scene_is_reproducible_and_has_held_out_views():
    s1, s2 = make_scene(4, 2, size=24, n_per_object=40, seed=3), make_scene(4, 2, size=24, n_per_object=40, seed=3)
    assert s1.train_images.shape == (4, 24, 24, 3) and s1.test_images.shape == (2, 24, 24, 3)
    assert torch.equal(s1.train_images, s2.train_images)
    assert (s1.train_images < 0.9).any(-1).float().mean() > 0.1  # the objects cover part of every view
    assert psnr(s1.test_images[0], s1.train_images[0]) < 25  # a held-out view is a new view


def test_2d_fit_reduces_error():
    target = torch.zeros(12, 16, 3)
    target[3:9, 4:12] = torch.tensor([1.0, 0.5, 0.0])
    gen = torch.Generator().manual_seed(0)
    means = torch.nn.Parameter(torch.rand(20, 2, generator=gen) * torch.tensor([16.0, 12.0]))
    log_s, theta = torch.nn.Parameter(torch.zeros(20, 2)), torch.nn.Parameter(torch.zeros(20))
    col, opa = torch.nn.Parameter(torch.zeros(20, 3)), torch.nn.Parameter(torch.zeros(20))
    opt = torch.optim.Adam([means, log_s, theta, col, opa], lr=0.05)
    losses = []
    for _ in range(100):
        img = rasterize_2d(means, covariance_2d(log_s.exp(), theta), col.sigmoid(), opa.sigmoid(), 12, 16)
        loss = ((img - target) ** 2).mean()
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_model_activations():
    m = GaussianModel.random(10, generator=torch.Generator().manual_seed(0))
    g = m()
    assert (g.scales > 0).all() and ((g.opacities > 0) & (g.opacities < 1)).all() and len(m) == 10
    assert torch.allclose(GaussianModel.from_gaussians(g)().scales, g.scales)
