"""Image metrics for novel-view synthesis: PSNR and SSIM, equal to ``skimage.metrics`` and differentiable.

PSNR = 10 log10(range^2 / MSE). SSIM (Wang et al., 2004) compares local means, variances and covariance in a
sliding window: SSIM = ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),
C1 = (0.01 L)^2, C2 = (0.03 L)^2, averaged over the windows that fit inside the image and over the channels.
Two windows, as ``skimage.metrics.structural_similarity``: its default (7 x 7 uniform, sample covariance), and
``gaussian=True`` (11 x 11 Gaussian of sigma 1.5, population covariance: the setting of the 3DGS papers, i.e.
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``).

Images are (H, W), (H, W, C) or a batch (B, H, W, C); a batch gives one value per image.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F


def _as_bchw(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.dim() == 2:
        return x[None, None], False
    if x.dim() == 3:
        return x.permute(2, 0, 1)[None], False
    if x.dim() == 4:
        return x.permute(0, 3, 1, 2), True
    raise ValueError(f"expected an (H, W), (H, W, C) or (B, H, W, C) image, got shape {tuple(x.shape)}")


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (a scalar, or (B,) for a batch)."""
    x, batched = _as_bchw(a)
    y, _ = _as_bchw(b.to(a))
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    out = 10 * torch.log10(data_range**2 / mse)
    return out if batched else out[0]


def _window(gaussian: bool, dtype, device) -> torch.Tensor:
    if not gaussian:
        return torch.full((7, 7), 1 / 49, dtype=dtype, device=device)
    r = int(3.5 * 1.5 + 0.5)  # scipy's gaussian_filter radius for sigma 1.5, truncate 3.5 (skimage's setting)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=dtype, device=device) / 1.5) ** 2)
    k = k / k.sum()
    return k[:, None] * k[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, gaussian: bool = False) -> torch.Tensor:
    """Structural similarity (a scalar, or (B,) for a batch), as ``skimage.metrics.structural_similarity``
    with ``channel_axis=-1`` (and ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` if gaussian)."""
    x, batched = _as_bchw(a)
    y, _ = _as_bchw(b.to(a))
    C = x.shape[1]
    w = _window(gaussian, x.dtype, x.device)
    np_ = w.numel()
    w = w.expand(C, 1, *w.shape)

    def filt(t):  # the mean over each window that fits inside the image ("valid": skimage crops the border)
        return F.conv2d(t, w, groups=C)

    cov_norm = 1.0 if gaussian else np_ / (np_ - 1)
    mx, my = filt(x), filt(y)
    vx = cov_norm * (filt(x * x) - mx * mx)
    vy = cov_norm * (filt(y * y) - my * my)
    vxy = cov_norm * (filt(x * y) - mx * my)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    out = s.mean(dim=(1, 2, 3))
    return out if batched else out[0]


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - SSIM with the Gaussian window (the D-SSIM term of the 3DGS loss), averaged over a batch."""
    return 1 - ssim(a, b, gaussian=True).mean()


__all__ = ["psnr", "ssim", "ssim_loss"]
