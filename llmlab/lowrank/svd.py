"""The singular value decomposition and the best low-rank approximation (bonus notebook 1, in library form).

Every function takes a real matrix ``A`` of shape (m, n) and returns the thin SVD in ``torch.linalg.svd``'s
convention, ``A = U @ diag(S) @ Vh`` with U (m, k), S (k,) descending, Vh (k, n):

- :func:`svd_via_gram`       -- from the eigen-decomposition of the Gram matrix AᵀA (squares the condition
  number: fine for the large singular values, useless below about sqrt(eps) * S[0]).
- :func:`power_svd`          -- the top k triplets by power iteration on AᵀA, one at a time, with deflation.
- :func:`randomized_svd`     -- Halko, Martinsson & Tropp (2011), Algorithm 4.4 + 5.1: a Gaussian sketch with
  oversampling, ``n_iter`` power iterations re-orthonormalised by QR, then an exact SVD of the small matrix.
  With the same random matrix it equals ``torch.svd_lowrank`` (which returns V instead of Vh) for m >= n.
- :func:`best_rank`, :func:`tail_error`, :func:`energy_rank` -- Eckart-Young-Mirsky: the truncated SVD is the
  best rank-r approximation in every unitarily invariant norm; its error is the tail of the spectrum
  (Frobenius: sqrt(sum S[r:]²), spectral: S[r]).
- :func:`weight_spectra`     -- the singular values of every weight matrix of a model (nn.Linear, GPT-2's Conv1D).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def svd_via_gram(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of A (m, n) of full rank from ``eigh(AᵀA)``: V = eigenvectors, S = sqrt(eigenvalues), U = A V / S."""
    k = min(A.shape[-2:])
    evals, evecs = torch.linalg.eigh(A.mT @ A)  # ascending
    evals, V = evals.flip(-1)[..., :k], evecs.flip(-1)[..., :k]  # the k largest, descending
    S = evals.clamp_min(0).sqrt()
    U = (A @ V) / S.unsqueeze(-2)
    return U, S, V.mT


def power_svd(A: torch.Tensor, k: int, iters: int = 100, generator: torch.Generator | None = None):
    """The top ``k`` singular triplets of A (m, n) by power iteration with deflation.

    For each i: v = randn(n) (from ``generator``), ``iters`` times v <- normalize(AᵀA v); then
    S[i] = ||A v||, U[:, i] = A v / S[i], Vh[i] = v, and A <- A - S[i] U[:, i] Vh[i] before the next one.
    Converges like (S[i+1] / S[i])^(2 iters): separated singular values need few iterations.
    """
    A = A.clone()
    m, n = A.shape
    U, S, Vh = A.new_zeros(m, k), A.new_zeros(k), A.new_zeros(k, n)
    for i in range(k):
        v = torch.randn(n, generator=generator, dtype=A.dtype, device=A.device)
        v = v / v.norm()
        for _ in range(iters):
            v = A.mT @ (A @ v)
            v = v / v.norm()
        Av = A @ v
        S[i] = Av.norm()
        U[:, i], Vh[i] = Av / S[i], v
        A -= S[i] * torch.outer(U[:, i], Vh[i])
    return U, S, Vh


def randomized_svd(A: torch.Tensor, rank: int, oversample: int = 10, n_iter: int = 2,
                   generator: torch.Generator | None = None):
    """Rank-``rank`` SVD of A (m, n) by Halko et al.'s randomized range finder.

    Ω = randn(n, rank + oversample) (from ``generator``); Q = qr(A Ω).Q; ``n_iter`` times
    Q = qr(Aᵀ Q).Q, Q = qr(A Q).Q; then B = Qᵀ A (small), B = Ub S Vh, U = Q Ub; keep the first ``rank``.
    """
    q = min(rank + oversample, *A.shape)
    omega = torch.randn(A.shape[-1], q, generator=generator, dtype=A.dtype, device=A.device)
    Q = torch.linalg.qr(A @ omega).Q
    for _ in range(n_iter):
        Q = torch.linalg.qr(A.mT @ Q).Q
        Q = torch.linalg.qr(A @ Q).Q
    Ub, S, Vh = torch.linalg.svd(Q.mT @ A, full_matrices=False)
    return (Q @ Ub)[:, :rank], S[:rank], Vh[:rank]


def best_rank(A: torch.Tensor, r: int) -> torch.Tensor:
    """The best rank-``r`` approximation of A (..., m, n): U[:, :r] diag(S[:r]) Vh[:r] (Eckart-Young)."""
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    return (U[..., :r] * S[..., None, :r]) @ Vh[..., :r, :]


def tail_error(S: torch.Tensor, r: int, norm: str = "fro") -> torch.Tensor:
    """||A - best_rank(A, r)|| from the singular values S (descending): "fro" sqrt(sum S[r:]²), "2" S[r] (0 past the end)."""
    tail = S[..., r:]
    if norm == "fro":
        return tail.square().sum(-1).sqrt()
    if norm == "2":
        return tail[..., 0] if tail.shape[-1] else S.new_zeros(S.shape[:-1])
    raise ValueError(f"norm must be 'fro' or '2', got {norm!r}")


def energy_rank(S: torch.Tensor, frac: float) -> int:
    """The smallest r whose first r singular values hold at least ``frac`` of sum S² (the squared Frobenius norm)."""
    if not 0 <= frac <= 1:
        raise ValueError(f"frac must be in [0, 1], got {frac}")
    cum = S.double().square().cumsum(-1)  # (k,) energy of the first 1, 2, ..., k singular values
    if frac == 0 or cum[-1] == 0:
        return 0
    # the first r with cum[r - 1] >= frac * total (exactly on the threshold counts); round-off: never past k
    return min(int((cum < frac * cum[-1]).sum().item()) + 1, S.shape[-1])


def linear_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """{name: weight (out, in)} of every nn.Linear and transformers Conv1D (stored (in, out): transposed here)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            out[name] = m.weight.detach()
        elif type(m).__name__ == "Conv1D" and getattr(m, "weight", None) is not None and m.weight.dim() == 2:
            out[name] = m.weight.detach().T
    return out


def weight_spectra(model: nn.Module) -> dict[str, torch.Tensor]:
    """{name: singular values (descending, float64)} of every weight matrix that :func:`linear_weights` finds."""
    return {n: torch.linalg.svdvals(w.double()) for n, w in linear_weights(model).items()}
