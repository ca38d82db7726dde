"""A toy 3-D diffusion model: DDPM over point clouds of simple shapes (bonus notebook 7, section 6).

Point-E (Nichol et al., 2022) and Luo & Hu (2021) generate a 3-D shape as a set of N points x0 (N, 3) with the same
DDPM as images (bonus notebook 4, ``llmlab.diffusion.ddpm``): noise every coordinate, train a network to predict the
noise, sample by ancestral steps. Two things change for a *set*: the noise level t is drawn once per cloud (all its
points share it), and the denoiser must not depend on the order of the points, so it is a Transformer over the
points without positional encodings (permutation-equivariant), conditioned on t and on the shape's label.

- :func:`shape_clouds`     -- (B, N, 3) points on random objects of given kinds (``llmlab.splat.objects``).
- :class:`PointDenoiser`   -- ε̂(x_t, t, label): per-point embedding + timestep/label features, a Transformer.
- :func:`point_diffusion_loss` -- the ε-prediction loss with one t per cloud.
- :func:`sample_clouds`    -- ancestral sampling with ``llmlab.diffusion.ddpm.ddpm_step``.
- :func:`clouds_to_gaussians`, :func:`chamfer` -- render samples as small Gaussians; the Chamfer distance.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmlab.diffusion.ddpm import add_noise, ddpm_step, timestep_features
from llmlab.splat.gaussians import Gaussians, rgb_to_sh0
from llmlab.splat.objects import random_object


def shape_clouds(kinds: list[str], n_points: int, seed: int) -> torch.Tensor:
    """(len(kinds), n_points, 3): the centres of a random object of each kind (seeds seed, seed + 1, ...)."""
    return torch.stack([random_object(seed + i, (kind,), n_points).means for i, kind in enumerate(kinds)])


class PointDenoiser(nn.Module):
    """ε̂ for point clouds (B, N, 3): Linear(3, d) per point + features of t + a label embedding, then a
    Transformer encoder over the N points (no positional encoding: permuting the points permutes the output)."""

    def __init__(self, n_labels: int, d: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.d = d
        self.inp = nn.Linear(3, d)
        self.cond = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.label = nn.Embedding(n_labels, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 3))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = self.cond(timestep_features(t, self.d)) + self.label(labels)  # (B, d)
        return self.out(self.blocks(self.inp(x) + c[:, None, :]))


def point_diffusion_loss(model, x0: torch.Tensor, labels: torch.Tensor, alphas_cumprod: torch.Tensor,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """x0 (B, N, 3): t = randint(0, T, (B,)) (one per cloud), then noise (B, N, 3), both from ``generator``;
    the MSE between model(x_t, t, labels) and the noise."""
    t = torch.randint(0, len(alphas_cumprod), (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    return F.mse_loss(model(add_noise(x0, noise, t, alphas_cumprod), t, labels), noise)


@torch.no_grad()
def sample_clouds(model, labels: torch.Tensor, n_points: int, betas: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(B, n_points, 3) clouds from pure noise by len(betas) ancestral DDPM steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), n_points, 3, generator=g)
    for t in reversed(range(len(betas))):
        x = ddpm_step(model(x, torch.full((len(labels),), t), labels), t, x, betas, generator=g)
    return x


def clouds_to_gaussians(points: torch.Tensor, color, scale: float = 0.05) -> Gaussians:
    """(N, 3) points -> N round, nearly opaque Gaussians of one colour (shaded by height, to read the shape)."""
    n = len(points)
    shade = 0.6 + 0.4 * (points[:, 2:3] - points[:, 2].min()) / (points[:, 2].max() - points[:, 2].min() + 1e-6)
    rgb = (torch.as_tensor(color, dtype=torch.float32) * shade).clamp(0, 1)
    return Gaussians(points, torch.full((n, 3), scale), torch.tensor([1.0, 0, 0, 0]).repeat(n, 1),
                     torch.full((n,), 0.9), rgb_to_sh0(rgb)[:, None, :])


def chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance between clouds a (..., N, 3) and b (..., M, 3): mean nearest-neighbour distances."""
    d = torch.cdist(a, b)
    return 0.5 * (d.min(-1).values.mean(-1) + d.min(-2).values.mean(-1))
