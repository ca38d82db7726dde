"""Week 3 reference: Megatron-style tensor parallelism (Shoeybi et al. 2019) on top of ``torch.distributed``.

The solutions of ``solutions/week03/06_tensor_parallel`` in library form. Every rank holds a *shard* of each
weight matrix; two conjugate operators move the activations:

- ``f`` = :func:`copy_to_parallel`: identity in the forward pass, all-reduce (sum) of the gradient backward;
- ``g`` = :func:`reduce_from_parallel`: all-reduce (sum) forward, identity backward.

A column-parallel linear (weight rows = output features split) starts with ``f``; a row-parallel linear
(weight columns = input features split) ends with ``g``. Column then row, as in the MLP (``c_fc``, ``c_proj``)
and in attention (``c_attn`` by heads, ``c_proj``), costs one all-reduce forward and one backward.

Layers are built by *sharding* a full single-process layer (``nn.Linear`` layout: weight (out, in)), so that a
parallel model and ``llmlab.models.gpt`` with the same seeded weights can be compared number for number.
Run on several processes with :func:`llmlab.systems.distributed.run_on_ranks`.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# counting what the collectives move


class CommCounter(contextlib.ContextDecorator):
    """``with CommCounter() as c:`` wraps ``dist.all_reduce`` / ``dist.all_gather`` (looked up by attribute at
    call time, so code calling ``dist.all_reduce(t)`` is counted) and records one entry per call:
    ``(op, phase, numel, payload_bytes, sent_bytes)``.

    ``payload_bytes`` is the size of the tensor handed to the collective (the number the formulas use).
    ``sent_bytes`` is what this rank puts on the wire with a *ring* algorithm: 2(N-1)/N x payload for an
    all-reduce (reduce-scatter + all-gather), (N-1)/N x output for an all-gather. With ``ring=True`` every
    all-reduce really runs :func:`ring_all_reduce` (send/recv) and ``sent_bytes`` is measured, not computed.
    ``phase`` is whatever :meth:`phase` set (e.g. "forward", "backward")."""

    def __init__(self, ring: bool = False):
        self.ring, self.records, self._phase, self._saved = ring, [], None, {}

    @contextlib.contextmanager
    def phase(self, name):
        old, self._phase = self._phase, name
        try:
            yield self
        finally:
            self._phase = old

    def __enter__(self):
        self._saved = {name: getattr(dist, name) for name in ("all_reduce", "all_gather")}
        orig_ar, orig_ag = self._saved["all_reduce"], self._saved["all_gather"]
        counter = self

        def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
            n, size, es = tensor.numel(), dist.get_world_size(group), tensor.element_size()
            if counter.ring and op == dist.ReduceOp.SUM and not async_op and group is None:
                sent = ring_all_reduce(tensor)
            else:
                sent = 2 * (size - 1) * n * es / size
                orig_ar(tensor, op=op, group=group, async_op=async_op)
            counter.records.append(("all_reduce", counter._phase, n, n * es, sent))

        def all_gather(tensor_list, tensor, group=None, async_op=False):
            size, nbytes = dist.get_world_size(group), tensor.numel() * tensor.element_size()
            counter.records.append(("all_gather", counter._phase, tensor.numel() * size, nbytes * size,
                                    (size - 1) * nbytes))
            return orig_ag(tensor_list, tensor, group=group, async_op=async_op)

        dist.all_reduce, dist.all_gather = all_reduce, all_gather
        return self

    def __exit__(self, *exc):
        for name, fn in self._saved.items():
            setattr(dist, name, fn)
        return False

    def total(self, key="payload", op=None, phase=None) -> float:
        col = {"calls": None, "numel": 2, "payload": 3, "sent": 4}[key]
        rows = [r for r in self.records if (op is None or r[0] == op) and (phase is None or r[1] == phase)]
        return len(rows) if col is None else sum(r[col] for r in rows)


def ring_all_reduce(t: torch.Tensor) -> int:
    """Sum ``t`` in place over all ranks with the ring algorithm (N-1 reduce-scatter steps, then N-1
    all-gather steps, each sending one of N chunks to the next rank); returns the bytes this rank sent."""
    rank, n = dist.get_rank(), dist.get_world_size()
    flat = t.detach().view(-1) if t.is_contiguous() else t.detach().reshape(-1).clone()
    chunks = list(torch.tensor_split(flat, n))  # views into flat
    nxt, prv, sent = (rank + 1) % n, (rank - 1) % n, 0
    for step in range(2 * (n - 1)):
        s, r = (rank - step) % n, (rank - step - 1) % n  # chunk sent / received this step
        buf = torch.empty_like(chunks[r])
        reqs = [dist.isend(chunks[s].contiguous(), nxt), dist.irecv(buf, prv)]
        for q in reqs:
            q.wait()
        sent += chunks[s].numel() * chunks[s].element_size()
        if step < n - 1:
            chunks[r] += buf  # reduce-scatter: accumulate; after N-1 steps chunk rank+1 is complete
        else:
            chunks[r].copy_(buf)  # all-gather: pass the finished chunks around
    if flat.data_ptr() != t.data_ptr():
        t.detach().copy_(flat.view_as(t))
    return sent


def block_comm_bytes(B: int, T: int, C: int, world_size: int, bytes_per_elem: int = 4) -> dict:
    """Per Transformer block, one forward + backward: 2 all-reduces of B*T*C forward (attention's and the MLP's
    g), 2 backward (their f). Payload = tensor bytes handed to the all-reduces; ring_sent = bytes each rank
    sends with a ring all-reduce, 2(N-1)/N of the payload."""
    one = B * T * C * bytes_per_elem
    return dict(forward=2 * one, backward=2 * one, ring_sent=4 * one * 2 * (world_size - 1) // world_size)


# ---------------------------------------------------------------------------------------------
# f, g and the gather/split pair


class CopyToParallel(torch.autograd.Function):
    """f: forward identity (every rank already holds the full input); backward all-reduce (each rank's
    shard contributed a partial gradient of that input)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class ReduceFromParallel(torch.autograd.Function):
    """g: forward all-reduce (sum the ranks' partial outputs); backward identity (the sum's gradient reaches
    each summand unchanged)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad


class GatherFromParallel(torch.autograd.Function):
    """Concatenate the ranks' last-dimension shards; backward keeps this rank's slice of the gradient."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        return grad.chunk(dist.get_world_size(), dim=-1)[dist.get_rank()].contiguous()


class SplitToParallel(torch.autograd.Function):
    """Keep this rank's last-dimension shard of a replicated tensor; backward all-gathers the gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.chunk(dist.get_world_size(), dim=-1)[dist.get_rank()].contiguous()

    @staticmethod
    def backward(ctx, grad):
        parts = [torch.empty_like(grad) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, grad.contiguous())
        return torch.cat(parts, dim=-1)


def copy_to_parallel(x):
    return CopyToParallel.apply(x)


def reduce_from_parallel(x):
    return ReduceFromParallel.apply(x)


def gather_from_parallel(x):
    return GatherFromParallel.apply(x)


def split_to_parallel(x):
    return SplitToParallel.apply(x)


# ---------------------------------------------------------------------------------------------
# layers


def shard_range(n: int, rank: int, world_size: int) -> torch.Tensor:
    """Indices of this rank's contiguous 1/world_size of range(n)."""
    if n % world_size:
        raise ValueError(f"{n} is not divisible by world_size={world_size}")
    k = n // world_size
    return torch.arange(rank * k, (rank + 1) * k)


class ColumnParallelLinear(nn.Module):
    """Y_i = X A_i: this rank keeps ``rows`` (default: its contiguous share) of the output features of
    ``linear``. Input replicated (after f); output sharded, or gathered to the full width."""

    def __init__(self, linear: nn.Linear, rank: int, world_size: int, gather_output: bool = False, rows=None):
        super().__init__()
        rows = shard_range(linear.out_features, rank, world_size) if rows is None else torch.as_tensor(rows)
        self.gather_output = gather_output
        self.weight = nn.Parameter(linear.weight.detach()[rows].clone())
        self.bias = nn.Parameter(linear.bias.detach()[rows].clone()) if linear.bias is not None else None

    def forward(self, x):
        y = F.linear(copy_to_parallel(x), self.weight, self.bias)
        return gather_from_parallel(y) if self.gather_output else y


class RowParallelLinear(nn.Module):
    """Y = sum_i X_i A_i: this rank keeps its share of the input features of ``linear``; g sums the partial
    products; the bias (replicated) is added once, after the sum."""

    def __init__(self, linear: nn.Linear, rank: int, world_size: int, input_is_parallel: bool = True):
        super().__init__()
        cols = shard_range(linear.in_features, rank, world_size)
        self.input_is_parallel = input_is_parallel
        self.weight = nn.Parameter(linear.weight.detach()[:, cols].clone())
        self.bias = nn.Parameter(linear.bias.detach().clone()) if linear.bias is not None else None

    def forward(self, x):
        if not self.input_is_parallel:
            x = split_to_parallel(x)
        y = reduce_from_parallel(F.linear(x, self.weight))
        return y + self.bias if self.bias is not None else y


class ParallelMLP(nn.Module):
    """llmlab.models.gpt.MLP split over ranks: c_fc column-parallel, GELU on the shard, c_proj row-parallel."""

    def __init__(self, mlp, rank: int, world_size: int):
        super().__init__()
        self.c_fc = ColumnParallelLinear(mlp.c_fc, rank, world_size)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = RowParallelLinear(mlp.c_proj, rank, world_size)
        self.dropout = nn.Dropout(mlp.dropout.p)  # acts on the replicated output: seed the ranks alike

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


def qkv_rows(n_embd: int, n_head: int, rank: int, world_size: int) -> torch.Tensor:
    """Rows of the fused c_attn weight (3C, C) = [W_q; W_k; W_v] holding this rank's heads of q, k and v."""
    if n_head % world_size:
        raise ValueError(f"n_head={n_head} is not divisible by world_size={world_size}")
    mine = shard_range(n_embd, rank, world_size)  # the rank's heads are contiguous in each of q, k, v
    return torch.cat([mine, mine + n_embd, mine + 2 * n_embd])


class ParallelSelfAttention(nn.Module):
    """llmlab.attention.MultiHeadAttention (causal) with n_head / world_size whole heads per rank."""

    def __init__(self, attn, rank: int, world_size: int):
        super().__init__()
        self.n_head = attn.n_head // world_size  # local heads
        self.n_local = attn.n_embd // world_size  # local width = n_head_local * head size
        self.dropout = attn.dropout
        self.c_attn = ColumnParallelLinear(attn.c_attn, rank, world_size,
                                           rows=qkv_rows(attn.n_embd, attn.n_head, rank, world_size))
        self.c_proj = RowParallelLinear(attn.c_proj, rank, world_size)
        self.resid_dropout = nn.Dropout(attn.resid_dropout.p)

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = self.c_attn(x).split(self.n_local, dim=2)  # 3 x (B, T, C/N)
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))  # (B, H/N, T, D)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, self.n_local)  # this rank's heads, in order
        return self.resid_dropout(self.c_proj(y))


class ParallelBlock(nn.Module):
    """llmlab.models.gpt.Block: LayerNorms replicated, attention and MLP tensor-parallel (2 all-reduces each way)."""

    def __init__(self, block, rank: int, world_size: int):
        super().__init__()
        self.ln_1, self.ln_2 = copy.deepcopy(block.ln_1), copy.deepcopy(block.ln_2)
        self.attn = ParallelSelfAttention(block.attn, rank, world_size)
        self.mlp = ParallelMLP(block.mlp, rank, world_size)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def shard_of(full_name: str, full_param: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """The slice of a single-process parameter (or its gradient) that the same-named parameter of the parallel
    module holds on ``rank``: c_attn by heads of q, k and v; c_fc by rows; c_proj.weight by columns; the rest
    (LayerNorms, c_proj.bias) replicated. Names as in llmlab.models.gpt (``attn.c_attn.weight``, ``c_fc.bias``...)."""
    module, kind = full_name.split(".")[-2:]
    if module == "c_attn":
        c = full_param.shape[0] // 3
        return full_param[qkv_rows(c, world_size, rank, world_size)]  # any n_head divisible by N: same rows
    if module == "c_fc":
        return full_param[shard_range(full_param.shape[0], rank, world_size)]
    if module == "c_proj" and kind == "weight":
        return full_param[:, shard_range(full_param.shape[1], rank, world_size)]
    return full_param
