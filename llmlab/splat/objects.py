"""Synthetic single objects seen from fixed views: the training data of bonus notebook 7's tiny LGM.

LGM reads four views of an object at azimuths 0°, 90°, 180°, 270° (the views a multi-view diffusion model
generates) and is supervised by renders from other views. Here the objects are ``llmlab.splat.scenes``'
Gaussian objects (sphere, box, torus, cylinder) with a random kind, colour, size, stripe count and turn about the
vertical axis, rendered by the course's rasterizer, so every view has an exact ground truth.

- :func:`random_object` -- one random object (``Gaussians``) centred at the origin.
- :func:`input_cameras`, :func:`novel_cameras` -- the four input views and views between/above them.
- :func:`make_object_views` -- a dataset: for each object its input views and its supervision/held-out views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from llmlab.splat.camera import Camera, ring_cameras
from llmlab.splat.gaussians import Gaussians, quat_to_rotmat
from llmlab.splat.rasterize import render_views
from llmlab.splat.scenes import OBJECT_KINDS, make_object

RADIUS, ELEVATION, FOV = 4.0, 1.5, 40.0


def _turn_z(g: Gaussians, angle: float) -> Gaussians:
    """The object turned by ``angle`` radians about the world z axis (means and orientations)."""
    c, s = math.cos(angle / 2), math.sin(angle / 2)
    q = torch.tensor([c, 0.0, 0.0, s])
    w1, v1 = q[0], q[1:]
    w2, v2 = g.quats[:, 0], g.quats[:, 1:]
    quats = torch.cat([(w1 * w2 - v2 @ v1)[:, None], w1 * v2 + w2[:, None] * v1 + torch.linalg.cross(v1.expand_as(v2), v2)], 1)
    R = quat_to_rotmat(q[None])[0]
    return Gaussians(g.means @ R.T, g.scales, quats, g.opacities, g.sh)


def random_object(seed: int, kinds=OBJECT_KINDS, n: int = 300) -> Gaussians:
    """A random object centred at the origin: kind from ``kinds``, colour, half-width 0.4-0.6, 2-6 stripes, a turn."""
    g = torch.Generator().manual_seed(seed)
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
    color = 0.15 + 0.75 * torch.rand(3, generator=g)
    size = 0.4 + 0.2 * float(torch.rand(1, generator=g))
    stripes = float(torch.randint(2, 7, (1,), generator=g))
    obj = make_object(kind, (0.0, 0.0, 0.0), size, color, n, stripes=stripes, seed=seed)
    return _turn_z(obj, float(torch.rand(1, generator=g)) * 2 * math.pi)


def input_cameras(size: int) -> list[Camera]:
    """LGM's four input views: azimuths 0°, 90°, 180°, 270° on a ring, ``size`` × ``size`` pixels."""
    return ring_cameras(4, RADIUS, ELEVATION, size, size, FOV)


def novel_cameras(n: int, size: int, phase: float = math.pi / 4, elevation: float = ELEVATION) -> list[Camera]:
    """``n`` views on a ring starting at azimuth ``phase`` (45°: half-way between the inputs), at ``elevation``."""
    return ring_cameras(n, RADIUS, elevation, size, size, FOV, phase=phase)


@dataclass
class ObjectViews:
    """inputs (B, 4, 3, H, W) for the network; targets (B, V, H, W, 3) seen by ``target_cameras``; the objects."""

    objects: list[Gaussians]
    input_cameras: list[Camera]
    target_cameras: list[Camera]
    inputs: torch.Tensor
    targets: torch.Tensor
    background: torch.Tensor


@torch.no_grad()
def make_object_views(n_objects: int, size: int, target_cameras: list[Camera] | None = None, seed: int = 0,
                      kinds=OBJECT_KINDS, background=(1.0, 1.0, 1.0)) -> ObjectViews:
    """``n_objects`` random objects (seeds seed, seed + 1, ...), each rendered from the four input views and from
    ``target_cameras`` (default: the inputs and four views between them)."""
    bg = torch.tensor(background, dtype=torch.float32)
    cams_in = input_cameras(size)
    cams_t = target_cameras if target_cameras is not None else cams_in + novel_cameras(4, size)
    objs = [random_object(seed + i, kinds) for i in range(n_objects)]
    inputs = torch.stack([render_views(o, cams_in, background=bg) for o in objs]).permute(0, 1, 4, 2, 3)
    targets = torch.stack([render_views(o, cams_t, background=bg) for o in objs])
    return ObjectViews(objs, cams_in, cams_t, inputs.contiguous(), targets, bg)
