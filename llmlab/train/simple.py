"""Week 1's char-level pipeline in one import: tokenizer, batches, evaluation, and the training run.

In the spirit of nanoGPT's ``train.py``, cut down to what a char-level run on a laptop needs::

    from llmlab.train.simple import CharTokenizer, GPT, GPTConfig, TrainConfig, train, train_val_split
    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train_data, val_data = train_val_split(tok.encode_tensor(text))
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64))
    history = train(model, train_data, val_data, TrainConfig(max_steps=1000, max_lr=1e-3))
    print(tok.decode(model.generate(tok.encode_tensor("\\n")[None], 200, top_k=20)[0]))

The pieces live where the rest of the course finds them (:mod:`llmlab.tokenization.char`,
:mod:`llmlab.train.batches`, :mod:`llmlab.train.trainer`); this module adds nanoGPT's two ways of
scoring a model on a token tensor, :func:`estimate_loss` (random windows) and :func:`split_loss`
(every window). ``llmlab.chargpt``, its old name, is this module (kept for one release).
"""

from __future__ import annotations

import torch

from ..models.gpt import GPT, GPTConfig
from ..tokenization.char import CharTokenizer
from .batches import get_batch, train_val_split
from .config import TrainConfig
from .optim import make_optimizer
from .schedule import lr_at
from .trainer import train

__all__ = [
    "CharTokenizer", "train_val_split", "get_batch", "estimate_loss", "split_loss",
    "TrainConfig", "lr_at", "make_optimizer", "train", "GPT", "GPTConfig",
]


@torch.no_grad()
def estimate_loss(model, splits: dict, eval_iters: int, block_size: int | None = None, batch_size: int = 32,
                  generator: torch.Generator | None = None, device="cpu") -> dict:
    """Mean loss over ``eval_iters`` random batches of each split (nanoGPT's estimate).

    ``splits`` maps a name to a 1-D token tensor. Pass a freshly seeded ``generator`` to score the
    same windows every time (less noise when comparing evaluations).
    """
    block_size = block_size or model.config.block_size
    was_training = model.training
    model.eval()
    out = {}
    for name, data in splits.items():
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            x, y = get_batch(data, block_size, batch_size, generator, device)
            losses[k] = model(x, y)[1].item()
        out[name] = losses.mean().item()
    model.train(was_training)
    return out


@torch.no_grad()
def split_loss(model, data: torch.Tensor, block_size: int | None = None, batch_size: int = 256,
               device="cpu") -> float:
    """Mean loss over *every* token of ``data``, cut into non-overlapping windows (deterministic).

    Each window predicts its targets with 0..T-1 tokens of context, the same mix as random windows.
    """
    block_size = block_size or model.config.block_size
    n = (len(data) - 1) // block_size
    x = data[: n * block_size].view(n, block_size)
    y = data[1: n * block_size + 1].view(n, block_size)
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, n, batch_size):
        xb, yb = x[i: i + batch_size].to(device), y[i: i + batch_size].to(device)
        total += model(xb, yb)[1].item() * xb.numel()
    model.train(was_training)
    return total / (n * block_size)
