"""The figures the notebooks draw again and again: attention maps and loss curves."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import torch


def plot_attention(weights: torch.Tensor, queries: Sequence[str] | None = None, keys: Sequence[str] | None = None,
                   title: str = "attention weights", ax=None):
    """Heat map of a (T, S) attention matrix: row = query, column = key, each row sums to 1."""
    w = weights.detach().float().cpu()
    ax = ax or plt.subplots(figsize=(0.45 * w.shape[1] + 2, 0.45 * w.shape[0] + 1.5))[1]
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-9, w.max().item()))
    if keys is not None:
        ax.set_xticks(range(len(keys)), list(keys), rotation=90)
    if queries is not None:
        ax.set_yticks(range(len(queries)), list(queries))
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_losses(history: Mapping[str, Sequence[float]], steps_key: str = "step", title: str = "loss",
                target: float | None = None, ax=None, log_y: bool = False):
    """Train/val curves from a history dict such as ``{"step": [...], "train": [...], "val": [...]}``."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    steps = history[steps_key]
    for name, values in history.items():
        if name == steps_key or len(values) != len(steps):
            continue
        ax.plot(steps, values, label=name, marker="o" if len(steps) < 30 else None)
    if target is not None:
        ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel(steps_key)
    ax.set_ylabel("cross-entropy (nats/token)")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy in nats): the effective number of equally likely next tokens."""
    return math.exp(loss)
