"""GRPO (Shao et al., 2024, DeepSeekMath): PPO without a value model, the baseline taken from a group.

For each prompt the policy samples a *group* of ``G`` responses; each response's advantage is its reward
relative to the group, ``A_i = (r_i - mean(r)) / (std(r) + 1e-4)`` (std with Bessel's correction, as TRL;
``scale=False`` keeps only the centring, as in Dr. GRPO), the same for all its tokens. The loss is PPO's clipped
surrogate per token plus ``beta`` times the k3 KL estimate to the reference, averaged over the tokens of each
response and then over responses (``loss_type="grpo"``) or over all tokens of the batch (``"dapo"``/``"bnpo"``,
TRL's default: long responses weigh more).
"""

from __future__ import annotations

import torch

from .ppo import kl_estimate


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """(N,) rewards of N / G groups of G consecutive responses -> (N,) advantages."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    g = rewards.view(-1, group_size).float()
    adv = g - g.mean(1, keepdim=True)
    if scale:
        adv = adv / (g.std(1, keepdim=True) + eps)
    return adv.flatten()


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, advantages: torch.Tensor,
              mask: torch.Tensor, beta: float = 0.04, clip: float = 0.2, loss_type: str = "grpo"):
    """The GRPO loss (a scalar) from per-token log-probs (B, L) and per-response advantages (B,); and stats."""
    m = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    a = advantages[:, None]
    per_token = -torch.minimum(ratio * a, torch.clamp(ratio, 1 - clip, 1 + clip) * a)
    kl = kl_estimate(logp, ref_logp, "k3") if ref_logp is not None and beta else torch.zeros_like(logp)
    per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1)).mean()
    elif loss_type in ("dapo", "bnpo"):
        loss = (per_token * m).sum() / m.sum().clamp(min=1)
    else:
        raise ValueError(f"loss_type must be 'grpo', 'dapo' or 'bnpo', not {loss_type!r}")
    with torch.no_grad():
        stats = {"kl": ((kl * m).sum() / m.sum().clamp(min=1)).item(),
                 "clip_frac": (((ratio - 1).abs() > clip).float() * m).sum().item() / max(m.sum().item(), 1)}
    return loss, stats
