"""llmlab.systems.flash_attention and llmlab.systems.triton_attention against torch's scaled_dot_product_attention."""

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from llmlab.attention import causal_mask
from llmlab.systems.flash_attention import (
    flash_attention,
    flash_attention_forward,
    naive_attention,
    online_softmax_update,
    peak_tensor_memory,
    saved_tensor_bytes,
)

# (B, H, T, S, D, causal, block_q, block_k): T not a multiple of the blocks, block_q != block_k, T != S
CASES = [
    (2, 3, 37, 37, 16, True, 16, 8),
    (2, 3, 37, 37, 16, False, 8, 16),
    (1, 2, 29, 45, 8, False, 16, 16),
    (1, 1, 64, 64, 32, True, 64, 64),  # a single tile
    (3, 1, 20, 20, 4, True, 5, 7),
    (1, 2, 29, 45, 8, True, 16, 8),  # causal, T < S: bottom-right (new queries after a KV cache)
    (2, 1, 1, 37, 8, True, 16, 16),  # one query after 36 cached keys: it sees all of them
    (1, 2, 40, 24, 8, True, 16, 8),  # causal, T > S: the first 16 queries see no key (output 0)
]


def reference(q, k, v, causal):
    """torch's SDPA with the course's causal mask (bottom-right; SDPA returns zeros for a row with no key)."""
    mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(k.shape[-2] - q.shape[-2]) if causal else None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def qkv(B, H, T, S, D, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, D, generator=g, dtype=dtype)
    k = torch.randn(B, H, S, D, generator=g, dtype=dtype)
    v = torch.randn(B, H, S, D, generator=g, dtype=dtype)
    return q, k, v



def masked_scores(q, k, causal):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if causal:
        T, S = s.shape[-2:]
        s = s.masked_fill(~torch.ones(T, S, dtype=torch.bool).tril(S - T), float("-inf"))
    return s


def test_causal_mask_is_bottom_right():
    # the rule, against torch's own lower-right causal bias, for T < S, T == S (and T > S by the formula)
    from torch.nn.attention.bias import causal_lower_right
    for T, S in [(3, 7), (1, 5), (6, 6)]:
        assert torch.equal(causal_mask(T, S), causal_lower_right(T, S)._materialize())
    assert torch.equal(causal_mask(4, 2), torch.tensor([[s <= t - 2 for s in range(2)] for t in range(4)]))
    assert torch.equal(causal_mask(5), torch.ones(5, 5, dtype=torch.bool).tril())  # T == S: SDPA's is_causal


def test_online_softmax_matches_softmax():
    g = torch.Generator().manual_seed(0)
    s, v = torch.randn(4, 30, generator=g) * 5, torch.randn(30, 6, generator=g)
    m, l, acc = torch.full((4,), float("-inf")), torch.zeros(4), torch.zeros(4, 6)
    for b in range(0, 30, 7):  # blocks of 7, 7, 7, 7, 2
        m, l, acc = online_softmax_update(m, l, acc, s[:, b:b + 7], v[b:b + 7])
    # float32 exp/sum over 30 terms: ~1e-6 relative
    torch.testing.assert_close(acc / l[:, None], torch.softmax(s, -1) @ v, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m + l.log(), torch.logsumexp(s, -1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("B,H,T,S,D,causal,bq,bk", CASES)
def test_forward_and_backward_match_sdpa(B, H, T, S, D, causal, bq, bk):
    q, k, v = (x.requires_grad_() for x in qkv(B, H, T, S, D))
    out = flash_attention(q, k, v, causal, bq, bk)
    ref = reference(q, k, v, causal)
    do = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(out, (q, k, v), do)
    ref_grads = torch.autograd.grad(ref, (q, k, v), do)
    # float32, a few matmuls of length <= 64 and exp: errors ~1e-6; 1e-5 leaves margin
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for name, a, b in zip("qkv", grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=lambda m, n=name: f"d{n}: {m}")


def test_logsumexp_and_naive():
    for T, S in [(33, 33), (21, 40)]:
        q, k, v = qkv(2, 2, T, S, 8, seed=2)
        for causal in (False, True):
            o, lse = flash_attention_forward(q, k, v, causal, 16, 8)
            torch.testing.assert_close(lse, torch.logsumexp(masked_scores(q, k, causal), -1), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(naive_attention(q, k, v, causal), reference(q, k, v, causal), atol=1e-5, rtol=1e-5)


def test_float64_gradcheck():
    for T, S in [(11, 11), (6, 13)]:
        q, k, v = (x.requires_grad_() for x in qkv(1, 2, T, S, 4, seed=3, dtype=torch.float64))
        assert torch.autograd.gradcheck(lambda q, k, v: flash_attention(q, k, v, True, 4, 8), (q, k, v))


def test_memory_is_linear_in_T():
    # the tiled version keeps q, k, v, o and L (T floats per row): O(T); naive keeps the (T, T) probabilities
    D, saved, peaks = 16, {}, {}
    for T in (128, 256):
        q, k, v = (x.requires_grad_() for x in qkv(1, 1, T, T, D))
        _, saved[T] = saved_tensor_bytes(flash_attention, q, k, v, True, 32, 32)
        peaks[T] = peak_tensor_memory(lambda: flash_attention(q, k, v, True, 32, 32).sum().backward())
        _, naive_saved = saved_tensor_bytes(naive_attention, q, k, v, True)
        assert naive_saved >= T * T * 4  # at least the float32 probabilities
    assert saved[128] == 4 * 128 * D * 4 + 128 * 4  # q, k, v, o (float32) + L
    assert saved[256] == 2 * saved[128]
    assert peaks[256] < 2.2 * peaks[128]  # linear (plus one fixed-size tile), not x4


TRITON_CHECK = """
import os, sys, torch
import torch.nn.functional as F
from llmlab.systems import triton_attention as ta  # sets TRITON_INTERPRET=1 before importing triton when there is no GPU
dev = "cuda" if torch.cuda.is_available() else "cpu"
if ta.why_unavailable(dev):
    print("SKIP", ta.why_unavailable(dev)); sys.exit(0)
atol = 1e-5 if dev == "cpu" else 1e-2  # a GPU multiplies float32 in tf32 (10-bit mantissa)
g = torch.Generator().manual_seed(4)
# tiny: the interpreter is slow. Causal: bottom-right (llmlab.attention.causal_mask), T == S, T < S, and T > S
for T, S, D, causal in [(24, 24, 8, True), (20, 36, 16, False), (20, 36, 16, True), (36, 20, 16, True)]:
    q, k, v = (torch.randn(1, 2, n, D, generator=g).to(dev) for n in (T, S, S))
    o, lse = ta.attention_forward(q, k, v, causal, 16, 16, return_lse=True)
    s = q @ k.transpose(-2, -1) / D ** 0.5
    mask = torch.ones(T, S, dtype=torch.bool, device=dev).tril(S - T) if causal else None
    if causal:
        s = s.masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(o, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=atol, rtol=atol)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1), atol=atol, rtol=atol)
print("OK")
"""


def test_triton_forward():
    # A fresh process: TRITON_INTERPRET must be set before triton is first imported, and other tests
    # (anything touching torch._dynamo) may already have imported it in this one.
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", TRITON_CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    if r.stdout.startswith("SKIP"):
        pytest.skip(r.stdout)
    assert r.stdout.strip().endswith("OK")
