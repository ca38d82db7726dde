"""Sampling responses from a chat model: batched, left-padded, seeded.

A *sampler* maps prompts (lists of chat messages) to one response string each; the preference generators
(:mod:`llmlab.align.preferences`), the RL rollouts and the AI labeller of RLAIF all use one.

Generation pads on the **left**, so that every prompt ends at the same position and the new tokens of a batch
line up (``model.generate`` appends at the right). A response stops at the end-of-turn token ``<|end|>`` or at
``<|endoftext|>`` (the zoo models' ``generation_config``); what follows is padding.
"""

from __future__ import annotations

import torch


def encode_prompts(tokenizer, prompts: list[list[dict]], add_generation_prompt: bool = True) -> dict:
    """Left-padded ``input_ids`` / ``attention_mask`` of chat prompts (the template's generation prompt added)."""
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=add_generation_prompt)
             for p in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def stop_ids(model, tokenizer) -> list[int]:
    """Token ids that end a response: the model's eos ids and ``<|end|>`` if the tokenizer has it."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    if isinstance(end, int) and end != tokenizer.unk_token_id:
        ids.add(end)
    ids.add(tokenizer.eos_token_id)
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int = 48, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0, batch_size: int = 32) -> dict:
    """Sample one response per prompt. Returns ``{"prompt_ids", "prompt_mask", "response_ids", "response_mask",
    "texts"}``: (N, P) prompts left-padded, (N, L) responses right-padded with ``pad_token_id`` after the stop
    token (which is kept, mask 1, so that a policy learns to stop)."""
    was = model.training
    model.eval()
    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id
    out = {"prompt_ids": [], "prompt_mask": [], "response_ids": [], "response_mask": [], "texts": []}
    g = torch.Generator().manual_seed(seed)
    for i in range(0, len(prompts), batch_size):
        enc = encode_prompts(tokenizer, prompts[i:i + batch_size])
        ids, mask = enc["input_ids"], enc["attention_mask"]
        done = torch.zeros(len(ids), dtype=torch.bool)
        new = []
        past, cur, pos = None, ids, (mask.cumsum(-1) - 1).clamp(min=0)
        attn = mask
        for _ in range(max_new_tokens):  # a plain sampling loop with the KV cache: seeded by our generator
            o = model(input_ids=cur, attention_mask=attn, position_ids=pos, cache=past, use_cache=True)
            past = o.cache
            logits = o.logits[:, -1].float() / max(temperature, 1e-6)
            if top_k:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=g).squeeze(1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            new.append(nxt)
            done |= torch.isin(nxt, torch.tensor(stops))
            if done.all():
                break
            cur = nxt[:, None]
            attn = torch.cat([attn, torch.ones(len(ids), 1, dtype=attn.dtype)], dim=1)
            pos = pos[:, -1:] + 1
        resp = torch.stack(new, dim=1)
        # mask: every token up to and including the first stop token
        is_stop = torch.isin(resp, torch.tensor(stops))
        after = (is_stop.cumsum(1) - is_stop.long()) > 0
        rmask = (~after).long()
        resp = resp.masked_fill(after, pad)
        out["prompt_ids"] += list(ids)
        out["prompt_mask"] += list(mask)
        out["response_ids"] += list(resp)
        out["response_mask"] += list(rmask)
        out["texts"] += [tokenizer.decode(r[m.bool()], skip_special_tokens=True) for r, m in zip(resp, rmask)]
    model.train(was)
    # batches differ in their prompt and response lengths: left-pad the prompts, right-pad the responses
    P = max(len(x) for x in out["prompt_ids"])
    L = max(len(x) for x in out["response_ids"])
    left = lambda xs, v: torch.stack([torch.cat([torch.full((P - len(x),), v, dtype=x.dtype), x]) for x in xs])
    right = lambda xs, v: torch.stack([torch.cat([x, torch.full((L - len(x),), v, dtype=x.dtype)]) for x in xs])
    return {"prompt_ids": left(out["prompt_ids"], pad), "prompt_mask": left(out["prompt_mask"], 0),
            "response_ids": right(out["response_ids"], pad), "response_mask": right(out["response_mask"], 0),
            "texts": out["texts"]}


def chat_sampler(model, tokenizer, max_new_tokens: int = 48, temperature: float = 1.0, top_k: int | None = None,
                 seed: int = 0, batch_size: int = 32):
    """A sampler (prompts -> texts) for :func:`llmlab.align.preferences.preference_pairs`."""

    def sample(prompts: list[list[dict]]) -> list[str]:
        return generate(model, tokenizer, prompts, max_new_tokens, temperature, top_k, seed, batch_size)["texts"]

    return sample
