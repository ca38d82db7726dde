"""Pinhole cameras, and the projection of 3-D Gaussians to the image plane (EWA splatting).

A camera maps a world point ``x`` to camera coordinates ``p = R x + t`` (OpenCV axes: x right, y down, z forward)
and then to pixels ``u = fx p_x / p_z + cx``, ``v = fy p_y / p_z + cy``; pixel (i, j) has its centre at
(j + 0.5, i + 0.5), so ``cx = W / 2`` puts the optical axis in the middle of the image.

The projection is not linear, so a Gaussian does not stay Gaussian. EWA splatting (Zwicker et al., 2002) replaces the
projection near the Gaussian's mean by its first-order Taylor expansion, whose Jacobian is

    J = [[fx / z, 0, -fx x / z^2],
         [0, fy / z, -fy y / z^2]]          at (x, y, z) = R mu + t,

and the 2-D covariance is then ``J R Sigma R^T J^T`` (3DGS, eq. 5). A small ``eps2d * I`` (0.3 px^2 in 3DGS) is added
as a low-pass filter so that no splat is thinner than about a pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """World-to-camera (R (3, 3), t (3,)) for a camera at ``eye`` looking at ``target`` (OpenCV axes, y down)."""
    eye, target, up = (torch.as_tensor(v, dtype=torch.float32) for v in (eye, target, up))
    z = torch.nn.functional.normalize(target - eye, dim=0)  # forward
    x = torch.nn.functional.normalize(torch.linalg.cross(z, up), dim=0)  # right
    y = torch.linalg.cross(z, x)  # down
    R = torch.stack([x, y, z])  # rows: the camera axes in world coordinates
    return R, -R @ eye


@dataclass
class Camera:
    """A pinhole camera: world-to-camera R (3, 3), t (3,); intrinsics fx, fy, cx, cy in pixels; image size."""

    R: torch.Tensor
    t: torch.Tensor
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def look_at(cls, eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), width: int = 64, height: int = 64,
                fov_deg: float = 50.0) -> "Camera":
        """A camera at ``eye`` looking at ``target`` with a horizontal field of view of ``fov_deg`` degrees."""
        R, t = look_at(eye, target, up)
        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
        return cls(R, t, f, f, width / 2, height / 2, width, height)

    @property
    def center(self) -> torch.Tensor:
        """(3,) the camera centre in world coordinates, -R^T t."""
        return -self.R.T @ self.t

    @property
    def K(self) -> torch.Tensor:
        """(3, 3) the intrinsic matrix."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def viewmat(self) -> torch.Tensor:
        """(4, 4) world-to-camera matrix [[R, t], [0, 1]] (the form ``gsplat`` takes)."""
        m = torch.eye(4)
        m[:3, :3], m[:3, 3] = self.R, self.t
        return m

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """(N, 3) world points -> (N, 3) camera coordinates R x + t."""
        return points @ self.R.T.to(points) + self.t.to(points)

    def scaled(self, factor: float) -> "Camera":
        """The same camera with an image ``factor`` times as wide and high (intrinsics scaled)."""
        return Camera(self.R, self.t, self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor,
                      round(self.width * factor), round(self.height * factor))


def ring_cameras(n: int, radius: float = 4.0, elevation: float = 1.5, width: int = 64, height: int = 64,
                 fov_deg: float = 50.0, target=(0.0, 0.0, 0.0), phase: float = 0.0) -> list[Camera]:
    """n cameras evenly spaced on a horizontal circle of ``radius`` at height ``elevation`` above the target
    (world z is up), all looking at ``target``; the first one at azimuth ``phase`` radians."""
    cams = []
    tx, ty, tz = (float(v) for v in target)
    for k in range(n):
        a = phase + 2 * math.pi * k / n
        eye = (tx + radius * math.cos(a), ty + radius * math.sin(a), tz + elevation)
        cams.append(Camera.look_at(eye, target, (0.0, 0.0, 1.0), width, height, fov_deg))
    return cams


def project_points(p_cam: torch.Tensor, fx: float, fy: float, cx: float, cy: float) -> torch.Tensor:
    """(N, 3) camera-space points -> (N, 2) pixel coordinates (u, v)."""
    x, y, z = p_cam.unbind(-1)
    return torch.stack([fx * x / z + cx, fy * y / z + cy], -1)


def projection_jacobian(p_cam: torch.Tensor, fx: float, fy: float) -> torch.Tensor:
    """(N, 3) camera-space points -> (N, 2, 3): the Jacobian d(u, v) / d(x, y, z) of ``project_points``."""
    x, y, z = p_cam.unbind(-1)
    zero = torch.zeros_like(z)
    return torch.stack([
        torch.stack([fx / z, zero, -fx * x / z**2], -1),
        torch.stack([zero, fy / z, -fy * y / z**2], -1),
    ], -2)


def project_gaussians(means: torch.Tensor, covs: torch.Tensor, camera: Camera, eps2d: float = 0.3,
                      clip: float | None = 1.3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA projection of (N, 3) means and (N, 3, 3) covariances through ``camera``.

    Returns means2d (N, 2) in pixels, cov2d (N, 2, 2) = J R Sigma R^T J^T + eps2d I, and depths (N,) = camera z.
    As in 3DGS, the Jacobian is evaluated with x/z, y/z clamped to ``clip`` times the half field of view, so that
    Gaussians far outside the image (where the linearisation is poor) do not blow up; inside the image it is exact.
    ``clip=None`` evaluates the exact Jacobian everywhere.
    """
    R = camera.R.to(means)
    p = means @ R.T + camera.t.to(means)
    z = p[:, 2]
    zc = z.clamp_min(1e-6)
    xj, yj = p[:, 0], p[:, 1]
    if clip is not None:
        lim_x, lim_y = clip * 0.5 * camera.width / camera.fx, clip * 0.5 * camera.height / camera.fy
        xj = (xj / zc).clamp(-lim_x, lim_x) * zc
        yj = (yj / zc).clamp(-lim_y, lim_y) * zc
    J = projection_jacobian(torch.stack([xj, yj, zc], -1), camera.fx, camera.fy)
    T = J @ R  # (N, 2, 3)
    cov2d = T @ covs @ T.transpose(-1, -2) + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    means2d = project_points(torch.stack([p[:, 0], p[:, 1], zc], -1), camera.fx, camera.fy, camera.cx, camera.cy)
    return means2d, cov2d, z
