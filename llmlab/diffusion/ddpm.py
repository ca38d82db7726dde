"""DDPM and DDIM from scratch (bonus notebook 4, in library form), in ``diffusers``' conventions.

- :func:`beta_schedule`  -- "linear" (Ho et al., 2020: 1e-4 .. 0.02) or "cosine" (Nichol & Dhariwal, 2021;
  diffusers' "squaredcos_cap_v2": betas from ᾱ(t) = cos²((t/T + 0.008)/1.008 · π/2), capped at 0.999).
- :func:`add_noise`      -- the forward process in closed form: x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε.
- :func:`ddpm_step`      -- one ancestral sampling step x_t -> x_{t-1} for an ε-prediction (variance β̃_t,
  diffusers' "fixed_small"); equal to ``DDPMScheduler(clip_sample=False).step`` with the same generator.
- :func:`ddim_step`      -- one deterministic DDIM step (η = 0) between any two noise levels; equal to
  ``DDIMScheduler(clip_sample=False).step``.
- :func:`timestep_features` -- sinusoidal features of t for a denoiser network (Week 1's positional encoding).
"""

from __future__ import annotations

import math

import torch


def beta_schedule(T: int, kind: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """(T,) float32 noise variances β_0 .. β_{T-1}."""
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    if kind == "cosine":
        def abar(u):
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], dtype=torch.float32)
    raise ValueError(f"kind must be 'linear' or 'cosine', got {kind!r}")


def _per_sample(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (B, 1, ..., 1) to broadcast against ``like`` (B, ...)."""
    return values.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x0 + √(1 - ᾱ_t) noise, for a batch x0 (B, ...) and integer timesteps t (B,)."""
    a = _per_sample(alphas_cumprod, t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def ddpm_step(eps: torch.Tensor, t: int, x: torch.Tensor, betas: torch.Tensor,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """x_{t-1} = 1/√α_t (x_t - β_t/√(1-ᾱ_t) ε) + σ_t z, σ_t² = β_t (1-ᾱ_{t-1})/(1-ᾱ_t); no noise at t = 0.

    z = randn(x.shape, generator=generator) is drawn only for t > 0 (as diffusers does).
    """
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    a_t = alphas_cumprod[t]
    a_prev = alphas_cumprod[t - 1] if t > 0 else torch.tensor(1.0)
    beta_t = 1 - a_t / a_prev
    mean = (x - beta_t / (1 - a_t).sqrt() * eps) / (1 - beta_t).sqrt()
    if t == 0:
        return mean
    var = ((1 - a_prev) / (1 - a_t) * beta_t).clamp_min(1e-20)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return mean + var.sqrt() * z


def ddim_step(eps: torch.Tensor, x: torch.Tensor, alpha_bar_t, alpha_bar_prev) -> torch.Tensor:
    """Deterministic DDIM (η = 0): predict x0, then move it to the noise level ᾱ_prev along the same ε."""
    a_t, a_prev = torch.as_tensor(alpha_bar_t, dtype=x.dtype), torch.as_tensor(alpha_bar_prev, dtype=x.dtype)
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B, dim) sinusoidal features of integer or real timesteps t (B,): [cos(t ω_k), sin(t ω_k)]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    ang = t.float()[:, None] * freqs[None, :]
    return torch.cat([ang.cos(), ang.sin()], dim=1)
