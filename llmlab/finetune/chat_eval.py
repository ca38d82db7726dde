"""Scoring a chat model: generate a response per prompt (stop at ``<|end|>``), run the task verifiers, pass rates.

::

    from llmlab import tasks
    from llmlab.finetune.chat_eval import evaluate
    exs = tasks.mixture("validation", n_per_task=10)
    res = evaluate(model, tokenizer, exs)      # {"pass_rate": {task: rate}, "score": {...}, "rows": [...]}

Generation is greedy (deterministic), batched with left padding (the prompts end where generation starts), and
stops at the end-of-turn token ``<|end|>`` or ``<|endoftext|>``, or after ``max_new_tokens``. The response is the
text before ``<|end|>``. :func:`assistant_loss` is the held-out loss on the assistant tokens, in nats per token.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from .sft import END, IGNORE_INDEX, encode_chat, end_token_id, pad_collate
from .sft_trl import quiet

__all__ = ["generate_responses", "evaluate", "assistant_loss", "stop_ids"]


def stop_ids(tokenizer) -> list[int]:
    """The tokens generation stops on: ``<|end|>`` (end of turn) and the tokenizer's EOS (end of document)."""
    return [end_token_id(tokenizer)] + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


@torch.no_grad()
def generate_responses(model, tokenizer, conversations: list[list[dict]], max_new_tokens: int = 96,
                       batch_size: int = 16, return_ids: bool = False):
    """Greedy responses to ``conversations`` (message lists ending with the user's turn).

    Returns the response texts (up to, not including, ``<|end|>``); with ``return_ids``, also the generated ids
    of each (the stop token included when one was produced).
    """
    model.eval()
    device = next(model.parameters()).device
    stops = stop_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[-1]
    texts, all_ids = [], []
    for i in range(0, len(conversations), batch_size):
        prompts = [tokenizer.apply_chat_template(c, tokenize=True, add_generation_prompt=True, return_dict=True)
                   ["input_ids"] for c in conversations[i: i + batch_size]]
        L = max(map(len, prompts))
        ids = torch.full((len(prompts), L), pad, dtype=torch.long)
        att = torch.zeros(len(prompts), L, dtype=torch.long)
        for b, p in enumerate(prompts):  # left padding: every prompt ends at column L - 1
            ids[b, L - len(p):] = torch.as_tensor(p)
            att[b, L - len(p):] = 1
        with quiet():  # no advice on stderr (e.g. "exceeded the model's predefined maximum length")
            out = model.generate(input_ids=ids.to(device), attention_mask=att.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops, pad_token_id=pad)
        for row in out[:, L:].tolist():
            cut = next((t + 1 for t, tok in enumerate(row) if tok in stops), len(row))
            gen = row[:cut]
            all_ids.append(gen)
            body = gen[:-1] if gen and gen[-1] in stops else gen
            texts.append(tokenizer.decode(body, skip_special_tokens=False).split(END)[0].strip())
    return (texts, all_ids) if return_ids else texts


def evaluate(model, tokenizer, examples, max_new_tokens: int = 96, batch_size: int = 16, system=None,
             progress: bool = False) -> dict:
    """Generate for every ``llmlab.tasks`` example and score it with its verifier.

    Returns ``{"pass_rate": {task: fraction passed}, "score": {task: mean partial score}, "n": {task: count},
    "rows": [{"task", "id", "prompt", "response", "passed", "score", "reason"}]}``. ``system``: the system prompt
    (default: the one the course data is formatted with).
    """
    from .. import tasks
    from ..progress import progress as bar

    system = tasks.SYSTEM_PROMPT if system is None else system
    rows = []
    chunks = range(0, len(examples), batch_size)
    for i in bar(chunks, desc="generate", unit="batch", disable=not progress):
        batch = examples[i: i + batch_size]
        texts = generate_responses(model, tokenizer, [ex.messages(system, with_response=False) for ex in batch],
                                   max_new_tokens, batch_size)
        for ex, text in zip(batch, texts):
            v = tasks.verify(ex, text)
            rows.append({"task": ex.task, "id": ex.id, "prompt": ex.prompt, "response": text, "passed": v.passed,
                         "score": v.score, "reason": v.reason})
    by = defaultdict(list)
    for r in rows:
        by[r["task"]].append(r)
    return {"pass_rate": {t: sum(r["passed"] for r in rs) / len(rs) for t, rs in by.items()},
            "score": {t: sum(r["score"] for r in rs) / len(rs) for t, rs in by.items()},
            "n": {t: len(rs) for t, rs in by.items()}, "rows": rows}


@torch.no_grad()
def assistant_loss(model, tokenizer, rows: list[dict], max_length: int | None = None, batch_size: int = 8) -> dict:
    """Mean cross-entropy on the assistant tokens of chat ``rows`` (nats/token), and per character of their text."""
    model.eval()
    device = next(model.parameters()).device
    feats = [encode_chat(tokenizer, r["messages"], max_length) for r in rows]
    nats, n_tok = 0.0, 0
    for i in range(0, len(feats), batch_size):
        b = pad_collate(feats[i: i + batch_size], tokenizer.pad_token_id)
        logits = model(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device)).logits
        y = b["labels"][:, 1:].to(device)
        nats += torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), y.flatten(),
                                                  ignore_index=IGNORE_INDEX, reduction="sum").item()
        n_tok += int((y != IGNORE_INDEX).sum())
    chars = sum(len(r["messages"][-1]["content"]) + len(END) for r in rows)
    return {"loss": nats / n_tok, "ppl": math.exp(nats / n_tok), "tokens": n_tok,
            "bits_per_char": nats / math.log(2) / chars}
