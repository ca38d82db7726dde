"""Speculative decoding: a small draft model proposes ``k`` tokens, the target model checks them in one pass.

Leviathan et al. 2023 / Chen et al. 2023. Per round:

1. the draft samples ``x_1..x_k`` autoregressively, remembering its distributions ``q_1..q_k``;
2. the target runs once over the context plus ``x_1..x_k`` and gives ``p_1..p_{k+1}``;
3. ``x_i`` is accepted with probability ``min(1, p_i(x_i) / q_i(x_i))``; at the first rejection a token is
   drawn from the **residual** ``max(0, p_i - q_i)`` (normalized) and the round ends; if all ``k`` are
   accepted, a bonus token comes from ``p_{k+1}``.

Each round yields 1 to ``k + 1`` tokens for one target pass, and the tokens are distributed **exactly** as
the target's own samples (the acceptance rule plus the residual put back precisely the mass the draft
under-proposed). With greedy decoding the distributions are one-hot: a draft token is kept iff it is the
target's argmax, so the output equals the target's greedy output token for token.

This decoder runs one sequence on Hugging Face ``DynamicCache``\\ s, cropped back after each rejection;
the batched engine runs the same rule (:func:`accept_or_resample`) on the paged cache in :mod:`.spec_decode`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .request import SamplingParams
from .sampler import probs_of


def accept_or_resample(p: torch.Tensor, q: torch.Tensor, draft: list[int], generator: torch.Generator | None = None):
    """The verification rule. ``p``: ``[k+1, V]`` target probabilities, ``q``: ``[k, V]`` draft probabilities,
    ``draft``: the k proposed tokens. Returns (accepted draft tokens, the one token drawn by the target)."""
    for i, x in enumerate(draft):
        r = torch.rand((), generator=generator).item()
        if q[i, x] > 0 and r < min(1.0, (p[i, x] / q[i, x]).item()):
            continue
        residual = (p[i] - q[i]).clamp(min=0)
        if residual.sum() <= 0:                 # p == q: any rejection is impossible in exact arithmetic
            residual = p[i]
        y = int(torch.multinomial(residual / residual.sum(), 1, generator=generator))
        return draft[:i], y
    return list(draft), int(torch.multinomial(p[len(draft)], 1, generator=generator))


@dataclass
class SpecStats:
    rounds: int = 0
    proposed: int = 0
    accepted: int = 0
    target_calls: int = 0
    draft_calls: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / max(self.proposed, 1)

    @property
    def tokens_per_target_call(self) -> float:
        return (self.accepted + self.rounds) / max(self.target_calls, 1)


class _Runner:
    """A model with a cache: feed the tokens the cache has not seen, get the logits of each."""

    def __init__(self, model):
        from transformers import DynamicCache

        self.model, self.cache, self.length = model, DynamicCache(config=model.config), 0

    @torch.inference_mode()
    def feed(self, tokens: list[int]) -> torch.Tensor:
        new = tokens[self.length:]
        out = self.model(input_ids=torch.tensor([new]), cache=self.cache, use_cache=True)
        self.length = len(tokens)
        return out.logits[0].float()            # [len(new), V]

    def crop(self, length: int) -> None:
        if length < self.length:
            self.cache.crop(length - self.length)      # negative: drop that many tokens
            self.length = length


@torch.inference_mode()
def speculative_generate(target, draft, prompt_ids: list[int], max_new_tokens: int, k: int = 4,
                         params: SamplingParams | None = None, eos_ids=(), seed: int | None = None):
    """Generate with ``target`` helped by ``draft`` (same vocabulary). Returns (new token ids, SpecStats)."""
    params = params or SamplingParams(temperature=0.0)
    gen = torch.Generator().manual_seed(params.seed if seed is None and params.seed is not None else (seed or 0))
    t, d, stats = _Runner(target), _Runner(draft), SpecStats()
    tokens, n0, eos = list(prompt_ids), len(prompt_ids), set(eos_ids)
    while len(tokens) - n0 < max_new_tokens:
        kk = min(k, max_new_tokens - (len(tokens) - n0) - 1)    # leave room for the target's own token
        proposal, qs = [], []
        for _ in range(kk):
            q = probs_of(d.feed(tokens + proposal)[-1], params, tokens + proposal)
            stats.draft_calls += 1
            x = int(torch.multinomial(q, 1, generator=gen))
            proposal.append(x)
            qs.append(q)
        logits = t.feed(tokens + proposal)[-(kk + 1):]             # p_1..p_{k+1}
        stats.target_calls += 1
        p = torch.stack([probs_of(logits[i], params, tokens + proposal[:i]) for i in range(kk + 1)])
        q = torch.stack(qs) if qs else p[:0]
        accepted, y = accept_or_resample(p, q, proposal, gen)
        stats.rounds += 1
        stats.proposed += kk
        stats.accepted += len(accepted)
        t.crop(len(tokens) + len(accepted))
        d.crop(len(tokens) + len(accepted))
        new = accepted + [y]
        for j, tok in enumerate(new):
            tokens.append(tok)
            if tok in eos:
                return tokens[n0:], stats
    return tokens[n0:], stats
