"""Preference pairs as token tensors: prompt + response through the chat template, right-padded.

One row of :mod:`llmlab.align.preferences` becomes two sequences, ``prompt + chosen`` and ``prompt + rejected``,
each with an ``attention_mask`` (1 on every real token) and a ``response_mask`` (1 on the response tokens only,
the end-of-turn token included): the reward model reads the score at the last real token, DPO sums the log-probs
under the response mask. Sequences longer than ``max_length`` keep the end of the prompt and the start of the
response (a reward read at the last token must see the response).
"""

from __future__ import annotations

import torch

from .preferences import as_text


def encode_response(tokenizer, prompt_text: str, response_text: str, max_length: int | None = None):
    p = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    r = tokenizer(response_text, add_special_tokens=False)["input_ids"]
    if max_length is not None and len(p) + len(r) > max_length:
        r = r[: max(1, max_length // 2)] if len(r) > max_length // 2 else r
        p = p[len(p) + len(r) - max_length:] if len(p) + len(r) > max_length else p
    return p + r, [0] * len(p) + [1] * len(r)


def pad_right(seqs: list[list[int]], value: int) -> torch.Tensor:
    T = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (T - len(s)) for s in seqs], dtype=torch.long)


def encode_pairs(tokenizer, rows: list[dict], max_length: int | None = None) -> dict:
    """{"chosen_input_ids", "chosen_attention_mask", "chosen_response_mask", and the same for "rejected"}."""
    out = {}
    for which in ("chosen", "rejected"):
        ids, resp = zip(*(encode_response(tokenizer, *as_text(r, tokenizer, which), max_length) for r in rows))
        out[f"{which}_input_ids"] = pad_right(list(ids), tokenizer.pad_token_id)
        out[f"{which}_attention_mask"] = pad_right([[1] * len(s) for s in ids], 0)
        out[f"{which}_response_mask"] = pad_right(list(resp), 0)
    return out


def concat_pairs(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """chosen rows then rejected rows in one batch (one forward pass), padded to the longer of the two."""
    T = max(batch["chosen_input_ids"].shape[1], batch["rejected_input_ids"].shape[1])

    def both(key, value):
        a, b = batch[f"chosen_{key}"], batch[f"rejected_{key}"]
        pad = lambda x: torch.nn.functional.pad(x, (0, T - x.shape[1]), value=value)
        return torch.cat([pad(a), pad(b)])

    return both("input_ids", 0), both("attention_mask", 0), both("response_mask", 0)
