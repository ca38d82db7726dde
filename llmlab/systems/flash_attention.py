"""Week 3 reference: FlashAttention in plain PyTorch (tiles, online softmax, recomputation).

Attention ``softmax(q k^T / sqrt(D)) v`` computed one (query block, key block) tile at a time, so the
(T, S) score matrix never exists: memory is O(T) instead of O(T * S). These are the solutions of
``solutions/week03/04_flash_attention`` in library form.

Shapes: q (..., T, D), k (..., S, D), v (..., S, Dv), any leading axes (batch, heads).
``causal=True`` is the course's rule, ``llmlab.attention.causal_mask``: query i sits at position i + S - T and
sees keys j <= i + S - T (bottom-right alignment; for T == S the same as SDPA's ``is_causal=True``). With T > S
the first T - S queries see no key: their output is zero and their L is -inf.

The forward pass (Dao et al. 2022, FlashAttention-2 loop order) keeps, per query row,
  m   the running max of the scores seen so far,
  l   the running sum of exp(score - m),
  acc the running sum of exp(score - m) * v  (unnormalised output),
and rescales l and acc by exp(m_old - m_new) whenever the max grows. At the end o = acc / l, and the
row's log-sum-exp L = m + log(l) is all the backward pass needs to rebuild any tile of probabilities:
P = exp(q k^T / sqrt(D) - L).
"""

from __future__ import annotations

import math

import torch

from ..attention import causal_mask
from .memory import PeakMemory, peak_tensor_memory, saved_tensor_bytes  # noqa: F401  (the week's measuring tools)


def naive_attention(q, k, v, causal: bool = False):
    """The textbook formula, materialising the (..., T, S) scores and probabilities (causal: T <= S)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T, S)
    if causal:
        scores = scores.masked_fill(~causal_mask(*scores.shape[-2:], device=q.device), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # (..., T, Dv)


def online_softmax_update(m, l, acc, s, v):
    """Fold one block of scores into the running softmax state of each query row.

    m: (..., Tq) running max, -inf before the first block;  l: (..., Tq) running denominator;
    acc: (..., Tq, Dv) running unnormalised output;  s: (..., Tq, Bk) scores of this key block (may hold -inf);
    v: (..., Bk, Dv) the values of this key block.  Returns the new (m, l, acc).
    """
    m_new = torch.maximum(m, s.amax(dim=-1))  # (..., Tq)
    m_safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))  # a row with no key yet
    alpha = torch.exp(m - m_safe)  # (..., Tq) how much the old state shrinks; exp(-inf) = 0 at the start
    p = torch.exp(s - m_safe[..., None])  # (..., Tq, Bk)
    l_new = alpha * l + p.sum(dim=-1)
    acc_new = alpha[..., None] * acc + p @ v
    return m_new, l_new, acc_new


def _acc_dtype(x):
    """Accumulate in float32 at least (float64 inputs stay float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def _causal_tile_mask(q0, q1, k0, k1, offset, device):
    """(q1 - q0, k1 - k0) bool, True where query i may see key j: j <= i + offset, offset = S - T (causal_mask's rule)."""
    rows = torch.arange(q0, q1, device=device)[:, None]
    cols = torch.arange(k0, k1, device=device)[None, :]
    return cols <= rows + offset


def flash_attention_forward(q, k, v, causal: bool = False, block_q: int = 64, block_k: int = 64):
    """Tiled attention. Returns o (..., T, Dv) and the log-sum-exp of every score row, L (..., T) (float32, or float64 for float64 inputs)."""
    T, D = q.shape[-2:]
    S, Dv = v.shape[-2:]
    scale = 1.0 / math.sqrt(D)
    acc_t = _acc_dtype(q)  # float32 for float16/bfloat16/float32 inputs, float64 for float64
    o = q.new_empty(*q.shape[:-1], Dv)
    lse = torch.empty(q.shape[:-1], dtype=acc_t, device=q.device)
    off = S - T  # causal: query i sits at position i + off
    for q0 in range(0, T, block_q):
        q1 = min(q0 + block_q, T)
        qi = q[..., q0:q1, :].to(acc_t)  # (..., bq, D)
        m = torch.full(qi.shape[:-1], float("-inf"), dtype=acc_t, device=q.device)  # (..., bq)
        l = torch.zeros(qi.shape[:-1], dtype=acc_t, device=q.device)
        acc = torch.zeros(*qi.shape[:-1], Dv, dtype=acc_t, device=q.device)
        # causal: key blocks that start after this block's last query position are entirely masked -> never visited
        k_end = min(S, q1 + off) if causal else S
        for k0 in range(0, k_end, block_k):
            k1 = min(k0 + block_k, S)
            s = qi @ k[..., k0:k1, :].to(acc_t).transpose(-2, -1) * scale  # (..., bq, bk)
            if causal and k1 - 1 > q0 + off:  # only tiles that cross the diagonal need a mask
                s = s.masked_fill(~_causal_tile_mask(q0, q1, k0, k1, off, q.device), float("-inf"))
            m, l, acc = online_softmax_update(m, l, acc, s, v[..., k0:k1, :].to(acc_t))
        o[..., q0:q1, :] = (acc / torch.where(l > 0, l, 1.0)[..., None]).to(o.dtype)  # l = 0: no key (T > S), o = 0
        lse[..., q0:q1] = m + torch.log(l)
    return o, lse


def flash_attention_backward(q, k, v, o, lse, do, causal: bool = False, block_q: int = 64, block_k: int = 64):
    """Gradients (dq, dk, dv) from the saved q, k, v, o, L, recomputing each tile of P = exp(S - L).

    Per tile: dV += P^T dO;  dP = dO V^T;  dS = P * (dP - D) with D = rowsum(dO * O);
              dQ += dS K / sqrt(d);  dK += dS^T Q / sqrt(d).
    """
    T, D = q.shape[-2:]
    S = k.shape[-2]
    scale = 1.0 / math.sqrt(D)
    acc_t = _acc_dtype(q)
    qf, kf, vf, dof = q.to(acc_t), k.to(acc_t), v.to(acc_t), do.to(acc_t)
    Drow = (dof * o.to(acc_t)).sum(dim=-1)  # (..., T) = rowsum(P * dP), computed without P
    lse = lse.masked_fill(torch.isneginf(lse), 0.0)  # rows with no key (causal, T > S): P = exp(-inf - 0) = 0
    off = S - T  # causal: query i sits at position i + off
    dq = torch.zeros_like(qf)
    dk = torch.zeros_like(kf)
    dv = torch.zeros_like(vf)
    for k0 in range(0, S, block_k):  # outer loop over key blocks: dk, dv of this block accumulate locally
        k1 = min(k0 + block_k, S)
        kj, vj = kf[..., k0:k1, :], vf[..., k0:k1, :]
        dkj, dvj = torch.zeros_like(kj), torch.zeros_like(vj)
        # causal: query i sees key k0 iff i >= k0 - off; earlier query blocks see none of this key block
        q_start = max(0, (k0 - off) // block_q * block_q) if causal else 0
        for q0 in range(q_start, T, block_q):
            q1 = min(q0 + block_q, T)
            qi, doi = qf[..., q0:q1, :], dof[..., q0:q1, :]
            s = qi @ kj.transpose(-2, -1) * scale  # (..., bq, bk)
            if causal and k1 - 1 > q0 + off:
                s = s.masked_fill(~_causal_tile_mask(q0, q1, k0, k1, off, q.device), float("-inf"))
            p = torch.exp(s - lse[..., q0:q1, None])  # (..., bq, bk) the probabilities, recomputed
            dvj += p.transpose(-2, -1) @ doi
            dp = doi @ vj.transpose(-2, -1)
            ds = p * (dp - Drow[..., q0:q1, None])
            dq[..., q0:q1, :] += ds @ kj * scale
            dkj += ds.transpose(-2, -1) @ qi * scale
        dk[..., k0:k1, :] = dkj
        dv[..., k0:k1, :] = dvj
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class FlashAttentionFunction(torch.autograd.Function):
    """Saves only q, k, v, o and L (O(T) memory); the backward pass recomputes P tile by tile."""

    @staticmethod
    def forward(ctx, q, k, v, causal=False, block_q=64, block_k=64):
        o, lse = flash_attention_forward(q, k, v, causal, block_q, block_k)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.block_q, ctx.block_k = causal, block_q, block_k
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = flash_attention_backward(q, k, v, o, lse, do, ctx.causal, ctx.block_q, ctx.block_k)
        return dq, dk, dv, None, None, None


def flash_attention(q, k, v, causal: bool = False, block_q: int = 64, block_k: int = 64):
    """``F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, S) if causal else None)`` with O(T) memory."""
    return FlashAttentionFunction.apply(q, k, v, causal, block_q, block_k)


# ---------------------------------------------------------------------------------------------------
# measuring memory on a CPU: the week's tools are in llmlab.systems.memory (imported above).
# TensorMemoryTracker, this file's old name for PeakMemory, is kept for one release (the notebook now uses PeakMemory):
TensorMemoryTracker = PeakMemory
