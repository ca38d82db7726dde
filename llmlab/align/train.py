"""The week's three training loops as library functions: reward model, DPO and PPO.

They are the loops of notebooks 1, 4 and 2 (written there cell by cell), used by the command line pipeline
(:mod:`llmlab.align.cli`) and by later weeks. Every loop is seeded, runs on whatever device the models are on,
and returns a log (a dict of lists) for curves.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn

from .batches import concat_pairs, encode_pairs
from .dpo import dpo_loss
from .logprobs import masked_whiten, sequence_logprob, token_logprobs
from .ppo import gae, kl_estimate, policy_loss, shape_rewards, value_loss
from .reward import RewardModel, bradley_terry_loss, pairwise_accuracy
from .sampling import generate


def _batches(n: int, size: int, seed: int) -> list[list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return [order[i:i + size] for i in range(0, n, size)]


def _optimizer(params, lr: float, steps: int):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / max(steps, 1)))


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: count real tokens only


# ---------------------------------------------------------------------------------------------
# reward model


@torch.no_grad()
def score_pairs(rm: nn.Module, tokenizer, rows: list[dict], max_length: int | None = None, batch_size: int = 32):
    """(r_chosen, r_rejected) of every row under a reward model (``rm(ids, mask) -> (B,)``)."""
    rc, rr = [], []
    for i in range(0, len(rows), batch_size):
        r = rm.score_pairs(encode_pairs(tokenizer, rows[i:i + batch_size], max_length))
        rc.append(r[0]), rr.append(r[1])
    return torch.cat(rc), torch.cat(rr)


def train_reward_model(lm: nn.Module, tokenizer, rows: list[dict], epochs: int = 2, batch_size: int = 16,
                       lr: float = 1e-3, max_length: int | None = 256, seed: int = 0, progress=None):
    """A :class:`RewardModel` on a copy of ``lm``'s backbone, trained with the Bradley-Terry loss on ``rows``."""
    torch.manual_seed(seed)
    rm = RewardModel.from_causal_lm(copy.deepcopy(lm)).train()
    batches = [b for e in range(epochs) for b in _batches(len(rows), batch_size, seed + e)]
    opt, sched = _optimizer(rm.parameters(), lr, len(batches))
    log = {"loss": [], "accuracy": []}
    for idx in (progress(batches, desc="reward model") if progress else batches):
        rc, rr = rm.score_pairs(encode_pairs(tokenizer, [rows[i] for i in idx], max_length))
        loss = bradley_terry_loss(rc, rr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.parameters(), 1.0)
        opt.step(), sched.step()
        log["loss"].append(loss.item()), log["accuracy"].append(pairwise_accuracy(rc.detach(), rr.detach()))
    return rm.eval(), log


# ---------------------------------------------------------------------------------------------
# DPO


def train_dpo(policy: nn.Module, ref: nn.Module, tokenizer, rows: list[dict], beta: float = 0.1,
              label_smoothing: float = 0.0, epochs: int = 2, batch_size: int = 16, lr: float = 2e-4,
              max_length: int | None = 256, seed: int = 0, progress=None) -> dict:
    """DPO of ``policy`` (trained in place) against the frozen ``ref`` on preference ``rows``."""
    torch.manual_seed(seed)
    policy.train(), ref.eval()
    batches = [b for e in range(epochs) for b in _batches(len(rows), batch_size, seed + e)]
    opt, sched = _optimizer(policy.parameters(), lr, len(batches))
    log = {"loss": [], "accuracy": [], "margin": []}
    for idx in (progress(batches, desc="DPO") if progress else batches):
        ids, am, resp = concat_pairs(encode_pairs(tokenizer, [rows[i] for i in idx], max_length))
        with torch.no_grad():
            rc, rr = sequence_logprob(ref(input_ids=ids, attention_mask=am).logits, ids, resp).chunk(2)
        pc, pr = sequence_logprob(policy(input_ids=ids, attention_mask=am).logits, ids, resp).chunk(2)
        losses, ch, rj = dpo_loss(pc, pr, rc, rr, beta, label_smoothing)
        opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step(), sched.step()
        log["loss"].append(losses.mean().item())
        log["accuracy"].append((ch > rj).float().mean().item()), log["margin"].append((ch - rj).mean().item())
    policy.eval()
    return log


# ---------------------------------------------------------------------------------------------
# PPO


class ValueModel(nn.Module):
    """The critic: a copy of a causal LM's backbone and a linear head, one value per position (starts at 0)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model)
        self.head = nn.Linear(lm.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight), nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask):
        h = self.model(input_ids=input_ids, attention_mask=attention_mask,
                       position_ids=_positions(attention_mask)).last_hidden_state
        return self.head(h).squeeze(-1).float()


def rm_reward(rm: RewardModel) -> Callable:
    """A PPO reward function from a reward model: scores the rollout's ``ids`` / ``mask`` at the last token."""

    @torch.no_grad()
    def reward(prompts, texts, ids, mask):
        return rm(ids, mask)

    return reward


def train_ppo(policy: nn.Module, ref: nn.Module, tokenizer, prompts: list[list[dict]], reward_fn: Callable,
              iters: int = 20, batch_size: int = 32, minibatch: int = 16, epochs: int = 4, max_new_tokens: int = 32,
              lr: float = 3e-4, kl_coef: float = 0.02, clip: float = 0.2, vf_clip: float = 0.2, vf_coef: float = 0.5,
              gamma: float = 1.0, lam: float = 0.95, temperature: float = 1.0, seed: int = 0, progress=None) -> dict:
    """PPO of ``policy`` (in place) with a fresh critic; ``reward_fn(prompts, texts, ids, mask) -> (B,)`` scores."""
    torch.manual_seed(seed)
    critic = ValueModel(policy).train()
    policy.train(), ref.eval()
    params = list(policy.parameters()) + list(critic.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    log = {k: [] for k in ("reward", "kl", "clip_frac", "value_loss", "length")}
    order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(seed)).tolist()
    for it in (progress(range(iters), desc="PPO") if progress else range(iters)):
        qs = [prompts[order[(it * batch_size + i) % len(order)]] for i in range(batch_size)]
        with torch.no_grad():
            g = generate(policy, tokenizer, qs, max_new_tokens, temperature, seed=seed + it)
            P, rmask = g["prompt_ids"].shape[1], g["response_mask"].float()
            ids = torch.cat([g["prompt_ids"], g["response_ids"]], 1)
            am = torch.cat([g["prompt_mask"], g["response_mask"]], 1)
            full = torch.cat([torch.zeros_like(g["prompt_mask"]), g["response_mask"]], 1)
            score = reward_fn(qs, g["texts"], ids, am).float()

            def logp_of(model, rows):
                out = model(input_ids=ids[rows], attention_mask=am[rows], position_ids=_positions(am[rows]))
                return token_logprobs(out.logits, ids[rows])[:, P - 1:] * rmask[rows]

            every = torch.arange(len(qs))
            old_logp, ref_logp = logp_of(policy, every), logp_of(ref, every)
            old_values = critic(ids, am)[:, P - 1:-1] * rmask
            kl = kl_estimate(old_logp, ref_logp, "k1") * rmask
            adv, returns = gae(shape_rewards(score, kl, rmask, kl_coef), old_values, rmask, gamma, lam)
            adv = masked_whiten(adv, rmask) * rmask
        fracs, vls = [], []
        for e in range(epochs):
            for b in _batches(len(qs), minibatch, 1000 * (seed + it) + e):
                b = torch.tensor(b)
                pg, st = policy_loss(logp_of(policy, b), old_logp[b], adv[b], rmask[b], clip)
                vl, _ = value_loss(critic(ids[b], am[b])[:, P - 1:-1], old_values[b], returns[b], rmask[b], vf_clip)
                opt.zero_grad(set_to_none=True)
                (pg + vf_coef * vl).backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                fracs.append(st["clip_frac"]), vls.append(vl.item())
        log["reward"].append(score.mean().item()), log["kl"].append(kl.sum(1).mean().item())
        log["clip_frac"].append(sum(fracs) / len(fracs)), log["value_loss"].append(sum(vls) / len(vls))
        log["length"].append(rmask.sum(1).mean().item())
    policy.eval()
    return log


def mean_reward(policy, tokenizer, prompts, reward_fn, max_new_tokens: int = 32, seed: int = 123) -> float:
    """The mean reward of the policy's answers to ``prompts`` (one sample each, seeded)."""
    with torch.no_grad():
        g = generate(policy, tokenizer, prompts, max_new_tokens, seed=seed)
        ids = torch.cat([g["prompt_ids"], g["response_ids"]], 1)
        am = torch.cat([g["prompt_mask"], g["response_mask"]], 1)
        return reward_fn(prompts, g["texts"], ids, am).float().mean().item()


