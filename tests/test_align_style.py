"""llmlab.align.style: the Shakespeare-style classifier (the novel-style assistant's meter, reused by Week 7).

The held-out threshold (0.9) sits well under the measured 0.96-0.97 on the validation and test chunks (seed 0),
so a change of seed or of the hashing does not flip the test, while a classifier that learned nothing (0.5) or
only length (the negatives have the positives' lengths) fails it.
"""

import pytest
import torch

from llmlab.align import style


@pytest.fixture(scope="module")
def clf():
    torch.set_num_threads(1)
    return style.train_style_classifier(n=1000, seed=0)


def test_features_are_stable_and_ignore_layout():
    a, b = style.featurize(["Thou art\nmy  friend"]), style.featurize(["thou art my friend"])
    assert torch.equal(a[0], b[0]) and a[1].tolist() == [0]  # CRC-32 buckets: the same in every process


def test_held_out_accuracy(clf):
    texts, labels = style.style_data("test", n=300, seed=1)
    assert style.accuracy(clf, texts, labels) > 0.9
    assert clf.history["loss"][-1] < 0.5 * clf.history["loss"][0]


def test_score_ranks_register(clf):
    p = clf.score(["Thou art a villain, and I hate thee.", "Okay guys, the deadline is basically tomorrow."])
    assert p[0] > 0.8 > 0.2 > p[1]
    assert isinstance(clf.score("hath"), float) and clf.score([]) == []


def test_own_style_from_a_few_paragraphs():
    mine = ["The rain came down on the harbour. Gulls wheeled over the boats. Old Tom mended his nets in silence.",
            "Night fell on the harbour. The lamps were lit one by one. Tom counted the boats that had come home."]
    c = style.train_style_classifier(positive=mine, n=200, seed=0)
    assert c.label == "target style"
    assert c.score("The gulls wheeled over the harbour as Tom mended his nets.") > 0.5
    with pytest.raises(ValueError):
        style.train_style_classifier(positive=["a"], negative=[], n=10)
