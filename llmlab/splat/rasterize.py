"""Rasterizing Gaussians: evaluate each splat at each pixel, sort by depth, alpha-composite front to back.

For a pixel p and splats sorted front to back, splat i has opacity
``alpha_i(p) = o_i exp(-1/2 (p - m_i)^T S_i^{-1} (p - m_i))`` (its 2-D mean m_i, covariance S_i), and the pixel colour is

    C(p) = sum_i c_i alpha_i T_i + T_N * background,   T_i = prod_{j < i} (1 - alpha_j)

(the transmittance T_i: how much light from splat i still gets through the splats in front of it; 3DGS eq. 3).
Everything here is plain PyTorch, so autograd differentiates the image with respect to every parameter.

Two ways to evaluate: ``dense`` (every splat at every pixel, an (N, H W) tensor: simple, the right choice for small
images) and ``tiled`` (the image in tiles of ``tile_size`` pixels; each tile composites only the splats whose
3-sigma box overlaps it, which is how the CUDA rasterizers of 3DGS and ``gsplat`` work). With the same 3-sigma cutoff
both give the same image.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from llmlab.splat.camera import Camera, project_gaussians
from llmlab.splat.gaussians import Gaussians

ALPHA_MAX = 0.99  # as 3DGS: a splat never hides everything behind it completely (keeps gradients alive)


def pixel_centers(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(H W, 2) pixel centres (u, v) = (column + 0.5, row + 0.5), row-major."""
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device) + 0.5,
                          torch.arange(width, dtype=dtype, device=device) + 0.5, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


def mahalanobis_2d(pixels: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> torch.Tensor:
    """(P, 2) pixels, (N, 2) means, (N, 2, 2) covariances -> (N, P) squared distances d^T S^{-1} d."""
    a, b, c = covs[:, 0, 0], covs[:, 0, 1], covs[:, 1, 1]
    det = a * c - b * b
    # S^{-1} = [[c, -b], [-b, a]] / det (the "conic" of 3DGS' code), computed once per splat
    ia, ib, ic = (c / det)[:, None], (-2 * b / det)[:, None], (a / det)[:, None]
    dx = pixels[None, :, 0] - means[:, None, 0]  # (N, P)
    dy = pixels[None, :, 1] - means[:, None, 1]
    return ia * dx * dx + ib * dx * dy + ic * dy * dy


def gaussian_2d(pixels: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> torch.Tensor:
    """(P, 2) pixels, (N, 2) means, (N, 2, 2) covariances -> (N, P) values exp(-1/2 d^T S^{-1} d) (peak 1, unnormalised)."""
    return torch.exp(-0.5 * mahalanobis_2d(pixels, means, covs))


def blend_weights(alphas: torch.Tensor) -> torch.Tensor:
    """(N, ...) opacities sorted front to back -> (N, ...) weights alpha_i T_i, with T_i = prod_{j<i} (1 - alpha_j)."""
    ones = torch.ones_like(alphas[:1])
    T = torch.cumprod(torch.cat([ones, 1 - alphas[:-1]], 0), 0)
    return alphas * T


def composite(alphas: torch.Tensor, colors: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor:
    """Front-to-back alpha compositing.

    alphas (N, P) sorted front to back; colors (N, 3) (one per splat) or (N, P, 3); background (3,) or None (black).
    Returns (P, 3): sum_i c_i alpha_i T_i + T_N background.
    """
    w = blend_weights(alphas)  # (N, P)
    cols = colors[:, None, :] if colors.dim() == 2 else colors
    out = (w[..., None] * cols).sum(0)
    if background is not None:
        out = out + torch.prod(1 - alphas, 0)[:, None] * background.to(out)
    return out


def rasterize_2d(means: torch.Tensor, covs: torch.Tensor, colors: torch.Tensor, opacities: torch.Tensor,
                 height: int, width: int, background: torch.Tensor | None = None) -> torch.Tensor:
    """An (H, W, 3) image of N 2-D splats composited in index order (index 0 in front).

    means (N, 2) in pixels, covs (N, 2, 2), colors (N, 3), opacities (N,) in (0, 1).
    """
    pix = pixel_centers(height, width, means.dtype, means.device)
    alphas = (opacities[:, None] * gaussian_2d(pix, means, covs)).clamp(max=ALPHA_MAX)
    return composite(alphas, colors, background).reshape(height, width, 3)


class Render(NamedTuple):
    """What ``render`` returns: image (H, W, 3), alpha (H, W) = 1 - final transmittance, depth (H, W) =
    the alpha-weighted mean camera depth of the splats (0 where nothing was hit)."""

    image: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor


def _composite_all(pix, means2d, cov2d, opac, colors, depths, cutoff):
    """(P, 3) colours, (P,) alpha and (P,) depth-weight sum for splats already sorted front to back."""
    m = mahalanobis_2d(pix, means2d, cov2d)
    alphas = opac[:, None] * torch.exp(-0.5 * m)
    if cutoff is not None:
        alphas = torch.where(m <= cutoff * cutoff, alphas, torch.zeros_like(alphas))
    alphas = alphas.clamp(max=ALPHA_MAX)
    w = blend_weights(alphas)
    return w.T @ colors, w.sum(0), w.T @ depths


def render(gaussians: Gaussians, camera: Camera, background: torch.Tensor | None = None,
           tile_size: int | None = None, near: float = 0.05, eps2d: float = 0.3, cutoff: float | None = 3.0,
           clip: float | None = 1.3) -> Render:
    """Render 3-D Gaussians through a pinhole camera: EWA projection, depth sort, front-to-back compositing.

    background: (3,) colour behind everything (default black). tile_size: None for the dense path, else the tile
    width in pixels (same image, less memory). Splats closer than ``near`` are culled; ``cutoff``: a splat is zero
    beyond this many standard deviations (3 as 3DGS; None: nowhere); ``clip``: the Jacobian clamp of
    ``project_gaussians`` (None: exact everywhere). Differentiable in every Gaussian parameter.
    """
    H, W = camera.height, camera.width
    g = gaussians
    means2d, cov2d, depths = project_gaussians(g.means, g.covariances(), camera, eps2d=eps2d, clip=clip)
    colors = g.colors(camera.center)
    keep = depths > near
    order = torch.argsort(depths.detach().masked_fill(~keep, float("inf")))[: int(keep.sum())]  # front to back
    means2d, cov2d, depths, colors, opac = means2d[order], cov2d[order], depths[order], colors[order], g.opacities[order]
    pix = pixel_centers(H, W, g.means.dtype, g.means.device)
    if tile_size is None:
        rgb, alpha, dsum = _composite_all(pix, means2d, cov2d, opac, colors, depths, cutoff)
    else:
        rgb, alpha, dsum = _render_tiled(pix, H, W, tile_size, means2d, cov2d, opac, colors, depths, cutoff or 3.0)
    if background is not None:
        rgb = rgb + (1 - alpha)[:, None] * background.to(rgb)
    depth = dsum / alpha.clamp_min(1e-8)
    return Render(rgb.reshape(H, W, 3), alpha.reshape(H, W), depth.reshape(H, W))


def _render_tiled(pix, H, W, tile, means2d, cov2d, opac, colors, depths, cutoff):
    """The tiled path: per tile, composite the (sorted) splats whose cutoff-sigma box overlaps the tile."""
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    mid = 0.5 * (a + c)
    lam = mid + torch.sqrt((mid * mid - (a * c - b * b)).clamp_min(0.0))  # the larger eigenvalue
    radius = (cutoff * lam.sqrt()).detach()
    lo, hi = (means2d.detach() - radius[:, None]), (means2d.detach() + radius[:, None])
    pix = pix.reshape(H, W, 2)
    rows_rgb, rows_a, rows_d = [], [], []
    for y0 in range(0, H, tile):
        parts = [], [], []
        for x0 in range(0, W, tile):
            y1, x1 = min(y0 + tile, H), min(x0 + tile, W)
            hit = (hi[:, 0] >= x0) & (lo[:, 0] <= x1) & (hi[:, 1] >= y0) & (lo[:, 1] <= y1)
            idx = hit.nonzero().squeeze(1)  # still in depth order
            p = pix[y0:y1, x0:x1].reshape(-1, 2)
            if len(idx) == 0:
                out = (p.new_zeros(len(p), 3), p.new_zeros(len(p)), p.new_zeros(len(p)))
            else:
                out = _composite_all(p, means2d[idx], cov2d[idx], opac[idx], colors[idx], depths[idx], cutoff)
            for lst, t, ch in zip(parts, out, (3, 0, 0)):
                lst.append(t.reshape(y1 - y0, x1 - x0, *((ch,) if ch else ())))
        rows_rgb.append(torch.cat(parts[0], 1)), rows_a.append(torch.cat(parts[1], 1)), rows_d.append(torch.cat(parts[2], 1))
    return torch.cat(rows_rgb, 0).reshape(-1, 3), torch.cat(rows_a, 0).reshape(-1), torch.cat(rows_d, 0).reshape(-1)


def render_views(gaussians: Gaussians, cameras: list[Camera], **kwargs) -> torch.Tensor:
    """(V, H, W, 3) images of the same Gaussians from each camera (``render``'s keyword arguments pass through)."""
    return torch.stack([render(gaussians, cam, **kwargs).image for cam in cameras])
