"""Arena ratings from pairwise battles: online Elo and the Bradley-Terry maximum-likelihood fit.

A battle is ``(model_a, model_b, winner)`` with ``winner`` in {"model_a", "model_b", "tie"}.

- **Online Elo** (chess; the first Chatbot Arena leaderboard): ratings start at ``init``; after each battle
  ``E_a = 1 / (1 + base^((R_b - R_a) / scale))``, ``R_a += K (S_a - E_a)``, ``R_b += K (E_a - S_a)`` with
  ``S_a`` = 1, 0.5 or 0. The result depends on the *order* of the battles and on ``K``.
- **Bradley-Terry** (Chatbot Arena since Dec 2023): ``P(a beats b) = 1 / (1 + base^((R_b - R_a) / scale))`` with
  the ratings that maximise the likelihood of all battles at once: order-free, and the same model as Elo's
  expectation. Chatbot Arena fits it as a logistic regression without intercept (a row per battle, ``+log(base)``
  in model a's column, ``-log(base)`` in model b's, label "a won"; a tie counts as half a win each: the row twice,
  once each way, with weight 1/2 (their code duplicates the tie rows)), then ``R = scale * coef + init``.
  The ratings are only defined up to a shift; we fix it by a tiny L2 penalty (as sklearn's ``C=1e6`` does in their
  notebook), which centres the coefficients on 0, i.e. the mean rating on ``init``.
- **Bootstrap**: refit on battles resampled with replacement; the 2.5 / 97.5 percentiles give a 95 % interval.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

WINNERS = ("model_a", "model_b", "tie")


def _score_a(winner: str) -> float:
    if winner not in WINNERS:
        raise ValueError(f"winner must be one of {WINNERS}, got {winner!r}")
    return {"model_a": 1.0, "model_b": 0.0, "tie": 0.5}[winner]


def expected_score(r_a: float, r_b: float, scale: float = 400.0, base: float = 10.0) -> float:
    """Elo's expected score of a against b."""
    return 1.0 / (1.0 + base ** ((r_b - r_a) / scale))


def online_elo(battles, k: float = 4.0, scale: float = 400.0, base: float = 10.0, init: float = 1000.0) -> dict:
    """Ratings after the battles, processed in the given order."""
    r = defaultdict(lambda: init)
    for a, b, w in battles:
        ea = expected_score(r[a], r[b], scale, base)
        sa = _score_a(w)
        r[a] += k * (sa - ea)
        r[b] -= k * (sa - ea)
    return dict(r)


def bradley_terry(battles, scale: float = 400.0, base: float = 10.0, init: float = 1000.0, l2: float = 1e-6,
                  iters: int = 100, tol: float = 1e-10) -> dict:
    """Maximum-likelihood Bradley-Terry ratings (Newton's method on the logistic log-likelihood)."""
    battles = list(battles)
    models = sorted({m for a, b, _ in battles for m in (a, b)})
    idx = {m: i for i, m in enumerate(models)}
    ia = np.array([idx[a] for a, _, _ in battles])
    ib = np.array([idx[b] for _, b, _ in battles])
    s = np.array([_score_a(w) for _, _, w in battles])  # a tie: y = 1/2 (= two half-weight rows, one each way)
    n, lb = len(models), math.log(base)
    theta = np.zeros(n)  # coefficients; rating = scale * theta + init
    for _ in range(iters):
        z = lb * (theta[ia] - theta[ib])
        p = 1.0 / (1.0 + np.exp(-z))
        g = np.zeros(n)  # gradient of the negative log-likelihood + l2/2 |theta|^2
        np.add.at(g, ia, -lb * (s - p))
        np.add.at(g, ib, lb * (s - p))
        g += l2 * theta
        w = lb * lb * p * (1 - p)
        H = l2 * np.eye(n)
        np.add.at(H, (ia, ia), w)
        np.add.at(H, (ib, ib), w)
        np.add.at(H, (ia, ib), -w)
        np.add.at(H, (ib, ia), -w)
        step = np.linalg.solve(H, g)
        theta -= step
        if np.abs(step).max() < tol:
            break
    return {m: float(scale * theta[i] + init) for m, i in idx.items()}


def bootstrap(battles, fit=bradley_terry, rounds: int = 100, seed: int = 0, **kw) -> dict:
    """``{model: (low, median, high)}``: the 2.5 / 50 / 97.5 percentiles of ``fit`` over resampled battles."""
    battles = list(battles)
    rng = np.random.default_rng(seed)
    samples = defaultdict(list)
    for _ in range(rounds):
        pick = rng.integers(0, len(battles), len(battles))
        for m, r in fit([battles[i] for i in pick], **kw).items():
            samples[m].append(r)
    return {m: tuple(float(np.percentile(v, q)) for q in (2.5, 50, 97.5)) for m, v in samples.items()}


def win_rates(battles) -> tuple[list[str], np.ndarray]:
    """``(models, W)`` with ``W[i, j]`` the fraction of i-vs-j battles that i won (ties count 1/2; NaN if none)."""
    battles = list(battles)
    models = sorted({m for a, b, _ in battles for m in (a, b)})
    idx = {m: i for i, m in enumerate(models)}
    won, played = np.zeros((len(models),) * 2), np.zeros((len(models),) * 2)
    for a, b, w in battles:
        sa = _score_a(w)
        i, j = idx[a], idx[b]
        won[i, j] += sa
        won[j, i] += 1 - sa
        played[i, j] += 1
        played[j, i] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return models, np.where(played > 0, won / np.maximum(played, 1), np.nan)


def predicted_win_rates(ratings: dict, scale: float = 400.0, base: float = 10.0) -> tuple[list[str], np.ndarray]:
    """``P(i beats j)`` under the ratings (Bradley-Terry / Elo expectation)."""
    models = sorted(ratings)
    return models, np.array([[expected_score(ratings[a], ratings[b], scale, base) for b in models] for a in models])


__all__ = ["WINNERS", "expected_score", "online_elo", "bradley_terry", "bootstrap", "win_rates", "predicted_win_rates"]
