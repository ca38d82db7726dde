"""llmlab.diffusion.ddpm against diffusers' DDPMScheduler and DDIMScheduler (the independent references).

float32 throughout, as diffusers computes: the schedules agree to ~1e-7; one step combines a few products of
O(1) numbers, so 1e-5 leaves a margin of 100x over round-off while any wrong coefficient is off by > 1e-3.
"""

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from llmlab.diffusion import ddpm as D

KINDS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T", [10, 1000])
def test_beta_schedules_match_diffusers(kind, T):
    ref = DDPMScheduler(num_train_timesteps=T, beta_schedule=KINDS[kind]).betas
    assert torch.allclose(D.beta_schedule(T, kind), ref, atol=1e-7)


def test_add_noise_matches_diffusers():
    s = DDPMScheduler(num_train_timesteps=50)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([0, 17, 49])
    assert torch.allclose(D.add_noise(x0, noise, t, s.alphas_cumprod), s.add_noise(x0, noise, t), atol=1e-6)


@pytest.mark.parametrize("t", [0, 1, 25, 49])
def test_ddpm_step_matches_diffusers(t):
    s = DDPMScheduler(num_train_timesteps=50, beta_schedule="squaredcos_cap_v2", clip_sample=False)
    g = torch.Generator().manual_seed(1)
    x, eps = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g)
    want = s.step(eps, t, x, generator=torch.Generator().manual_seed(2)).prev_sample
    got = D.ddpm_step(eps, t, x, s.betas, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(got, want, atol=1e-5)


def test_ddim_step_matches_diffusers():
    s = DDIMScheduler(num_train_timesteps=100, clip_sample=False, set_alpha_to_one=True)
    s.set_timesteps(10)
    g = torch.Generator().manual_seed(3)
    x, eps = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    for t in s.timesteps.tolist():
        prev = t - 10
        a_prev = s.alphas_cumprod[prev] if prev >= 0 else torch.tensor(1.0)
        want = s.step(eps, t, x, eta=0.0).prev_sample
        assert torch.allclose(D.ddim_step(eps, x, s.alphas_cumprod[t], a_prev), want, atol=1e-5)


def test_timestep_features():
    f = D.timestep_features(torch.tensor([0, 3]), 8)
    assert f.shape == (2, 8) and torch.equal(f[0], torch.tensor([1.0] * 4 + [0.0] * 4))
