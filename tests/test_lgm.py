"""llmlab.splat.lgm and llmlab.splat.objects: rays, Plücker coordinates, pixel-aligned unprojection, the tiny LGM.

The rays are checked against the camera's own projection (llmlab.splat.camera.project_points, an independent path):
float32 pixel coordinates of O(10) agree to ~1e-5 px, so 1e-3 px leaves a wide margin.
"""

import torch

from llmlab.splat import lgm, objects
from llmlab.splat.camera import Camera, project_points


def _camera():
    return Camera.look_at((3.0, -2.0, 1.5), (0.1, 0.2, 0.0), width=12, height=8, fov_deg=50.0)


def test_rays_unproject_back_to_their_pixels():
    cam = _camera()
    depth = torch.rand(8, 12, generator=torch.Generator().manual_seed(0)) * 2 + 2
    pts = lgm.unproject(depth, cam)  # (96, 3)
    uv = project_points(cam.to_camera(pts), cam.fx, cam.fy, cam.cx, cam.cy)
    v, u = torch.meshgrid(torch.arange(8) + 0.5, torch.arange(12) + 0.5, indexing="ij")
    assert torch.allclose(uv, torch.stack([u, v], -1).reshape(-1, 2), atol=1e-3)
    assert torch.allclose((pts - cam.center).norm(dim=-1), depth.flatten(), atol=1e-5)  # depth along a unit ray


def test_plucker_moment_is_the_same_for_every_point_of_the_ray():
    o, d = lgm.pixel_rays(_camera())
    emb = lgm.camera_plucker(_camera())
    assert emb.shape == (6, 8, 12)
    assert torch.allclose(d.norm(dim=-1), torch.ones(8, 12), atol=1e-6)
    assert torch.allclose(lgm.plucker(o + 1.7 * d, d), emb.permute(1, 2, 0), atol=1e-5)
    assert torch.allclose((emb[:3] * emb[3:]).sum(0), torch.zeros(8, 12), atol=1e-5)  # moment ⟂ direction


def test_tiny_lgm_shapes_and_one_step_lowers_the_loss():
    torch.manual_seed(0)
    data = objects.make_object_views(2, 16, seed=3)
    assert data.inputs.shape == (2, 4, 3, 16, 16) and data.targets.shape == (2, 8, 16, 16, 3)
    rays = torch.stack([lgm.camera_plucker(c) for c in data.input_cameras])
    cams_out = [c.scaled(0.5) for c in data.input_cameras]
    net = lgm.TinyLGM((16, 32, 32))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):
        feat = net(data.inputs, rays)
        assert feat.shape == (2, 4, lgm.N_CHANNELS, 8, 8)
        gs = lgm.features_to_gaussians(feat, cams_out)
        assert len(gs) == 2 and gs[0].means.shape == (4 * 8 * 8, 3)
        loss = torch.nn.functional.mse_loss(lgm.render_batch(gs, data.target_cameras, data.background), data.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_random_objects_are_seeded_and_differ():
    a, b = objects.random_object(5), objects.random_object(5)
    assert torch.equal(a.means, b.means) and not torch.equal(a.means, objects.random_object(6).means)
    assert a.means.norm(dim=-1).max() < 1.0  # centred, within the unit ball the cameras frame


def test_point_denoiser_is_permutation_equivariant():
    from llmlab.splat import pointdiffusion as P

    torch.manual_seed(0)
    net = P.PointDenoiser(4, d=32)
    x, t, y = torch.randn(2, 20, 3), torch.tensor([3, 70]), torch.tensor([0, 2])
    perm = torch.randperm(20)
    assert torch.allclose(net(x[:, perm], t, y), net(x, t, y)[:, perm], atol=1e-5)  # float32 attention round-off


def test_point_diffusion_loss_draws_one_t_per_cloud_then_the_noise():
    from llmlab.diffusion.ddpm import add_noise, beta_schedule
    from llmlab.splat import pointdiffusion as P

    abar = torch.cumprod(1 - beta_schedule(50), 0)
    x0, y = torch.randn(3, 8, 3), torch.tensor([0, 1, 2])
    seen = []
    model = lambda x, t, labels: (seen.append((x, t)), x * 0.5)[1]  # noqa: E731
    got = P.point_diffusion_loss(model, x0, y, abar, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    t = torch.randint(0, 50, (3,), generator=g)
    noise = torch.randn(3, 8, 3, generator=g)
    x_t = add_noise(x0, noise, t, abar)
    assert torch.equal(seen[0][1], t) and torch.allclose(got, ((0.5 * x_t - noise) ** 2).mean(), atol=1e-6)
