"""The modality projector of LLaVA (Liu et al., 2023): vision features -> the language model's embedding space.

LLaVA-1 used one linear layer; LLaVA-1.5 a 2-layer MLP with GELU ("mlp2x_gelu"), which is what
``transformers.LlavaMultiModalProjector`` implements (parameter names ``linear_1``, ``linear_2``)::

    image features (B, N, Dv) -> linear_1 -> GELU -> linear_2 -> (B, N, C)     C = the LM's hidden size

Each of the N patch features becomes one "word" the language model reads: the projector is the only part
trained in LLaVA's stage 1, when the vision tower and the LM stay frozen.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

PROJECTORS = ("linear", "mlp2x_gelu")


class Projector(nn.Module):
    """``kind="mlp2x_gelu"``: linear_1 -> GELU -> linear_2 (HF ``LlavaMultiModalProjector``); ``"linear"``: linear_1."""

    def __init__(self, vision_hidden_size: int, text_hidden_size: int, kind: str = "mlp2x_gelu"):
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f"unknown projector {kind!r}; use one of {PROJECTORS}")
        self.kind = kind
        self.linear_1 = nn.Linear(vision_hidden_size, text_hidden_size)
        if kind == "mlp2x_gelu":
            self.linear_2 = nn.Linear(text_hidden_size, text_hidden_size)

    def forward(self, x):
        x = self.linear_1(x)  # (B, N, C)
        return self.linear_2(F.gelu(x)) if self.kind == "mlp2x_gelu" else x
