"""Per-token log-probabilities of a response, and the masked statistics every RLHF loss needs.

A causal LM's logits at position ``t`` predict token ``t + 1``: the log-probability of the response tokens is
read from the logits one position to the left (the *shift*), at the index of the token that came (the *gather*),
and only where the response is (the *mask*: not the prompt, not the padding)::

    tokens      p0 p1 p2 | r0 r1 r2 <pad>
    logits at   p0 p1 p2   r0 r1 r2          -> predict p1 p2 r0 r1 r2 <pad>
    mask (of the predicted token)   0  0  1  1  1  0
"""

from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``log p(input_ids[:, t+1] | input_ids[:, :t+1])``: (B, T-1) from logits (B, T, V) and ids (B, T).

    ``log_softmax`` then ``gather``: the same numbers as TRL's ``selective_log_softmax`` (which saves memory
    with ``logsumexp``), in float32 for low-precision logits."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def response_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs of the response tokens, 0 elsewhere: (B, T-1).

    ``response_mask`` (B, T) marks the response tokens of ``input_ids`` (1 for each response token)."""
    return token_logprobs(logits, input_ids) * response_mask[:, 1:].to(torch.float32)


def sequence_logprob(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """log p(response | prompt) = the sum of the response's token log-probs: (B,)."""
    return response_logprobs(logits, input_ids, response_mask).sum(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The mean of ``x`` where ``mask`` is 1 (over everything, or along ``dim``)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """The variance of the masked entries (Bessel-corrected by default, as TRL's ``masked_var``)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    return var * n / (n - 1) if unbiased and n > 1 else var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the masked entries (the mean added back if not ``shift_mean``);
    entries outside the mask are returned as they are computed (multiply by the mask to use them)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    white = (x - mean) * torch.rsqrt(var + eps)
    return white if shift_mean else white + mean


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """The entropy of each position's next-token distribution, ``-sum p log p``: (..., V) -> (...)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)
