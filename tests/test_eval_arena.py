"""Elo and Bradley-Terry: against sklearn's logistic regression (Chatbot Arena's recipe) and known properties."""

import math

import numpy as np
import pytest

from llmlab.eval import arena


def simulate(true, n, seed, tie=0.1):
    rng = np.random.default_rng(seed)
    names = sorted(true)
    out = []
    for _ in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        w = "tie" if rng.random() < tie else ("model_a" if rng.random() < arena.expected_score(true[a], true[b]) else "model_b")
        out.append((a, b, w))
    return out


def arena_sklearn(battles):
    """Chatbot Arena's compute_mle_elo: logistic regression, ties as two half-weight rows, R = 400 coef + 1000."""
    from sklearn.linear_model import LogisticRegression

    names = sorted({m for a, b, _ in battles for m in (a, b)})
    idx = {m: i for i, m in enumerate(names)}
    X, y, w = [], [], []
    for a, b, win in battles:
        x = np.zeros(len(names))
        x[idx[a]], x[idx[b]] = math.log(10), -math.log(10)
        rows = [(1, 0.5), (0, 0.5)] if win == "tie" else [(int(win == "model_a"), 1.0)]
        for label, weight in rows:
            X.append(x), y.append(label), w.append(weight)
    lr = LogisticRegression(fit_intercept=False, C=1e6, tol=1e-12, max_iter=10_000).fit(np.array(X), y, sample_weight=w)
    return {m: 400 * lr.coef_[0][i] + 1000 for m, i in idx.items()}


def test_bradley_terry_equals_chatbot_arena_fit():
    battles = simulate({"base": 900, "sft": 1000, "dpo": 1050, "ppo": 1020}, 300, seed=0)
    ours, ref = arena.bradley_terry(battles), arena_sklearn(battles)
    for m in ref:
        assert ours[m] == pytest.approx(ref[m], abs=1e-4)  # both solve the same convex problem to ~1e-7 in coef


def test_bradley_terry_recovers_ratings_and_is_order_free():
    true = {"a": 1100, "b": 1000, "c": 900}
    battles = simulate(true, 4000, seed=1, tie=0.0)
    fit = arena.bradley_terry(battles)
    shift = np.mean(list(true.values())) - 1000  # ratings are defined up to a shift; ours centre on 1000
    for m in true:
        assert fit[m] == pytest.approx(true[m] - shift, abs=25)  # ~1.3k battles per pair: SE about 10 points
    assert arena.bradley_terry(battles[::-1]) == pytest.approx(fit)


def test_online_elo_update_and_order_dependence():
    r = arena.online_elo([("a", "b", "model_a")], k=32)
    assert r["a"] == pytest.approx(1016.0) and r["b"] == pytest.approx(984.0)  # equal ratings: E = 1/2
    battles = [("a", "b", "model_a")] * 5 + [("a", "b", "model_b")] * 5
    fwd, bwd = arena.online_elo(battles, k=32), arena.online_elo(battles[::-1], k=32)
    assert fwd["a"] < 1000 < bwd["a"]  # the same battles, the opposite verdict: Elo remembers the recent ones
    assert sum(fwd.values()) == pytest.approx(2000.0)  # zero-sum updates


def test_win_rates_and_bootstrap():
    battles = [("a", "b", "model_a"), ("b", "a", "tie"), ("a", "c", "model_b")]
    names, W = arena.win_rates(battles)
    assert names == ["a", "b", "c"] and W[0, 1] == pytest.approx(0.75) and W[1, 0] == pytest.approx(0.25)
    assert W[0, 2] == 0 and np.isnan(W[1, 2])
    ci = arena.bootstrap(simulate({"a": 1100, "b": 1000}, 200, seed=2), rounds=30, seed=0)
    assert ci["a"][0] < ci["a"][1] < ci["a"][2] and ci["a"][1] > ci["b"][1]
