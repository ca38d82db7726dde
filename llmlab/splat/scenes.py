"""Synthetic multi-view scenes with known ground truth, rendered by the course's own rasterizer.

Each object is a few hundred Gaussians on a surface (a sphere, a box with flat splats on its faces, a torus, a
cylinder), coloured with a base colour, baked-in diffuse shading and a stripe texture, so that a fit has edges and
detail to recover. ``make_scene`` places a few objects around the origin, puts cameras on a ring around them and
renders training views and held-out views from azimuths between the training ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from llmlab.splat.camera import Camera, ring_cameras
from llmlab.splat.gaussians import Gaussians, rgb_to_sh0
from llmlab.splat.rasterize import render_views

OBJECT_KINDS = ("sphere", "box", "torus", "cylinder")
LIGHT = torch.nn.functional.normalize(torch.tensor([0.4, 0.3, 1.0]), dim=0)
PALETTE = torch.tensor([[0.85, 0.2, 0.15], [0.15, 0.55, 0.85], [0.95, 0.75, 0.1], [0.2, 0.7, 0.3], [0.6, 0.3, 0.75]])

_QUAT_Z_TO = {  # unit quaternions (w, x, y, z) that rotate the z axis onto a face normal's axis
    0: (math.cos(math.pi / 4), 0.0, math.sin(math.pi / 4), 0.0),  # x
    1: (math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0),  # y
    2: (1.0, 0.0, 0.0, 0.0),  # z
}


def _surface(kind: str, n: int, g: torch.Generator):
    """n points on a unit-size surface: points (n, 3), normals (n, 3), quats (n, 4), scale factors (n, 3)."""
    flat = torch.tensor([1.0, 1.0, 1.0])
    quats = torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1)
    if kind == "sphere":  # a Fibonacci lattice on the unit sphere
        i = torch.arange(n, dtype=torch.float32) + 0.5
        z = 1 - 2 * i / n
        phi = math.pi * (1 + 5**0.5) * i
        r = (1 - z * z).sqrt()
        pts = torch.stack([r * phi.cos(), r * phi.sin(), z], -1)
        normals, area = pts, 4 * math.pi
    elif kind == "box":  # uniform points on the faces of [-0.8, 0.8]^3, flat splats lying in each face
        face = torch.randint(0, 6, (n,), generator=g)
        axis, sign = face % 3, (face // 3) * 2 - 1
        pts = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.8
        pts[torch.arange(n), axis] = sign.float() * 0.8
        normals = torch.zeros(n, 3)
        normals[torch.arange(n), axis] = sign.float()
        quats = torch.tensor([_QUAT_Z_TO[int(a)] for a in axis])
        flat, area = torch.tensor([1.0, 1.0, 0.15]), 6 * 1.6**2
    elif kind == "torus":  # major radius 0.75, minor 0.3, lying in the xy plane
        u = torch.rand(n, generator=g) * 2 * math.pi
        v = torch.rand(n, generator=g) * 2 * math.pi
        normals = torch.stack([v.cos() * u.cos(), v.cos() * u.sin(), v.sin()], -1)
        pts = torch.stack([0.75 * u.cos(), 0.75 * u.sin(), torch.zeros(n)], -1) + 0.3 * normals
        area = 4 * math.pi**2 * 0.75 * 0.3
    elif kind == "cylinder":  # radius 0.6, height 1.6, closed by its two caps
        side = torch.rand(n, generator=g) < 0.75
        a = torch.rand(n, generator=g) * 2 * math.pi
        h = (torch.rand(n, generator=g) * 2 - 1) * 0.8
        rr = 0.6 * torch.rand(n, generator=g).sqrt()
        cap = torch.where(torch.rand(n, generator=g) < 0.5, -0.8, 0.8)
        pts = torch.where(side[:, None], torch.stack([0.6 * a.cos(), 0.6 * a.sin(), h], -1),
                          torch.stack([rr * a.cos(), rr * a.sin(), cap], -1))
        normals = torch.where(side[:, None], torch.stack([a.cos(), a.sin(), torch.zeros(n)], -1),
                              torch.stack([torch.zeros(n), torch.zeros(n), cap.sign()], -1))
        area = 2 * math.pi * 0.6 * 1.6 + 2 * math.pi * 0.36
    else:
        raise ValueError(f"kind must be one of {OBJECT_KINDS}, got {kind!r}")
    spacing = math.sqrt(area / n)
    return pts, normals, quats, (flat * spacing * 0.7).expand(n, 3).clone()


def make_object(kind: str = "sphere", center=(0.0, 0.0, 0.0), size: float = 0.5, color=(0.85, 0.2, 0.15),
                n: int = 300, stripes: float = 4.0, seed: int = 0) -> Gaussians:
    """One object of ``n`` degree-0 Gaussians: ``kind`` in OBJECT_KINDS, ``size`` ~ its half-width in world units,
    coloured ``color`` with diffuse shading from a fixed light and ``stripes`` bands along z (0: none)."""
    g = torch.Generator().manual_seed(seed)
    pts, normals, quats, scales = _surface(kind, n, g)
    color = torch.as_tensor(color, dtype=torch.float32)
    shade = 0.45 + 0.55 * (normals @ LIGHT).clamp_min(0.0)
    band = 1.0 if stripes == 0 else 0.8 + 0.2 * torch.sign(torch.sin(stripes * math.pi * pts[:, 2]))[:, None]
    rgb = (color * shade[:, None] * band).clamp(0, 1)
    means = pts * size + torch.as_tensor(center, dtype=torch.float32)
    return Gaussians(means, scales * size, quats, torch.full((n,), 0.95), rgb_to_sh0(rgb)[:, None, :])


@dataclass
class Scene:
    """Ground-truth Gaussians, cameras and the images they render: train_images (V, H, W, 3), test_images likewise."""

    gaussians: Gaussians
    train_cameras: list[Camera]
    test_cameras: list[Camera]
    train_images: torch.Tensor
    test_images: torch.Tensor
    background: torch.Tensor


def make_scene(n_train: int = 8, n_test: int = 4, size: int = 64, kinds=("sphere", "box", "torus"),
               n_per_object: int = 300, radius: float = 4.0, elevation: float = 2.0, fov_deg: float = 45.0,
               background=(1.0, 1.0, 1.0), seed: int = 0) -> Scene:
    """A few objects around the origin (within ~1.3 units), seen by ``n_train`` cameras on a ring and ``n_test``
    held-out cameras at azimuths between them (and a little higher), all ``size`` x ``size`` pixels."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for k, kind in enumerate(kinds):
        a = 2 * math.pi * k / len(kinds) + float(torch.rand(1, generator=g)) * 0.5
        center = (0.8 * math.cos(a), 0.8 * math.sin(a), float(torch.rand(1, generator=g)) * 0.4 - 0.2)
        color = PALETTE[(k + seed) % len(PALETTE)]
        parts.append(make_object(kind, center, 0.45, color, n_per_object, seed=seed * 100 + k))
    gt = Gaussians.cat(parts)
    bg = torch.tensor(background, dtype=torch.float32)
    train = ring_cameras(n_train, radius, elevation, size, size, fov_deg)
    test = ring_cameras(n_test, radius, elevation * 1.25, size, size, fov_deg, phase=math.pi / n_train)  # half-way
    with torch.no_grad():
        train_images = render_views(gt, train, background=bg)
        test_images = render_views(gt, test, background=bg)
    return Scene(gt, train, test, train_images, test_images, bg)
