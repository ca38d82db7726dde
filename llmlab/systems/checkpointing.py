"""Week 3 reference: gradient (activation) checkpointing for ``llmlab.models.gpt.GPT``.

A checkpointed block saves only its input in the forward pass and runs its forward again inside
the backward pass to rebuild what it needs: per block, memory falls from ~16 BTC floats to BTC,
for one extra forward (about a third more compute for that block).

- :func:`gpt_forward` is ``GPT.forward`` with a chosen set of blocks checkpointed one by one, built
  from the model's own pieces (``GPTModel.embed``, the blocks ``transformer.h``, ``ln_f``, ``GPT.head``);
- :func:`segment_bounds` / :func:`gpt_forward_segments` checkpoint *segments* of consecutive blocks,
  exactly as ``torch.utils.checkpoint.checkpoint_sequential`` does (every segment but the last);
  with ~sqrt(N) segments of ~sqrt(N) blocks, memory is O(sqrt(N)) boundaries + one segment
  (Chen et al. 2016, "Training deep nets with sublinear memory cost").

Everything uses ``use_reentrant=False`` (PyTorch's recommended implementation). Random number
generator states are saved and restored, so dropout masks in the recomputation equal the first ones
and the gradients equal the plain model's bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from ..models.gpt import GPT


def embed(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Token + position embeddings (+ dropout), the start of ``GPT.forward``: (B, T) -> (B, T, C)."""
    return model.transformer.embed(idx)


def head(model: GPT, x: torch.Tensor, targets: torch.Tensor | None = None):
    """Final LayerNorm, LM head and loss, the end of ``GPT.forward``: returns (logits, loss)."""
    return model.head(model.transformer.ln_f(x), targets)


def gpt_forward(model: GPT, idx: torch.Tensor, targets: torch.Tensor | None = None, checkpoint_blocks=()):
    """``model(idx, targets)`` with the blocks whose indices are in ``checkpoint_blocks`` checkpointed."""
    chosen = set(checkpoint_blocks)
    x = embed(model, idx)
    for i, block in enumerate(model.transformer.h):
        x = checkpoint(block, x, use_reentrant=False) if i in chosen else block(x)
    return head(model, x, targets)


def segment_bounds(n_blocks: int, n_segments: int) -> list[tuple[int, int, bool]]:
    """``checkpoint_sequential``'s split: ``(start, end, checkpointed)`` with blocks ``start..end-1``.

    Segments hold ``n_blocks // n_segments`` blocks; the last one takes the remainder and is not
    checkpointed (its activations are needed first in the backward pass anyway).
    """
    if not 1 <= n_segments <= n_blocks:
        raise ValueError(f"need 1 <= n_segments <= n_blocks, got {n_segments} segments for {n_blocks} blocks")
    size = n_blocks // n_segments
    bounds = [(s, s + size, True) for s in range(0, size * (n_segments - 1), size)]
    return bounds + [(size * (n_segments - 1), n_blocks, False)]


def sqrt_segments(n_blocks: int) -> int:
    """The number of segments of the sqrt(N) strategy: round(sqrt(N)), at least 1."""
    return max(1, round(math.sqrt(n_blocks)))


def gpt_forward_segments(model: GPT, idx: torch.Tensor, targets: torch.Tensor | None = None,
                         n_segments: int | None = None):
    """``model(idx, targets)`` with the blocks checkpointed in segments (default: sqrt(N) segments)."""
    blocks = model.transformer.h
    n_segments = sqrt_segments(len(blocks)) if n_segments is None else n_segments

    def run(start, end):
        def segment(x):
            for block in blocks[start:end]:
                x = block(x)
            return x
        return segment

    x = embed(model, idx)
    for start, end, ckpt in segment_bounds(len(blocks), n_segments):
        x = checkpoint(run(start, end), x, use_reentrant=False) if ckpt else run(start, end)(x)
    return head(model, x, targets)
