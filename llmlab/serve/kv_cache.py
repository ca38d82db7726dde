"""The paged KV cache's tensors, and the adapter that lets a Hugging Face model read and write them.

Per layer, keys and values live in one pool of ``num_blocks * block_size`` token slots:
``k[layer]`` has shape ``[num_slots, n_kv_heads, head_dim]``; token ``p`` of a sequence is in slot
``block_table[p // block_size] * block_size + p % block_size``.

A Hugging Face attention layer calls ``cache.update(k_new, v_new, layer_idx)`` with the keys/values of the
tokens of this step and attends over whatever it returns. :class:`PagedStep` is such a cache for one
engine step: ``update`` **scatters** the new K/V into their slots (``slot_mapping``) and **gathers** each
sequence's whole context back through its block table (``context_slots``), padded to the longest context
of the batch (the attention mask, built by the model runner, hides the padding). That gather is what a
paged-attention kernel (vLLM's) does on the fly in its inner loop; here it is one ``index_select``, so
any Llama / Mistral / Qwen2 / GPT-2 checkpoint runs on the paged cache unchanged.
"""

from __future__ import annotations

import torch


def kv_shape(config) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of a transformers config (GPT-2's n_layer/n_head map to the same names)."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


class PagedKVCache:
    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, num_blocks: int, block_size: int,
                 dtype=torch.float32, device="cpu"):
        self.block_size, self.num_blocks = block_size, num_blocks
        shape = (num_blocks * block_size, num_kv_heads, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]

    @classmethod
    def for_config(cls, config, num_blocks: int, block_size: int, dtype=torch.float32, device="cpu"):
        return cls(*kv_shape(config), num_blocks=num_blocks, block_size=block_size, dtype=dtype, device=device)

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def slot(self, block_table: list[int], pos: int) -> int:
        return block_table[pos // self.block_size] * self.block_size + pos % self.block_size

    def copy_blocks(self, pairs: list[tuple[int, int]]) -> None:
        """Copy-on-write: block ``dst`` gets ``src``'s keys and values in every layer."""
        bs = self.block_size
        for src, dst in pairs:
            for pool in self.k + self.v:
                pool[dst * bs:(dst + 1) * bs] = pool[src * bs:(src + 1) * bs]


class PagedStep:
    """The ``cache=`` object of one forward pass over a batch of sequences (see the module docstring).

    ``valid``: ``[B*T]`` bool, which (row, query) positions are real tokens; ``slot_mapping``: the slot of
    each real token, in that order; ``context_slots``: ``[B, L]`` slot of each context position (padding
    points at slot 0, masked out); ``context_len``: L."""

    def __init__(self, cache: PagedKVCache, valid: torch.Tensor, slot_mapping: torch.Tensor,
                 context_slots: torch.Tensor):
        self.cache, self.valid, self.slot_mapping, self.context_slots = cache, valid, slot_mapping, context_slots

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        B, H, T, D = key_states.shape   # [B, kv_heads, T, head_dim], the layout HF attention uses
        kpool, vpool = self.cache.k[layer_idx], self.cache.v[layer_idx]
        new_k = key_states.transpose(1, 2).reshape(B * T, H, D)[self.valid]
        new_v = value_states.transpose(1, 2).reshape(B * T, H, D)[self.valid]
        kpool[self.slot_mapping] = new_k.to(kpool.dtype)         # scatter: write this step's K/V
        vpool[self.slot_mapping] = new_v.to(vpool.dtype)
        L = self.context_slots.shape[1]
        flat = self.context_slots.reshape(-1)                    # gather: read the contexts
        k = kpool.index_select(0, flat).view(B, L, H, D).transpose(1, 2)
        v = vpool.index_select(0, flat).view(B, L, H, D).transpose(1, 2)
        return k.to(key_states.dtype), v.to(value_states.dtype)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.context_slots.shape[1]
