"""Week 3: Megatron-style tensor parallelism (llmlab.systems.tensor_parallel) against the single-process model.

Each test forks gloo ranks with llmlab.systems.distributed.run_on_ranks; the reference is llmlab.models.gpt / nn.Linear
with the same seeded weights and plain autograd. Tolerances: the all-reduce sums the ranks' partial
products in another order than one big matmul does, so float32 results differ by round-off (~1e-7
relative); atol=1e-5 on O(1) values leaves a 100x margin and still catches any real mistake (>1e-3).
"""

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

from llmlab.models.gpt import Block, GPTConfig
from llmlab.systems import tensor_parallel as tp
from llmlab.systems.distributed import run_on_ranks


def _f_and_g(rank, ws):
    x = torch.full((3,), float(rank + 1), requires_grad=True)
    (tp.copy_to_parallel(x) * (rank + 1)).sum().backward()  # f: grad all-reduced = sum_r (r + 1)
    y = torch.full((3,), float(rank + 1), requires_grad=True)
    out = tp.reduce_from_parallel(y)
    (out * (rank + 1)).sum().backward()  # g: identity backward, each rank keeps its own upstream grad
    return x.grad, out.detach(), y.grad


def test_f_and_g_are_conjugate():
    (gx0, out0, gy0), (gx1, out1, gy1) = run_on_ranks(_f_and_g, 2)
    assert torch.equal(gx0, torch.full((3,), 3.0)) and torch.equal(gx1, gx0)  # 1 + 2, exact small integers
    assert torch.equal(out0, torch.full((3,), 3.0)) and torch.equal(out1, out0)
    assert torch.equal(gy0, torch.full((3,), 1.0)) and torch.equal(gy1, torch.full((3,), 2.0))


def _linears(rank, ws, seed):
    torch.manual_seed(seed)
    lin1, lin2 = nn.Linear(8, 12), nn.Linear(12, 8)
    x = torch.randn(2, 5, 8, requires_grad=True)
    y = tp.RowParallelLinear(lin2, rank, ws, input_is_parallel=False)(
        tp.ColumnParallelLinear(lin1, rank, ws, gather_output=True)(x))
    (y * torch.arange(8.0)).sum().backward()
    return y.detach(), x.grad


@pytest.mark.parametrize("ws", [2, 4])
def test_gathered_column_then_split_row_equals_two_linears(ws):
    results = run_on_ranks(_linears, ws, 0)
    torch.manual_seed(0)
    lin1, lin2 = nn.Linear(8, 12), nn.Linear(12, 8)
    x = torch.randn(2, 5, 8, requires_grad=True)
    y = lin2(lin1(x))
    (y * torch.arange(8.0)).sum().backward()
    for out, gx in results:
        torch.testing.assert_close(out, y.detach(), atol=1e-5, rtol=1e-5)  # partial sums reordered
        torch.testing.assert_close(gx, x.grad, atol=1e-5, rtol=1e-5)


def _block(rank, ws, cfg, seed, B, T, ring=False):
    torch.manual_seed(seed)
    block = Block(cfg)
    with torch.no_grad():  # non-zero biases and LayerNorm affines, so that every shard is tested
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(B, T, cfg.n_embd, requires_grad=True)
    pblock = tp.ParallelBlock(block, rank, ws)
    with tp.CommCounter(ring=ring) as c:
        with c.phase("forward"):
            y = pblock(x)
        with c.phase("backward"):
            (y * y).sum().backward()
    return y.detach(), x.grad, {n: p.grad for n, p in pblock.named_parameters()}, c.records


def reference_block(cfg, seed, B, T):
    torch.manual_seed(seed)
    block = Block(cfg)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(B, T, cfg.n_embd, requires_grad=True)
    y = block(x)
    (y * y).sum().backward()
    return y.detach(), x.grad, {n: p.grad for n, p in block.named_parameters()}


@pytest.mark.parametrize("ws,n_head,seed", [(2, 4, 0), (4, 4, 1), (2, 2, 2)])
def test_parallel_block_matches_block(ws, n_head, seed):
    cfg, B, T = GPTConfig(n_embd=16, n_head=n_head, block_size=8), 2, 6
    ref_y, ref_gx, ref_g = reference_block(cfg, seed, B, T)
    for rank, (y, gx, grads, _) in enumerate(run_on_ranks(_block, ws, cfg, seed, B, T)):
        torch.testing.assert_close(y, ref_y, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gx, ref_gx, atol=1e-4, rtol=1e-4)  # (y*y) doubles magnitudes: looser
        assert grads.keys() == ref_g.keys()  # same parameter names as llmlab.models.gpt.Block
        for n, g in grads.items():
            torch.testing.assert_close(g, tp.shard_of(n, ref_g[n], rank, ws), atol=1e-4, rtol=1e-4)


def test_comm_counter_matches_formula():
    cfg, B, T, ws = GPTConfig(n_embd=16, n_head=4, block_size=8), 2, 6, 2
    _, _, _, records = run_on_ranks(_block, ws, cfg, 0, B, T)[0]
    assert [(op, ph, n) for op, ph, n, _, _ in records] == [("all_reduce", "forward", B * T * 16)] * 2 + \
        [("all_reduce", "backward", B * T * 16)] * 2  # g in attn and MLP forward; their f backward
    expected = tp.block_comm_bytes(B, T, 16, ws)
    assert sum(r[3] for r in records if r[1] == "forward") == expected["forward"]
    assert sum(r[3] for r in records if r[1] == "backward") == expected["backward"]


@pytest.mark.parametrize("ws", [2, 4])
def test_ring_all_reduce_sends_2_n_minus_1_over_n(ws):
    cfg, B, T = GPTConfig(n_embd=16, n_head=4, block_size=8), 2, 6
    ref_y, _, _ = reference_block(cfg, 3, B, T)
    for y, _, _, records in run_on_ranks(_block, ws, cfg, 3, B, T, ring=True):
        torch.testing.assert_close(y, ref_y, atol=1e-5, rtol=1e-5)  # the ring sums in yet another order
        assert sum(r[4] for r in records) == tp.block_comm_bytes(B, T, 16, ws)["ring_sent"]  # measured sends


def _ring_sum(rank, ws, n):
    t = torch.randn(n, generator=torch.Generator().manual_seed(rank))
    ref = t.clone()
    dist.all_reduce(ref)
    sent = tp.ring_all_reduce(t)
    return t, ref, sent


def test_ring_all_reduce_uneven_chunks():
    for t, ref, sent in run_on_ranks(_ring_sum, 3, 10):  # 10 elements in chunks of 4, 3, 3
        torch.testing.assert_close(t, ref, atol=1e-6, rtol=1e-6)  # sum of 3 N(0,1): order-only differences
        assert 4 * 3 * 4 <= sent <= 4 * 4 * 4  # 2(N-1) = 4 chunks of 3 or 4 float32 elements
