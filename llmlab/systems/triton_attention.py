"""Week 3 reference: the FlashAttention forward pass as a Triton kernel.

One program instance computes one block of BLOCK_M query rows of one (batch, head): it loads its
queries once, walks over the key/value blocks with the online softmax of ``llmlab.systems.flash_attention``
(running max m, denominator l, accumulator acc, all float32 "registers"), and writes o = acc / l and
the log-sum-exp L = m + log(l). The (T, S) scores exist only one (BLOCK_M, BLOCK_N) tile at a time.

On a CUDA GPU the kernel is compiled. Without one, Triton can still *run* it with its interpreter
(``TRITON_INTERPRET=1``: every program instance is executed one after the other with NumPy; slow, but
every index, mask and formula is the same). The variable is read when ``@triton.jit`` runs, so this
module sets it before defining the kernel when no GPU is visible. If a kernel was compiled natively
and is then given CPU tensors, ``attention_forward`` refuses with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import torch

if not torch.cuda.is_available():
    # Must happen before @triton.jit below (and, to be safe, before triton is first imported).
    os.environ.setdefault("TRITON_INTERPRET", "1")

try:
    import triton
    import triton.language as tl
except ImportError:  # e.g. macOS / Windows wheels of torch come without Triton
    triton = tl = None


def interpreting() -> bool:
    """True when Triton kernels run in the CPU interpreter in this process.

    Both the variable and Triton's own library must say so: ``triton.language`` decorates its helpers
    (``tl.zeros``, ``tl.max``, ...) when it is first imported, so a Triton imported *before* the variable
    was set (``torch._dynamo`` and torch's dispatch modes import it) cannot interpret kernels.
    """
    if triton is None or os.environ.get("TRITON_INTERPRET", "0") != "1":
        return False
    return type(tl.zeros).__name__ == "InterpretedFunction"


def why_unavailable(device: torch.device | str = "cpu") -> str | None:
    """None if a Triton kernel can run on tensors of ``device`` in this process, else the reason."""
    if triton is None:
        return "Triton is not installed (it ships with torch's Linux x86-64 wheels only)"
    if torch.device(device).type == "cpu" and not interpreting():
        return ("the tensors are on the CPU, where Triton runs only in its interpreter, and the interpreter is off: "
                "set os.environ['TRITON_INTERPRET'] = '1' before anything imports triton (first line of the "
                "notebook or script; torch.compile and torch's dispatch modes import it), then restart")
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        return "CUDA tensors but no CUDA device"
    return None


if triton is not None:

    @triton.jit
    def flash_attention_fwd_kernel(
        Q, K, V, O, L,  # pointers: q, k, v, o (BH, T or S, D) contiguous; L (BH, T) float32
        T, S, D, scale,  # query length, key length, head size, 1/sqrt(D)
        CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):
        pid_m = tl.program_id(0)  # which block of query rows
        pid_bh = tl.program_id(1)  # which (batch, head)
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,) query indices
        cols = tl.arange(0, BLOCK_N)  # (BLOCK_N,) key offsets inside a block
        dims = tl.arange(0, BLOCK_D)  # (BLOCK_D,) head dims, padded to a power of two
        q_ptrs = Q + pid_bh * T * D + rows[:, None] * D + dims[None, :]
        q = tl.load(q_ptrs, mask=(rows[:, None] < T) & (dims[None, :] < D), other=0.0)  # (BLOCK_M, BLOCK_D)
        m = tl.full((BLOCK_M,), float("-inf"), tl.float32)  # running max
        l = tl.zeros((BLOCK_M,), tl.float32)  # running denominator
        acc = tl.zeros((BLOCK_M, BLOCK_D), tl.float32)  # running unnormalised output
        # causal (llmlab.attention.causal_mask's rule): query i sits at position i + S - T; keys after the
        # position of this block's last query are never needed
        hi = tl.minimum(S, (pid_m + 1) * BLOCK_M + S - T) if CAUSAL else S
        for start in range(0, hi, BLOCK_N):
            keys = start + cols  # (BLOCK_N,)
            kv_mask = (keys[:, None] < S) & (dims[None, :] < D)
            k = tl.load(K + pid_bh * S * D + keys[:, None] * D + dims[None, :], mask=kv_mask, other=0.0)
            v = tl.load(V + pid_bh * S * D + keys[:, None] * D + dims[None, :], mask=kv_mask, other=0.0)
            s = tl.dot(q, tl.trans(k)) * scale  # (BLOCK_M, BLOCK_N)
            valid = keys[None, :] < S
            if CAUSAL:
                valid = valid & (keys[None, :] <= rows[:, None] + S - T)
            s = tl.where(valid, s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with no key yet (causal, T > S)
            alpha = tl.exp(m - m_safe)  # rescales the old state
            p = tl.exp(s - m_safe[:, None])
            l = alpha * l + tl.sum(p, axis=1)
            acc = alpha[:, None] * acc + tl.dot(p.to(v.dtype), v)
            m = m_new
        o = acc / tl.where(l > 0, l, 1.0)[:, None]  # l = 0: the row sees no key (T > S), o = 0
        o_ptrs = O + pid_bh * T * D + rows[:, None] * D + dims[None, :]
        tl.store(o_ptrs, o.to(O.dtype.element_ty), mask=(rows[:, None] < T) & (dims[None, :] < D))
        tl.store(L + pid_bh * T + rows, m + tl.log(l), mask=rows < T)

else:  # pragma: no cover
    flash_attention_fwd_kernel = None


def attention_forward(q, k, v, causal: bool = False, block_m: int = 16, block_n: int = 16, kernel=None,
                      return_lse: bool = False):
    """Launch ``kernel`` (default: ``flash_attention_fwd_kernel``) on q (..., T, D), k, v (..., S, D).

    Same semantics as ``llmlab.systems.flash_attention.flash_attention`` (causal: ``llmlab.attention.causal_mask``,
    bottom-right).
    Block sizes must be powers of two and at least 16 (``tl.dot``'s smallest tile).
    """
    kernel = kernel or flash_attention_fwd_kernel
    reason = why_unavailable(q.device)
    if reason:
        raise RuntimeError(f"cannot run the Triton attention kernel: {reason}")
    T, D = q.shape[-2:]
    S = k.shape[-2]
    if v.shape[-1] != D or k.shape[-1] != D:
        raise ValueError(f"this kernel needs one head size for q, k and v, got {q.shape[-1]}, {k.shape[-1]}, {v.shape[-1]}")
    for b in (block_m, block_n):
        if b < 16 or b & (b - 1):
            raise ValueError(f"block sizes must be powers of two >= 16, got {b}")
    lead = q.shape[:-2]
    qf, kf, vf = (x.reshape(-1, x.shape[-2], D).contiguous() for x in (q, k, v))  # (BH, T|S, D)
    o = torch.empty_like(qf)
    lse = torch.empty(qf.shape[:2], dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(T, block_m), qf.shape[0])
    # The interpreter runs NumPy, which warns (on stderr) about exp/log of -inf in lanes that masks then discard;
    # a real NaN still shows in the output.
    quiet = np.errstate(all="ignore") if interpreting() else contextlib.nullcontext()
    with quiet:
        kernel[grid](qf, kf, vf, o, lse, T, S, D, 1.0 / math.sqrt(D), CAUSAL=causal, BLOCK_M=block_m, BLOCK_N=block_n,
                     BLOCK_D=max(16, triton.next_power_of_2(D)))
    o = o.reshape(*lead, T, D)
    return (o, lse.reshape(*lead, T)) if return_lse else o
