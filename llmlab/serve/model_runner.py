"""Runs one engine step: the tokens the scheduler picked, from many sequences, in one forward pass.

A step is a list of ``(sequence, n)``: run the next ``n`` uncomputed tokens of each sequence (a whole
prompt or a chunk of it for a prefill, 1 token for a decode; both kinds mix in one batch). The runner
pads them into a ``[B, T]`` batch, gives each token its true position (``position_ids``), maps each new
token to its KV slot, builds the ``[B, 1, T, L]`` attention mask (query ``t`` of row ``b`` sees context
positions ``<=`` its own, and none of the padding), and returns, per sequence, the logits of the last
token it ran (or of all ``n`` tokens, for speculative verification).

**Sliding-window attention** (Mistral; Qwen2's ``sliding_attention`` layers): with ``sliding_window = w`` in
the config a query at position ``q`` sees keys ``q - w < k <= q`` only, as transformers' masks do. The mask is
built here, so the engine honours the window exactly; Mistral gets one windowed mask, a model whose config
lists ``layer_types`` gets one mask per layer type (``{"full_attention": ..., "sliding_attention": ...}``).
The blocks that fall out of the window are kept (vLLM frees them): simpler, and only memory is lost.

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
        cfg = model.config
        self.window = getattr(cfg, "sliding_window", None)
        types = getattr(cfg, "layer_types", None)
        self.per_type = self.window is not None and types is not None   # else one mask for every layer

    def prepare(self, batch: list[tuple[Sequence, int]]):
        """Tensors of a step (see the module docstring)."""
        B, T = len(batch), max(n for _, n in batch)
        L = max(seq.num_computed + n for seq, n in batch)
        ids = torch.zeros(B, T, dtype=torch.long)
        pos = torch.zeros(B, T, dtype=torch.long)
        valid = torch.zeros(B, T, dtype=torch.bool)
        ctx = torch.zeros(B, L, dtype=torch.long)
        allowed = torch.zeros(B, T, L, dtype=torch.bool)
        windowed = torch.zeros(B, T, L, dtype=torch.bool) if self.window is not None else None
        slots, cache = [], self.cache
        for b, (seq, n) in enumerate(batch):
            start, tokens = seq.num_computed, seq.tokens
            ids[b, :n] = torch.tensor(tokens[start:start + n])
            pos[b, :n] = torch.arange(start, start + n)
            valid[b, :n] = True
            ctx[b, :start + n] = torch.tensor([cache.slot(seq.block_table, p) for p in range(start + n)])
            slots += ctx[b, start:start + n].tolist()
            q, k = torch.arange(start, start + n)[:, None], torch.arange(start + n)[None]
            allowed[b, :n, :start + n] = k <= q
            allowed[b, n:, 0] = True                       # padding rows: see one key, so no row is all -inf
            if windowed is not None:                       # and only the last `window` positions
                windowed[b, :n, :start + n] = (k <= q) & (k > q - self.window)
                windowed[b, n:, 0] = True

        def as_mask(ok):
            m = torch.zeros(B, 1, T, L, dtype=self.dtype)
            return m.masked_fill_(~ok[:, None], torch.finfo(self.dtype).min).to(self.device)
        if windowed is None:
            mask = as_mask(allowed)
        elif self.per_type:
            mask = {"full_attention": as_mask(allowed), "sliding_attention": as_mask(windowed)}
        else:
            mask = as_mask(windowed)
        step = PagedStep(cache, valid.view(-1).to(self.device), torch.tensor(slots, device=self.device),
                         ctx.to(self.device))
        return ids.to(self.device), pos.to(self.device), mask, step

    @torch.inference_mode()
    def run(self, batch: list[tuple[Sequence, int]], all_logits: bool = False) -> list[torch.Tensor]:
        """Per sequence: the logits ``[V]`` of its last token run (``all_logits``: ``[n, V]``), float32, CPU."""
        ids, pos, mask, step = self.prepare(batch)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=step, use_cache=True)
        logits = out.logits.float()
        if all_logits:
            return [logits[b, :n].cpu() for b, (_, n) in enumerate(batch)]
        return [logits[b, n - 1].cpu() for b, (_, n) in enumerate(batch)]
