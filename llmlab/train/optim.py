"""Week 2 reference: the loss, the optimizer, its parameter groups and gradient clipping, from scratch.

Each function matches its PyTorch counterpart (``F.cross_entropy``, ``torch.optim.AdamW``,
``torch.nn.utils.clip_grad_norm_``); ``tests/test_train_pipeline.py`` checks that they do.
:func:`param_groups` is the course's one weight-decay rule, :func:`make_optimizer` builds the
optimizer a :class:`llmlab.train.TrainConfig` asks for. The schedule is :mod:`llmlab.train.schedule`.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from .schedule import lr_at  # noqa: F401  (llmlab.optim.lr_at, the old home)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean of -log softmax(logits)[target] over the targets that are not ``ignore_index``.

    logits (..., V), targets (...) int64. log softmax(z)_t = z_t - logsumexp(z), and
    logsumexp(z) = m + log sum exp(z - m) with m = max(z): every exponent is <= 0, so nothing
    overflows even for logits of 1e4. If every target is ignored the mean is 0/0 = NaN, as in PyTorch.
    """
    V = logits.size(-1)
    z = logits.reshape(-1, V)  # (N, V)
    t = targets.reshape(-1)  # (N,)
    m = z.amax(dim=-1, keepdim=True).detach()  # (N, 1); a constant shift, no gradient needed
    lse = m.squeeze(-1) + torch.log(torch.exp(z - m).sum(dim=-1))  # (N,)
    keep = t != ignore_index
    safe_t = torch.where(keep, t, torch.zeros_like(t))  # ignored rows gather a valid index, then get weight 0
    nll = lse - z.gather(1, safe_t[:, None]).squeeze(1)  # (N,)
    nll = torch.where(keep, nll, torch.zeros_like(nll))
    return nll.sum() / keep.sum()


class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW`` computes it.

    For each parameter p with gradient g, at step t = 1, 2, ...::

        p   <- p * (1 - lr * weight_decay)          # decoupled decay: not added to g
        m   <- beta1 * m + (1 - beta1) * g          # exp_avg
        v   <- beta2 * v + (1 - beta2) * g * g      # exp_avg_sq
        p   <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The per-parameter state has torch's layout (``step`` a float32 scalar tensor, ``exp_avg``,
    ``exp_avg_sq``), so the state dicts of the two optimizers can be exchanged.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                t = state["step"].item()
                p.mul_(1 - lr * wd)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bias_correction1 = 1 - beta1**t
                bias_correction2_sqrt = math.sqrt(1 - beta2**t)
                denom = (v.sqrt() / bias_correction2_sqrt).add_(eps)
                p.addcdiv_(m, denom, value=-lr / bias_correction1)
        return loss


@torch.no_grad()
def clip_grad_norm(params: Iterable[torch.nn.Parameter], max_norm: float, eps: float = 1e-6) -> torch.Tensor:
    """Scale all gradients by ``max_norm / (norm + eps)`` when their global L2 norm exceeds ``max_norm``.

    The global norm is sqrt(sum over parameters of ||g||^2), i.e. the norm of all gradients
    flattened into one vector. Returns that norm *before* clipping (what is worth logging).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0)
    coef = torch.clamp(max_norm / (total + eps), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device, g.dtype))
    return total


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings (dim >= 2); never biases and LayerNorm weights (as nanoGPT).

    Only trainable parameters are included (a frozen base under LoRA is skipped), and tied weights once.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def make_optimizer(model: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups` with ``cfg``'s hyperparameters (a :class:`llmlab.train.TrainConfig`).

    ``cfg.optimizer``: "scratch" is :class:`AdamW` above, "torch" is ``torch.optim.AdamW`` on its
    single-tensor path (``foreach=False``: the same arithmetic order as ours, so both give the same numbers).
    """
    groups = param_groups(model, cfg.weight_decay)
    kw = dict(lr=cfg.max_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    if cfg.optimizer == "scratch":
        return AdamW(groups, **kw)
    return torch.optim.AdamW(groups, foreach=False, **kw)
