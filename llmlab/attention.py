"""Week 1 reference: scaled dot-product attention, sin-cos positional encoding, multi-head attention.

These are the solutions of ``solutions/week01/01-03`` in library form; later weeks import them.
Shapes: B batch, H heads, T query length, S key length, D head size, C model width.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def causal_mask(T: int, S: int | None = None, device=None) -> torch.Tensor:
    """Boolean (T, S) mask, True where query t may attend to key s: s <= t + S - T.

    The course's one causal rule, aligned at the bottom-right corner: the T queries are the LAST T of the
    S positions, so query t sits at position t + S - T. For T == S it is the lower triangle; for T < S (new
    queries after a KV cache, Week 6) each query also sees every earlier key; for T > S the first T - S
    queries see no key (masked_softmax gives them zeros). FlashAttention-2 (>= 2.1) and
    ``torch.nn.attention.bias.causal_lower_right`` use this rule, and so does every ``causal=True`` in llmlab
    (``flash_attention``, ``triton_attention``). ``F.scaled_dot_product_attention(is_causal=True)`` aligns
    top-left (query t sees s <= t): the same only when T == S.
    """
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def padding_mask(lengths: torch.Tensor, S: int) -> torch.Tensor:
    """Boolean (B, 1, 1, S) mask, True at real tokens, False at padding on the right."""
    return (torch.arange(S, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax; ``mask`` is True where allowed.

    A row whose entries are all masked has no valid distribution: we return zeros for it
    (the query attends to nothing and its output is the zero vector), never NaN.
    """
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    m = scores.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf row: avoid inf - inf
    e = torch.exp(scores - m)
    denom = e.sum(dim=dim, keepdim=True)
    return e / denom.clamp_min(torch.finfo(e.dtype).tiny)


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0, training: bool = True, return_weights=False):
    """softmax(q k^T / sqrt(D), masked) v, with dropout on the attention weights.

    q: (..., T, D), k: (..., S, D), v: (..., S, Dv); mask broadcastable to (..., T, S), True = keep.
    """
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (..., T, S)
    weights = masked_softmax(scores, mask, dim=-1)
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p, training=True)
    out = weights @ v  # (..., T, Dv)
    return (out, weights) if return_weights else out


def sinusoidal_positional_encoding(n_positions: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """(n_positions, d_model): PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d))."""
    if d_model % 2:
        raise ValueError(f"d_model must be even for sin-cos pairs, got {d_model}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    angles = pos * inv_freq  # (P, d/2)
    pe = torch.zeros(n_positions, d_model)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe


def relative_shift_matrix(k: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The (d_model, d_model) block-diagonal rotation M_k with PE[p + k] = PE[p] @ M_k for every p."""
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    M = torch.zeros(d_model, d_model, dtype=torch.float64)
    c, s = torch.cos(k * inv_freq), torch.sin(k * inv_freq)
    i = torch.arange(0, d_model, 2)
    # [sin(a+b), cos(a+b)] = [sin a, cos a] @ [[cos b, -sin b], [sin b, cos b]]
    M[i, i], M[i, i + 1] = c, -s
    M[i + 1, i], M[i + 1, i + 1] = s, c
    return M.float()


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with GPT-2's parameter names (``c_attn`` packs Q, K, V; ``c_proj``)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = True) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, H, T, D)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if mask is None and causal:
            # the fused kernel gives the same numbers as scaled_dot_product_attention above, faster
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        else:
            if causal:
                mask = causal_mask(T, device=x.device) if mask is None else mask & causal_mask(T, device=x.device)
            y = scaled_dot_product_attention(q, k, v, mask, self.dropout, self.training)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads
        return self.resid_dropout(self.c_proj(y))
