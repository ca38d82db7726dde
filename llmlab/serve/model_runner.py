"""Runs one engine step: the tokens the scheduler picked, from many sequences, in one forward pass.

A step is a list of ``(sequence, n)``: run the next ``n`` uncomputed tokens of each sequence (a whole
prompt or a chunk of it for a prefill, 1 token for a decode; both kinds mix in one batch). The runner
pads them into a ``[B, T]`` batch, gives each token its true position (``position_ids``), maps each new
token to its KV slot, builds the ``[B, 1, T, L]`` attention mask (query ``t`` of row ``b`` sees context
positions ``<=`` its own, and none of the padding), and returns, per sequence, the logits of the last
token it ran (or of all ``n`` tokens, for speculative verification).

Why Hugging Face models and not the course's :mod:`llmlab.models.llama`: the server must serve any HF
Llama / Mistral / Qwen2 / GPT-2 directory, and greedy output must equal ``transformers`` ``generate``
token for token; running the HF modules themselves, with the paged cache passed as their ``cache``,
gets both without a second implementation of each architecture (the course Llama has no GPT-2 path and
no Qwen2 biases). The notebooks build the same pieces around the course models.
"""

from __future__ import annotations

import torch

from .kv_cache import PagedKVCache, PagedStep
from .request import Sequence


class ModelRunner:
    def __init__(self, model, cache: PagedKVCache):
        self.model, self.cache = model.eval(), cache
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype

    def prepare(self, batch: list[tuple[Sequence, int]]):
        """Tensors of a step (see the module docstring)."""
        B, T = len(batch), max(n for _, n in batch)
        L = max(seq.num_computed + n for seq, n in batch)
        ids = torch.zeros(B, T, dtype=torch.long)
        pos = torch.zeros(B, T, dtype=torch.long)
        valid = torch.zeros(B, T, dtype=torch.bool)
        ctx = torch.zeros(B, L, dtype=torch.long)
        allowed = torch.zeros(B, T, L, dtype=torch.bool)
        slots, cache = [], self.cache
        for b, (seq, n) in enumerate(batch):
            start, tokens = seq.num_computed, seq.tokens
            ids[b, :n] = torch.tensor(tokens[start:start + n])
            pos[b, :n] = torch.arange(start, start + n)
            valid[b, :n] = True
            ctx[b, :start + n] = torch.tensor([cache.slot(seq.block_table, p) for p in range(start + n)])
            slots += ctx[b, start:start + n].tolist()
            allowed[b, :n, :start + n] = torch.ones(n, start + n, dtype=torch.bool).tril(start)
            allowed[b, n:, 0] = True                       # padding rows: see one key, so no row is all -inf
        mask = torch.zeros(B, 1, T, L, dtype=self.dtype)
        mask.masked_fill_(~allowed[:, None], torch.finfo(self.dtype).min)
        step = PagedStep(cache, valid.view(-1).to(self.device), torch.tensor(slots, device=self.device),
                         ctx.to(self.device))
        return ids.to(self.device), pos.to(self.device), mask.to(self.device), step

    @torch.inference_mode()
    def run(self, batch: list[tuple[Sequence, int]], all_logits: bool = False) -> list[torch.Tensor]:
        """Per sequence: the logits ``[V]`` of its last token run (``all_logits``: ``[n, V]``), float32, CPU."""
        ids, pos, mask, step = self.prepare(batch)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=step, use_cache=True)
        logits = out.logits.float()
        if all_logits:
            return [logits[b, :n].cpu() for b, (_, n) in enumerate(batch)]
        return [logits[b, n - 1].cpu() for b, (_, n) in enumerate(batch)]
