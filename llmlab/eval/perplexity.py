"""Perplexity done right: token NLL, sliding-window evaluation, and units that compare across tokenizers.

A causal LM assigns every token of a text a probability given the tokens before it. The mean negative
log-likelihood (NLL, nats per token) and its exponential, the **perplexity**, are the standard intrinsic
metric, but two details decide whether two numbers can be compared at all:

1. **Context.** A model has a finite window (``max_length``). A text longer than it is cut into windows;
   scoring each window from scratch (stride = window) predicts the first tokens of every window with
   almost no context and inflates the perplexity. The sliding window (Hugging Face's recipe, *Perplexity of
   fixed-length models*) moves the window by ``stride < max_length`` and scores only the tokens that are
   new in each window, so every token (after the first window) sees at least ``max_length - stride``
   tokens of context. ``stride = 1`` is exact and slowest.
2. **Units.** Nats per *token* depend on the tokenizer: a character-level model has ~4x more tokens than a
   BPE model on the same text, so its per-token loss is lower. Divide the total NLL of the text by its number
   of UTF-8 **bytes** (or characters) and convert to bits: bits per byte (bpb) and bits per character (bpc)
   measure the same thing for every tokenizer, the number a compressor built on the model would need.

::

    nll = token_nlls(model, ids, max_length=64, stride=32)     # (N,) nats, one per predicted token
    ppl = perplexity(nll); bpb = bits_per_byte(nll.sum(), text)

``model`` is anything that maps a ``(1, T)`` LongTensor to logits ``(1, T, V)``: a Hugging Face causal LM,
a course :class:`llmlab.models.gpt.GPT` (its ``(logits, loss)`` output), or a plain function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def logits_of(model, ids: torch.Tensor) -> torch.Tensor:
    """``model(ids)``'s logits, for HF models (``.logits``), course models (``(logits, loss)``) and functions."""
    out = model(ids)
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


@torch.no_grad()
def direct_nlls(model, ids: torch.Tensor) -> torch.Tensor:
    """NLL (nats) of tokens 1..N-1 of ``ids`` (1-D), each given all earlier tokens in one forward pass."""
    ids = torch.as_tensor(ids).view(1, -1)
    logp = F.log_softmax(logits_of(model, ids)[0, :-1].float(), dim=-1)  # (N-1, V)
    return -logp.gather(1, ids[0, 1:, None])[:, 0]


@torch.no_grad()
def token_nlls(model, ids: torch.Tensor, max_length: int, stride: int | None = None) -> torch.Tensor:
    """NLL of tokens 1..N-1 of ``ids`` with a sliding window of ``max_length`` tokens moved by ``stride``.

    Window ``k`` covers ``ids[begin:end]`` with ``begin = k * stride``, ``end = min(begin + max_length, N)``
    and scores only the tokens not scored by an earlier window (positions ``prev_end .. end-1``; the very first
    token has no context and is never scored). Returns the NLLs in text order: ``(N-1,)`` when windows overlap
    (``stride < max_length``); with ``stride == max_length`` the first token of every window has no context and is
    skipped, as in Hugging Face's recipe. ``token_nlls(...).mean()`` is the log of that recipe's perplexity and,
    for ``N <= max_length``, the result equals :func:`direct_nlls`.
    """
    ids = torch.as_tensor(ids).view(-1)
    stride = max_length if stride is None else stride
    if not 0 < stride <= max_length:
        raise ValueError(f"need 0 < stride <= max_length, got stride={stride}, max_length={max_length}")
    n, out, prev_end = ids.numel(), [], 1  # token 0 is context only
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        if end <= prev_end:
            break
        window = ids[begin:end].view(1, -1)
        logp = F.log_softmax(logits_of(model, window)[0, :-1].float(), dim=-1)  # predicts window[1:]
        targets = window[0, 1:]
        nll = -logp.gather(1, targets[:, None])[:, 0]  # position j predicts ids[begin + j + 1]
        out.append(nll[max(prev_end - begin - 1, 0):])  # stride == max_length: ids[begin] has no context
        prev_end = end
        if end == n:
            break
    return torch.cat(out) if out else torch.zeros(0)


def perplexity(nlls: torch.Tensor) -> float:
    """``exp`` of the mean NLL per token."""
    return math.exp(float(torch.as_tensor(nlls).mean()))


def bits_per_byte(total_nll: float, text: str) -> float:
    """Total NLL (nats) of ``text`` -> bits per UTF-8 byte: ``total / (ln 2 * len(text.encode()))``."""
    return float(total_nll) / (LN2 * len(text.encode("utf-8")))


def bits_per_char(total_nll: float, text: str) -> float:
    """Total NLL (nats) of ``text`` -> bits per character (Unicode code point)."""
    return float(total_nll) / (LN2 * len(text))


def text_metrics(model, tokenizer, text: str, max_length: int, stride: int | None = None,
                 prefix_id: int | None = None) -> dict:
    """Every unit for one text: nats/token, perplexity, bits/byte, bits/char, tokens, bytes, chars.

    ``prefix_id`` (e.g. the end-of-text id) is put in front so that the first token of ``text`` is scored too;
    then the total NLL covers *all* of ``text`` and bits per byte/char are exact. Without it the first token
    is unscored (its bytes still count: a small bias, negligible on long texts).
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] if callable(tokenizer) else tokenizer.encode(text)
    ids = torch.tensor(([prefix_id] if prefix_id is not None else []) + list(ids))
    nll = token_nlls(model, ids, max_length, stride)
    total = float(nll.sum())
    return {"nats_per_token": total / len(nll), "ppl": math.exp(total / len(nll)),
            "bits_per_byte": bits_per_byte(total, text), "bits_per_char": bits_per_char(total, text),
            "tokens": len(nll), "bytes": len(text.encode("utf-8")), "chars": len(text)}


__all__ = ["logits_of", "direct_nlls", "token_nlls", "perplexity", "bits_per_byte", "bits_per_char", "text_metrics"]
