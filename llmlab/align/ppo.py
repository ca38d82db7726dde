"""PPO for language models, piece by piece (InstructGPT; Ziegler et al., 2019; TRL's PPO trainer).

A response of ``L`` tokens is an episode: the state is the text so far, the action the next token, and the
reward arrives at the end (the reward model's score), while every token pays a KL penalty for moving away
from the frozen reference policy. With ``mask`` (B, L) marking the response tokens:

- :func:`kl_estimate`: per-token KL estimators from ``logp`` (policy) and ``ref_logp`` (reference) at the
  sampled tokens: k1 = logp - ref (unbiased, can be negative), k2 = (logp - ref)^2 / 2, k3 = exp(ref - logp)
  - 1 - (ref - logp) (unbiased and >= 0; Schulman, "Approximating KL divergence").
- :func:`shape_rewards`: ``r_t = -kl_coef * kl_t``, plus the score at the last response token.
- :func:`gae`: generalised advantage estimation, ``delta_t = r_t + gamma V_{t+1} - V_t``,
  ``A_t = delta_t + gamma lambda A_{t+1}``, returns ``R_t = A_t + V_t``; nothing after the last token.
- :func:`policy_loss`: the clipped surrogate ``max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps))``, masked mean,
  and the clip fraction and approximate KL between the old and new policy.
- :func:`value_loss`: ``0.5 max((V - R)^2, (V_clipped - R)^2)``, V clipped to ``old_V ± eps_v``.
"""

from __future__ import annotations

import torch

from .logprobs import masked_mean


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the log-probs of the sampled tokens."""
    log_ratio = logp - ref_logp
    if kind == "k1":
        return log_ratio
    if kind == "k2":
        return 0.5 * log_ratio ** 2
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kind must be 'k1', 'k2' or 'k3', not {kind!r}")


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """The index of the last 1 of each row of a (B, L) response mask (0 for an empty row)."""
    L = mask.shape[1]
    return (L - 1 - mask.flip(1).long().argmax(1)) * mask.any(1)


def shape_rewards(score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token rewards (B, L): ``-kl_coef * kl`` on the response tokens, plus ``score`` at the last one."""
    rewards = -kl_coef * kl * mask
    rewards[torch.arange(len(score)), last_index(mask)] += score.to(rewards.dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both (B, L) and 0 outside the mask; one backward sweep over the positions."""
    m = mask.to(values.dtype)
    rewards, values = rewards * m, values * m
    adv = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        next_v = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * m[:, t]
        adv[:, t] = last
    return adv, (adv + values) * m


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip: float = 0.2) -> tuple[torch.Tensor, dict]:
    """The clipped surrogate loss (a scalar) and {"clip_frac", "approx_kl"}."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clip_frac": masked_mean((clipped > unclipped).float(), mask).item(),
                 "approx_kl": masked_mean(0.5 * (logp - old_logp) ** 2, mask).item()}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float = 0.2) -> tuple[torch.Tensor, dict]:
    """The clipped value loss (a scalar) and {"vf_clip_frac"}."""
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    a, b = (values - returns) ** 2, (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(a, b), mask)
    return loss, {"vf_clip_frac": masked_mean((b > a).float(), mask).item()}
