"""llmlab.lowrank.svd against torch.linalg.svd / svdvals / matrix_norm and torch.svd_lowrank.

Matrices are float64 with a chosen spectrum (A = Q1 diag(s) Q2ᵀ, Q from a QR of a seeded Gaussian), so that
the tolerances follow from the numbers: float64 round-off after a few products is ~1e-13; power iteration
with a ratio of 0.7 between neighbouring singular values reaches 0.49^200 ~ 1e-62 (round-off only).
"""

import pytest
import torch
import torch.nn as nn

from llmlab.lowrank import svd as L


def with_spectrum(m, n, s, seed):
    g = torch.Generator().manual_seed(seed)
    k = len(s)
    q1 = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64)).Q
    q2 = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64)).Q
    return q1 @ torch.diag(torch.as_tensor(s, dtype=torch.float64)) @ q2.T


def same_up_to_sign(X, Y, atol):  # columns of X equal those of Y up to a sign each
    signs = torch.sign((X * Y).sum(0))
    return torch.allclose(X * signs, Y, atol=atol)


@pytest.mark.parametrize("m,n", [(7, 5), (5, 7), (6, 6)])
def test_svd_via_gram_matches_linalg_svd(m, n):
    A = with_spectrum(m, n, [4.0, 2.0, 1.0, 0.5, 0.25, 0.125][: min(m, n)], seed=m * 10 + n)
    U, S, Vh = L.svd_via_gram(A)
    U0, S0, Vh0 = torch.linalg.svd(A, full_matrices=False)
    assert torch.allclose(S, S0, atol=1e-12)  # well conditioned (kappa <= 32): the Gram matrix loses nothing visible
    assert same_up_to_sign(U, U0, 1e-10) and same_up_to_sign(Vh.T, Vh0.T, 1e-10)
    assert torch.allclose(U * S @ Vh, A, atol=1e-12)


def test_power_svd_top_k():
    A = with_spectrum(9, 6, [5.0, 3.5, 2.45, 1.7, 1.2, 0.8], seed=1)
    U, S, Vh = L.power_svd(A, 3, iters=200, generator=torch.Generator().manual_seed(0))
    U0, S0, Vh0 = torch.linalg.svd(A, full_matrices=False)
    assert torch.allclose(S, S0[:3], atol=1e-10)
    assert same_up_to_sign(U, U0[:, :3], 1e-8) and same_up_to_sign(Vh.T, Vh0[:3].T, 1e-8)


def test_randomized_svd_equals_torch_svd_lowrank_with_the_same_sketch():
    A = with_spectrum(40, 30, 0.8 ** torch.arange(30.0), seed=2)
    torch.manual_seed(5)  # torch.svd_lowrank draws its sketch randn(n, q) from the global generator
    U0, S0, V0 = torch.svd_lowrank(A, q=12, niter=2)
    U, S, Vh = L.randomized_svd(A, 8, oversample=4, n_iter=2, generator=torch.Generator().manual_seed(5))
    assert U.shape == (40, 8) and Vh.shape == (8, 30)
    assert torch.allclose(S, S0[:8], atol=1e-12)
    assert torch.allclose(U * S @ Vh, U0[:, :8] * S0[:8] @ V0[:, :8].T, atol=1e-12)


def test_randomized_svd_recovers_an_exactly_low_rank_matrix():
    A = with_spectrum(50, 20, [3.0, 2.0, 1.0], seed=3)  # rank 3: the sketch spans the range exactly
    U, S, Vh = L.randomized_svd(A, 3, oversample=2, n_iter=0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(U * S @ Vh, A, atol=1e-12)


@pytest.mark.parametrize("r", [0, 1, 3, 5, 6])
def test_eckart_young_tail_is_the_error(r):
    A = with_spectrum(8, 5, [5.0, 3.0, 2.0, 1.0, 0.5], seed=4)
    S = torch.linalg.svdvals(A)
    E = A - L.best_rank(A, r)
    assert torch.allclose(L.tail_error(S, r, "fro"), torch.linalg.matrix_norm(E, "fro"), atol=1e-12)
    assert torch.allclose(L.tail_error(S, r, "2"), torch.linalg.matrix_norm(E, 2), atol=1e-12)


def test_best_rank_batched():
    A = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    got = L.best_rank(A, 2)
    assert torch.allclose(got[1], L.best_rank(A[1], 2), atol=1e-12)
    assert torch.linalg.matrix_rank(got[0]) == 2


def test_energy_rank_thresholds():
    S = torch.ones(4)  # energies 1, 2, 3, 4 of 4: exactly representable fractions
    assert [L.energy_rank(S, f) for f in (0.0, 0.25, 0.26, 0.5, 1.0)] == [0, 1, 2, 2, 4]
    assert L.energy_rank(torch.tensor([3.0, 4.0]), 0.5) == 2  # 9/25 < 0.5 <= 25/25
    assert L.energy_rank(torch.zeros(3), 0.9) == 0


def test_weight_spectra_transposes_conv1d():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), Conv1D(3, 6))  # Conv1D(nf=out, nx=in): weight (in, out)
    W = L.linear_weights(model)
    assert W["0"].shape == (6, 4) and W["1"].shape == (3, 6)
    assert torch.allclose(L.weight_spectra(model)["1"], torch.linalg.svdvals(model[1].weight.double()))


# ---------------------------------------------------------------------------------------------- GaLore
from llmlab.lowrank import galore as G  # noqa: E402
from llmlab.systems.memory import reachable_tensor_bytes  # noqa: E402


@pytest.mark.parametrize("shape", [(9, 5), (4, 10)])
def test_galore_projection_is_the_best_rank_r_gradient(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    P, R = G.project(g, 3)
    assert R.shape == ((shape[0], 3) if shape[0] >= shape[1] else (3, shape[1]))
    assert torch.allclose(G.project_back(P, R, shape[0] >= shape[1]), L.best_rank(g, 3), atol=1e-12)


def reference_galore(W, grads, r, gap, lr):
    """GaLore from torch.optim.Adam (lr=1) run on a stand-in tensor of the projected gradient's shape."""
    W, tall = W.clone(), W.shape[0] >= W.shape[1]
    z = None
    for t, g in enumerate(grads):
        if t % gap == 0:
            P, R = G.project(g, r)
        else:
            R = g @ P.T if tall else P.T @ g
        if z is None:
            z = torch.zeros_like(R, requires_grad=True)
            adam = torch.optim.Adam([z], lr=1.0)
        before = z.detach().clone()
        z.grad = R.clone()
        adam.step()
        W -= lr * G.project_back(P, before - z.detach(), tall)  # Adam's normalised step, projected back
    return W


@pytest.mark.parametrize("shape", [(8, 5), (3, 7)])
def test_galore_adam_matches_adam_in_the_subspace(shape):
    gen = torch.Generator().manual_seed(1)
    W0 = torch.randn(*shape, generator=gen, dtype=torch.float64)
    grads = [torch.randn(*shape, generator=gen, dtype=torch.float64) for _ in range(5)]
    w = torch.nn.Parameter(W0.clone())
    b = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = G.GaLoreAdam([w, b], lr=0.1, rank=2, update_gap=2)
    b_ref = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    adam = torch.optim.Adam([b_ref], lr=0.1)
    for g in grads:
        w.grad, b.grad, b_ref.grad = g.clone(), g[0, :3].clone(), g[0, :3].clone()
        opt.step()
        adam.step()
    # float64, 5 steps of the same operations in another order: round-off ~1e-15
    assert torch.allclose(w.detach(), reference_galore(W0, grads, 2, 2, 0.1), atol=1e-12)
    assert torch.allclose(b.detach(), b_ref.detach(), atol=1e-12)  # vectors: plain Adam


def test_galore_state_is_what_state_numbers_says():
    w = torch.nn.Parameter(torch.randn(12, 5))
    opt = G.GaLoreAdam([w], rank=2)
    w.grad = torch.randn(12, 5)
    opt.step()
    assert reachable_tensor_bytes(opt, exclude=[w]) == 4 * G.state_numbers(12, 5, 2, "galore")  # float32
