"""Supervised fine-tuning data: chat rows -> token ids, the assistant-only label mask, padding and packing.

A chat row (``llmlab.tasks.chat_dataset``) is ``{"messages": [system, user, assistant]}``. The tokenizer's chat
template (``llmlab.zoo.CHAT_TEMPLATE``) renders it as::

    <|system|>\\n...<|end|>\\n<|user|>\\n...<|end|>\\n<|assistant|>\\n RESPONSE<|end|> \\n
                                                                 ^^^^^^^^^^^^^^^^^
                                                                 the only tokens with a loss

SFT trains on the assistant's tokens only: the labels are the input ids where the template's
``{% generation %}`` block put the assistant's text (its closing ``<|end|>`` included, so that the model learns
to stop) and ``-100`` (PyTorch's ``ignore_index``) everywhere else. The labels are *not* shifted: Hugging Face
causal LMs shift them inside ``forward`` (logit ``t`` predicts label ``t + 1``).

Batches are made in one of two ways:

- **padding** (:func:`pad_collate`): each row on a line of its own, padded to the longest of the batch
  (``attention_mask`` 0 and labels ``-100`` on the padding);
- **packing** (:func:`pack`, :func:`pack_collate`): whole rows placed into lines of ``max_length`` tokens by
  first-fit decreasing, ``position_ids`` restarting at 0 for each row, and a block-diagonal causal attention mask,
  so that a row never attends to the row packed before it (on CPU, ``sdpa`` attention needs this explicit mask:
  ``position_ids`` alone leave the rows attending to each other, which TRL warns about).

:func:`token_counts` compares what the two cost, in tokens computed per epoch.
"""

from __future__ import annotations

from typing import Sequence

import torch

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index
END = "<|end|>"  # the end-of-turn token of the course chat template

__all__ = ["IGNORE_INDEX", "END", "end_token_id", "assistant_labels", "encode_chat", "encode_rows", "pad_collate",
           "pack", "pack_collate", "token_counts"]


def end_token_id(tokenizer) -> int:
    """The id of ``<|end|>`` (the end of a chat turn; generation stops on it)."""
    i = tokenizer.convert_tokens_to_ids(END)
    if i is None or i == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {END} token: is it a course chat tokenizer (llmlab.zoo)?")
    return i


def assistant_labels(input_ids: Sequence[int], assistant_mask: Sequence[int]) -> list[int]:
    """Labels for SFT: ``input_ids[t]`` where ``assistant_mask[t]`` is 1, ``-100`` elsewhere (same length)."""
    if len(input_ids) != len(assistant_mask):
        raise ValueError(f"{len(input_ids)} ids but {len(assistant_mask)} mask entries")
    return [int(i) if m else IGNORE_INDEX for i, m in zip(input_ids, assistant_mask)]


def encode_chat(tokenizer, messages: list[dict], max_length: int | None = None) -> dict:
    """One conversation -> ``{"input_ids", "attention_mask", "labels"}`` (lists), via the chat template.

    The assistant mask comes from ``apply_chat_template(..., return_assistant_tokens_mask=True)``, which needs the
    template's ``{% generation %}`` markers. ``max_length`` truncates from the end (keep the start, as TRL does).
    """
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    if 1 not in mask:
        raise ValueError("the conversation has no assistant tokens (no assistant message, or a chat template "
                         "without {% generation %} markers)")
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": assistant_labels(ids, mask)}


def encode_rows(tokenizer, rows: list[dict], max_length: int | None = None) -> list[dict]:
    """:func:`encode_chat` over ``chat_dataset`` rows (dicts with ``"messages"``); rows whose assistant tokens
    were all cut off by ``max_length`` are dropped (they would carry no loss)."""
    feats = [encode_chat(tokenizer, r["messages"], max_length) for r in rows]
    return [f for f in feats if any(t != IGNORE_INDEX for t in f["labels"])]


def pad_collate(features: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None) -> dict:
    """Right-pad a list of encoded rows into ``(B, L)`` tensors: ``input_ids`` (pad id), ``attention_mask`` (0 on
    padding) and ``labels`` (-100 on padding); ``L`` is the longest row, rounded up to ``pad_to_multiple_of``."""
    L = max(len(f["input_ids"]) for f in features)
    if pad_to_multiple_of:
        L = -(-L // pad_to_multiple_of) * pad_to_multiple_of
    batch = {"input_ids": torch.full((len(features), L), pad_token_id, dtype=torch.long),
             "attention_mask": torch.zeros(len(features), L, dtype=torch.long),
             "labels": torch.full((len(features), L), IGNORE_INDEX, dtype=torch.long)}
    for b, f in enumerate(features):
        n = len(f["input_ids"])
        batch["input_ids"][b, :n] = torch.as_tensor(f["input_ids"])
        batch["attention_mask"][b, :n] = 1
        batch["labels"][b, :n] = torch.as_tensor(f["labels"])
    return batch


def pack(features: list[dict], max_length: int) -> list[dict]:
    """Pack whole rows into lines of at most ``max_length`` tokens, first-fit decreasing (the longest row first,
    into the first line it fits). A row longer than ``max_length`` is truncated to it. Each line is
    ``{"input_ids", "labels", "position_ids", "seq_lengths"}``; ``position_ids`` restart at 0 for every row."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    lines: list[list[int]] = []  # indices of the rows in each line
    room: list[int] = []
    for i in order:
        n = min(len(features[i]["input_ids"]), max_length)
        for j, free in enumerate(room):
            if n <= free:
                lines[j].append(i)
                room[j] -= n
                break
        else:
            lines.append([i])
            room.append(max_length - n)
    out = []
    for line in lines:
        rows = [{k: features[i][k][:max_length] for k in ("input_ids", "labels")} for i in line]
        out.append({"input_ids": [t for r in rows for t in r["input_ids"]],
                    "labels": [t for r in rows for t in r["labels"]],
                    "position_ids": [p for r in rows for p in range(len(r["input_ids"]))],
                    "seq_lengths": [len(r["input_ids"]) for r in rows]})
    return out


def pack_collate(lines: list[dict], pad_token_id: int) -> dict:
    """Packed lines (:func:`pack`) -> ``(B, L)`` tensors ``input_ids``, ``labels``, ``position_ids`` and a
    ``(B, 1, L, L)`` boolean ``attention_mask``: causal *within* each row, False across rows and on padding.
    Hugging Face Llama models take such a 4-D mask as is; with it, every row's logits equal those of the row alone."""
    L = max(len(x["input_ids"]) for x in lines)
    B = len(lines)
    ids = torch.full((B, L), pad_token_id, dtype=torch.long)
    labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros(B, L, dtype=torch.long)
    doc = torch.full((B, L), -1, dtype=torch.long)  # which row of the line each token belongs to (-1: padding)
    for b, x in enumerate(lines):
        n = len(x["input_ids"])
        ids[b, :n], labels[b, :n], pos[b, :n] = (torch.as_tensor(x[k]) for k in ("input_ids", "labels", "position_ids"))
        doc[b, :n] = torch.repeat_interleave(torch.arange(len(x["seq_lengths"])), torch.as_tensor(x["seq_lengths"]))
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    same = (doc[:, :, None] == doc[:, None, :]) & (doc[:, :, None] >= 0)
    mask = same & causal
    mask |= torch.eye(L, dtype=torch.bool)  # padding attends to itself: no all-masked row (NaN in softmax)
    return {"input_ids": ids, "labels": labels, "position_ids": pos, "attention_mask": mask[:, None]}


def token_counts(features: list[dict], batch_size: int, max_length: int) -> dict:
    """Tokens computed for one epoch over ``features`` in batches of ``batch_size`` (in order): with padding to
    the longest row of each batch, and with packing into lines of ``max_length``; and the real (non-padding) and
    loss-carrying (assistant) tokens. ``padding_efficiency`` / ``packing_efficiency``: real over computed."""
    lengths = [min(len(f["input_ids"]), max_length) for f in features]
    real = sum(lengths)
    padded = sum(max(lengths[i: i + batch_size]) * len(lengths[i: i + batch_size])
                 for i in range(0, len(lengths), batch_size))
    lines = pack(features, max_length)
    packed = sum(max(sum(x["seq_lengths"]) for x in lines[i: i + batch_size]) * len(lines[i: i + batch_size])
                 for i in range(0, len(lines), batch_size))
    loss = sum(sum(t != IGNORE_INDEX for t in f["labels"][:max_length]) for f in features)
    return {"rows": len(features), "real_tokens": real, "loss_tokens": loss, "padded_tokens": padded,
            "packed_lines": len(lines), "packed_tokens": packed,
            "padding_efficiency": real / padded, "packing_efficiency": real / packed}
