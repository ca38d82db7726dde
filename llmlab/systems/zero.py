"""Week 3 reference: ZeRO (Rajbhandari et al. 2020) from scratch, and its memory per rank.

Data parallelism keeps a full copy of everything on every rank: parameters, gradients and the
optimizer's states. ZeRO removes the redundancy stage by stage; rank r of N keeps only *its shard*
(1/N of the flattened parameter vector) of

- stage 1: the optimizer states (Adam's m and v, and the fp32 master weights);
- stage 2: ... and the gradients;
- stage 3: ... and the parameters themselves (gathered layer by layer when needed).

:class:`ZeroAdamW` is stage 1 on a flat buffer, in three collectives per step::

    flat gradient (padded to N * shard) --reduce-scatter (sum, / N)--> my gradient shard
    my shard of the fp32 weights, m, v  --AdamW (torch.optim.AdamW on the shard)--> new weight shard
    new weight shard                    --all-gather--> every rank's full parameters

AdamW is elementwise, so updating a shard with ``torch.optim.AdamW`` gives bit-for-bit the values
that ``torch.optim.AdamW`` computes for those elements on the full model, given the same gradient.
With two ranks the reduce-scatter sum g0 + g1 is exactly the sum a single process computes, so the
parameters match a single-process run exactly (``tests/test_zero.py``).

:func:`zero_state_bytes` is the per-rank memory of parameters, gradients and optimizer states for
stages 0-3, in the ZeRO paper's accounting (``llmlab.systems.memory.BYTES_PER_PARAM``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .memory import BYTES_PER_PARAM, reachable_tensor_bytes  # noqa: F401  (weighs an optimizer's state)


def shard_size(numel: int, world_size: int) -> int:
    """Elements per rank: ceil(numel / world_size); the flat buffer is padded to world_size * shard."""
    return -(-numel // world_size)


def flatten_padded(tensors, world_size: int) -> torch.Tensor:
    """One fp32 vector of all ``tensors`` (in order), zero-padded to a multiple of ``world_size``."""
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    pad = shard_size(flat.numel(), world_size) * world_size - flat.numel()
    return torch.cat([flat, flat.new_zeros(pad)]) if pad else flat


def unflatten_into(flat: torch.Tensor, tensors) -> None:
    """Copy consecutive pieces of ``flat`` into ``tensors`` (the inverse of :func:`flatten_padded`)."""
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


class ZeroAdamW:
    """ZeRO stage 1 AdamW: each rank keeps the fp32 weights, m and v of 1/world_size of the parameters.

    Call it like an optimizer after ``loss.backward()`` on the rank's own micro-batch: ``step()``
    averages the gradients over the ranks (reduce-scatter), updates this rank's shard with
    ``torch.optim.AdamW``, and all-gathers the new parameters into every rank's model.
    """

    def __init__(self, params, rank: int, world_size: int, **adamw_kwargs):
        self.params = [p for p in params if p.requires_grad]
        self.rank, self.world_size = rank, world_size
        self.numel = sum(p.numel() for p in self.params)
        self.shard = shard_size(self.numel, world_size)
        lo = rank * self.shard
        # this rank's slice of the flattened parameters: the only fp32 weights the optimizer updates
        self.master = flatten_padded(self.params, world_size)[lo:lo + self.shard].clone()
        self.inner = torch.optim.AdamW([self.master], **adamw_kwargs)  # m, v: shard-sized

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat_grad = flatten_padded(grads, self.world_size)  # (N * shard,)
        my_grad = torch.empty(self.shard)
        dist.reduce_scatter_single(my_grad, flat_grad, op=dist.ReduceOp.SUM)  # sum of my slice over ranks
        self.master.grad = my_grad.div_(self.world_size)  # the mean gradient, as data parallelism uses
        self.inner.step()
        full = torch.empty(self.shard * self.world_size)
        dist.all_gather_single(full, self.master)  # every rank's updated shard, in rank order
        unflatten_into(full, [p.data for p in self.params])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()


def zero_state_bytes(n_params: int, world_size: int, stage: int, mode: str = "mixed") -> dict[str, int]:
    """Per-rank bytes of parameters, gradients and optimizer states under ZeRO ``stage`` (0-3).

    Bytes per parameter as in ``llmlab.systems.memory.BYTES_PER_PARAM`` (mixed: 2 + 2 + K with K = 12; fp32:
    4 + 4 + 8). A sharded kind costs its bytes per parameter times ceil(n_params / world_size) (the
    flat buffer is padded to a multiple of world_size); the others are replicated on every rank.
    Stage 1 shards the optimizer states, stage 2 also the gradients, stage 3 also the parameters.
    """
    if mode not in BYTES_PER_PARAM:
        raise ValueError(f"mode must be one of {sorted(BYTES_PER_PARAM)}, got {mode!r}")
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage!r}")
    sharded = {"optimizer": stage >= 1, "grads": stage >= 2, "params": stage >= 3}
    shard = shard_size(n_params, world_size)
    out = {k: b * (shard if sharded[k] else n_params) for k, b in BYTES_PER_PARAM[mode].items()}
    out["total"] = sum(out.values())
    return out
