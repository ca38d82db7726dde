"""Gaussians: covariance from scale and rotation, spherical-harmonic colour, and a trainable parameter set.

A Gaussian splat is a mean ``mu``, a covariance ``Sigma``, an opacity in (0, 1) and a colour. ``Sigma`` must stay
symmetric positive semi-definite while it is optimised, so it is never a free parameter: it is built from a rotation
``R`` and per-axis scales ``s`` as ``Sigma = R diag(s)^2 R^T`` (Kerbl et al., 2023, *3D Gaussian Splatting*, eq. 6).
In 2-D the rotation is an angle; in 3-D a unit quaternion ``(w, x, y, z)``.

Colour is a function of the viewing direction, written in real spherical harmonics (SH). Degree 0 is one constant
per channel (``rgb = C0 * k0 + 0.5``); degree 1 adds three linear terms in the direction (4 coefficients per channel).
The constants and signs are those of the 3DGS reference code and ``gsplat``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

SH_C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
SH_C1 = 0.4886025119029199  # sqrt(3) / (2 sqrt(pi))


def rotation_2d(theta: torch.Tensor) -> torch.Tensor:
    """(...,) angles -> (..., 2, 2) rotation matrices [[cos, -sin], [sin, cos]]."""
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def covariance_2d(scale: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(..., 2) positive scales and (...,) angles -> (..., 2, 2) covariances R diag(s)^2 R^T."""
    R = rotation_2d(theta)
    M = R * scale.unsqueeze(-2)  # R @ diag(s): scales the columns
    return M @ M.transpose(-1, -2)


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def covariance_3d(scale: torch.Tensor, quat: torch.Tensor) -> torch.Tensor:
    """(..., 3) positive scales and (..., 4) quaternions -> (..., 3, 3) covariances R diag(s)^2 R^T."""
    M = quat_to_rotmat(quat) * scale.unsqueeze(-2)
    return M @ M.transpose(-1, -2)


def sh_to_rgb(sh: torch.Tensor, dirs: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K, 3) SH coefficients (K = 1: degree 0, K = 4: degree 1) and (N, 3) unit view directions -> (N, 3) RGB >= 0.

    Degree 1 uses the direction from the camera centre to the Gaussian, in world coordinates.
    """
    rgb = SH_C0 * sh[:, 0]
    if sh.shape[1] > 1:
        if dirs is None:
            raise ValueError("degree-1 SH colour needs the view directions")
        x, y, z = dirs.unbind(-1)
        rgb = rgb - SH_C1 * y[:, None] * sh[:, 1] + SH_C1 * z[:, None] * sh[:, 2] - SH_C1 * x[:, None] * sh[:, 3]
    return (rgb + 0.5).clamp_min(0.0)


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3) colours -> (N, 3) degree-0 coefficients that reproduce them: the inverse of ``C0 * k + 0.5``."""
    return (rgb - 0.5) / SH_C0


@dataclass
class Gaussians:
    """N 3-D Gaussians with activated (constrained) parameters.

    means (N, 3) world positions; scales (N, 3) > 0; quats (N, 4) (w, x, y, z), any norm; opacities (N,) in (0, 1);
    sh (N, K, 3) colour coefficients, K = 1 (degree 0) or 4 (degree 1).
    """

    means: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    opacities: torch.Tensor
    sh: torch.Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return int(math.isqrt(self.sh.shape[1])) - 1

    def covariances(self) -> torch.Tensor:
        return covariance_3d(self.scales, self.quats)

    def colors(self, camera_center: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3) RGB seen from a camera centre (needed for degree 1 only)."""
        dirs = None
        if self.sh.shape[1] > 1:
            dirs = torch.nn.functional.normalize(self.means - camera_center.to(self.means), dim=-1)
        return sh_to_rgb(self.sh, dirs)

    def __getitem__(self, idx) -> "Gaussians":
        return Gaussians(self.means[idx], self.scales[idx], self.quats[idx], self.opacities[idx], self.sh[idx])

    def detach(self) -> "Gaussians":
        return Gaussians(*(t.detach() for t in (self.means, self.scales, self.quats, self.opacities, self.sh)))

    def to(self, *args, **kwargs) -> "Gaussians":
        return Gaussians(*(t.to(*args, **kwargs) for t in (self.means, self.scales, self.quats, self.opacities, self.sh)))

    @staticmethod
    def cat(parts: list["Gaussians"]) -> "Gaussians":
        return Gaussians(*(torch.cat([getattr(p, f) for p in parts]) for f in ("means", "scales", "quats", "opacities", "sh")))


class GaussianModel(nn.Module):
    """Trainable Gaussians: unconstrained parameters, activated by ``forward()`` into a ``Gaussians``.

    scales = exp(log_scales), opacities = sigmoid(opacity_logits), quats normalised where they are used.
    """

    def __init__(self, means: torch.Tensor, scales: torch.Tensor, quats: torch.Tensor | None = None,
                 opacities: torch.Tensor | float = 0.5, sh: torch.Tensor | None = None, sh_degree: int = 0):
        super().__init__()
        n = means.shape[0]
        if quats is None:
            quats = torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1)
        if not torch.is_tensor(opacities):
            opacities = torch.full((n,), float(opacities))
        if sh is None:
            sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)
        self.means = nn.Parameter(means.clone().float())
        self.log_scales = nn.Parameter(scales.clone().float().log())
        self.quats = nn.Parameter(quats.clone().float())
        self.opacity_logits = nn.Parameter(torch.logit(opacities.clone().float().clamp(1e-4, 1 - 1e-4)))
        self.sh = nn.Parameter(sh.clone().float())

    @classmethod
    def from_gaussians(cls, g: Gaussians) -> "GaussianModel":
        return cls(g.means, g.scales, g.quats, g.opacities, g.sh)

    @classmethod
    def random(cls, n: int, extent: float = 1.0, scale: float = 0.1, sh_degree: int = 0,
               generator: torch.Generator | None = None) -> "GaussianModel":
        """n grey, half-transparent, round Gaussians uniformly in the cube [-extent, extent]^3."""
        means = (torch.rand(n, 3, generator=generator) * 2 - 1) * extent
        quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=generator), dim=-1)
        return cls(means, torch.full((n, 3), scale), quats, 0.5, sh_degree=sh_degree)

    def __len__(self) -> int:
        return self.means.shape[0]

    def forward(self) -> Gaussians:
        return Gaussians(self.means, self.log_scales.exp(), self.quats, torch.sigmoid(self.opacity_logits), self.sh)
