"""GaLore (Zhao et al., 2024): Adam whose moments live in the top-r singular subspace of each gradient.

For a weight matrix with gradient G (m, n) the projector is recomputed every ``update_gap`` steps from the
SVD of the current gradient, on the smaller side (GaLore's "std" rule):

- m >= n: P = Vh[:r] (r, n), the low-rank gradient R = G Pᵀ (m, r), a step N (m, r) goes back as N P;
- m < n:  P = U[:, :r] (m, r), R = Pᵀ G (r, n), a step N (r, n) goes back as P N.

Projected back, R is the best rank-r approximation of G (Eckart-Young, bonus notebook 1).

Adam runs on R (moments of shape R), its normalised step N is projected back and applied with
``lr * scale``. The moments are kept when the projector changes (as in GaLore's reference code). Other
parameters (vectors: biases, norms) get plain Adam. The step is torch.optim.Adam's formula, m̂ / (√v̂ + eps),
so that with a full-rank projector on a square matrix the update is Adam's in rotated coordinates.

Memory per (m, n) matrix: 2 r max(m, n) moments + r min(m, n) for the projector, against 2 m n for Adam.
"""

from __future__ import annotations

import torch


def project(G: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, R): GaLore's projector of rank ``r`` for the gradient G (m, n), and the projected gradient R."""
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    if G.shape[0] >= G.shape[1]:
        P = Vh[:r].clone()  # (r, n); a copy: a slice would keep all of Vh alive
        return P, G @ P.T  # (m, r)
    P = U[:, :r].clone()  # (m, r)
    return P, P.T @ G  # (r, n)


def project_back(P: torch.Tensor, N: torch.Tensor, tall: bool) -> torch.Tensor:
    """The (m, n) matrix of a low-rank step N for the projector P of an (m, n) gradient (tall: m >= n)."""
    return N @ P if tall else P @ N


class GaLoreAdam(torch.optim.Optimizer):
    """Adam with GaLore projection for the 2-D parameters (rank ``rank``, new projector every ``update_gap`` steps)."""

    def __init__(self, params, lr: float = 1e-3, rank: int = 8, update_gap: int = 200, scale: float = 1.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, rank=rank, update_gap=update_gap, scale=scale, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                st["step"] = st.get("step", 0) + 1
                t, g = st["step"], p.grad
                low_rank = p.dim() == 2 and group["rank"] < min(p.shape)
                tall = p.dim() == 2 and p.shape[0] >= p.shape[1]
                if low_rank:
                    if "P" not in st or (t - 1) % group["update_gap"] == 0:
                        st["P"], g = project(g, group["rank"])
                    else:
                        g = g @ st["P"].T if tall else st["P"].T @ g
                if "m" not in st:
                    st["m"], st["v"] = torch.zeros_like(g), torch.zeros_like(g)
                st["m"].mul_(b1).add_(g, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                N = (st["m"] / (1 - b1 ** t)) / ((st["v"] / (1 - b2 ** t)).sqrt() + group["eps"])
                if low_rank:
                    p.add_(project_back(st["P"], N, tall), alpha=-group["lr"] * group["scale"])
                else:
                    p.add_(N, alpha=-group["lr"])
        return loss


def state_numbers(m: int, n: int, r: int, method: str) -> int:
    """Numbers an optimizer keeps for one (m, n) weight matrix: "adam" 2mn; "lora" 2r(m + n) (Adam on A and B);
    "galore" 2 r max(m, n) (moments) + r min(m, n) (projector)."""
    if method == "adam":
        return 2 * m * n
    if method == "lora":
        return 2 * r * (m + n)
    if method == "galore":
        return 2 * r * max(m, n) + r * min(m, n)
    raise ValueError(f"method must be adam, lora or galore, got {method!r}")
