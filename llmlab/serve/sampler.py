"""Turning logits into the next token: logits processors, then greedy or seeded sampling, per request.

Each processor maps ``[V]`` (or ``[B, V]``) logits to logits, as ``transformers``' ``LogitsProcessor``\\ s do,
so they are tested against them on the same inputs (``-inf`` marks a removed token):

- repetition penalty (CTRL, Keskar et al. 2019): a token already in the sequence has its logit divided
  by ``p`` if positive, multiplied by ``p`` if negative;
- presence and frequency penalties (OpenAI's): over the tokens *generated so far* (not the prompt),
  ``logits[t] -= presence * (count[t] > 0) + frequency * count[t]``; positive values push the model to
  new tokens (presence: once a token appeared; frequency: the more often, the more), negative values
  pull it back to them;
- temperature: ``logits / T``;
- top-k: keep the ``k`` largest;
- top-p (nucleus, Holtzman et al. 2020): keep the smallest set of most likely tokens whose probability
  reaches ``p`` (the token that crosses ``p`` is kept);
- min-p: keep tokens whose probability is at least ``min_p`` times the most likely one's.

Sampling draws from each sequence's own ``torch.Generator`` (seeded by the request's ``seed``), so a
seeded request gets the same tokens alone or in any batch.
"""

from __future__ import annotations

import torch

from .request import SamplingParams, Sequence


def apply_repetition_penalty(logits: torch.Tensor, token_ids, penalty: float) -> torch.Tensor:
    if penalty == 1.0 or len(token_ids) == 0:
        return logits
    logits = logits.clone()
    idx = torch.as_tensor(sorted(set(token_ids)), dtype=torch.long)
    picked = logits[..., idx]
    logits[..., idx] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return logits


def apply_presence_frequency(logits: torch.Tensor, output_ids, presence: float, frequency: float) -> torch.Tensor:
    """OpenAI's penalties: ``logits - presence * 1[count > 0] - frequency * count``, counts over ``output_ids``."""
    if (presence == 0.0 and frequency == 0.0) or len(output_ids) == 0:
        return logits
    counts = torch.bincount(torch.as_tensor(list(output_ids), dtype=torch.long), minlength=logits.shape[-1])
    counts = counts[: logits.shape[-1]].to(logits.dtype)
    return logits - presence * (counts > 0).to(logits.dtype) - frequency * counts


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits if temperature == 1.0 else logits / temperature


def apply_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def apply_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cum = sorted_logits.softmax(-1).cumsum(-1)
    remove_sorted = cum - sorted_logits.softmax(-1) >= top_p      # mass before this token already reaches p
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def apply_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    if min_p <= 0.0:
        return logits
    probs = logits.softmax(-1)
    threshold = min_p * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, float("-inf"))


def process(logits: torch.Tensor, params: SamplingParams, token_ids=(), output_ids=()) -> torch.Tensor:
    """All the processors in transformers' (and vLLM's) order: penalties, temperature, top-k, top-p, min-p.
    ``token_ids``: prompt + output (the repetition penalty); ``output_ids``: the output alone (presence/frequency)."""
    logits = apply_repetition_penalty(logits, token_ids, params.repetition_penalty)
    logits = apply_presence_frequency(logits, output_ids, params.presence_penalty, params.frequency_penalty)
    if params.greedy:
        return logits
    logits = apply_temperature(logits, params.temperature)
    logits = apply_top_k(logits, params.top_k)
    logits = apply_top_p(logits, params.top_p)
    return apply_min_p(logits, params.min_p)


def probs_of(logits: torch.Tensor, params: SamplingParams, token_ids=(), output_ids=()) -> torch.Tensor:
    """The distribution a request samples from (one-hot at the argmax when greedy)."""
    logits = process(logits.float(), params, token_ids, output_ids)
    if params.greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    return logits.softmax(-1)


def sample_token(logits: torch.Tensor, seq: Sequence) -> int:
    logits = process(logits.float(), seq.params, seq.tokens, seq.output_ids)
    if seq.params.greedy:
        return int(logits.argmax(-1))
    return int(torch.multinomial(logits.softmax(-1), 1, generator=seq.generator))


def top_logprobs(logits: torch.Tensor, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    """The model's log-probability of ``token`` and its ``k`` most likely tokens (before any processor)."""
    lp = logits.float().log_softmax(-1)
    top = torch.topk(lp, k) if k > 0 else None
    pairs = [] if top is None else list(zip(top.indices.tolist(), top.values.tolist()))
    return float(lp[token]), pairs


class Sampler:
    def __call__(self, logits: list[torch.Tensor], seqs: list[Sequence]) -> list[int]:
        out = []
        for row, seq in zip(logits, seqs):
            tok = sample_token(row, seq)
            if seq.params.logprobs is not None:
                seq.logprobs.append(top_logprobs(row, tok, seq.params.logprobs))
            out.append(tok)
        return out
