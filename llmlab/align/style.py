"""A style classifier: the probability that a text is in "Shakespeare style" (or in any style a learner gives).

The novel-style assistant of Week 5 is aligned toward a writer's style, and Week 7 measures whether a model keeps
a narrative style; both need a meter that reads a text and says how much it sounds like the target. This one is
a logistic regression on hashed n-gram features, small enough to train in about a second on a CPU and to read
in full:

- features (:func:`featurize`): the lower-cased words, word bigrams and character 3-grams of a text, each hashed
  (CRC-32, stable across processes, unlike Python's ``hash``) into one of ``n_features`` buckets; layout is
  ignored (whitespace is normalised), so line breaks and length alone do not give the class away;
- model (:class:`StyleClassifier`): one weight per bucket, averaged over a text's features
  (``nn.EmbeddingBag(mode="mean")``) plus a bias, then a sigmoid;
- default data (:func:`style_data`): positives are 1-4 line chunks of Tiny Shakespeare speeches; negatives are
  modern English of the same lengths, half from MMLU questions (a modern, expository register), half the same
  Shakespeare chunks put into a modern register (archaic words replaced, modern words inserted: the
  ``modern`` corruption of :mod:`llmlab.align.preferences`). Splits follow the tasks' splits (the Shakespeare
  validation/test speeches are text the course models never trained on; MMLU test/val/dev for train/validation/
  test), so :func:`accuracy` on ``style_data("test")`` is a held-out figure.

Use::

    from llmlab.align import style
    style.score(["What light through yonder window breaks?", "The meeting is moved to Monday."])  # ~[0.9, 0.1]
    clf = style.train_style_classifier(positive=my_paragraphs)   # a learner's own style vs modern English
    clf.score(texts)  # list[float], P(target style)

:func:`score` trains the default classifier once per process (seed 0, about a second) and caches it. It is a
*style* meter, not a judge of quality: it likes archaic vocabulary ("thou", "hath", "'tis") whatever the sense, so
a policy optimised against it alone can learn to scatter such words (reward hacking; Week 5's notebook 7 shows
it); pair it with a rule (the Shakespeare verifier of :mod:`llmlab.tasks`) when it is a reward.
"""

from __future__ import annotations

import functools
import random
import re
import zlib

import torch
from torch import nn

from .preferences import modernise

N_FEATURES = 2 ** 18
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|[^\sa-z]")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def features(text: str) -> list[str]:
    """The n-grams of one text: words (``w:``), word bigrams (``b:``), character 3-grams (``c:``)."""
    words = _tokens(text)
    flat = " " + " ".join(text.lower().split()) + " "
    return ([f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in zip(words, words[1:])]
            + [f"c:{flat[i:i + 3]}" for i in range(len(flat) - 2)])


def featurize(texts: list[str], n_features: int = N_FEATURES) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, offsets) for ``nn.EmbeddingBag``: the hashed features of every text, concatenated."""
    ids, offsets = [], []
    for t in texts:
        offsets.append(len(ids))
        ids += [zlib.crc32(f.encode("utf-8")) % n_features for f in features(t)] or [0]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


class StyleClassifier(nn.Module):
    """P(style | text) = sigmoid(mean of the text's feature weights + bias)."""

    def __init__(self, n_features: int = N_FEATURES, label: str = "Shakespeare style"):
        super().__init__()
        self.n_features, self.label = n_features, label
        self.weight = nn.EmbeddingBag(n_features, 1, mode="mean")
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.zeros(1))
        self.history: dict = {}

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Logits, one per text."""
        return self.weight(ids, offsets).squeeze(-1) + self.bias

    def logits(self, texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return self(*featurize(list(texts), self.n_features))

    def score(self, texts: list[str] | str) -> list[float] | float:
        """P(style) of each text (a float for one string)."""
        if isinstance(texts, str):
            return self.score([texts])[0]
        return torch.sigmoid(self.logits(texts)).tolist() if texts else []

    def top_features(self, k: int = 10) -> dict[str, list[str]]:
        """Not the features (they are hashed) but the bucket ids with the largest/smallest weights."""
        w = self.weight.weight.detach().squeeze(-1)
        return {"style": w.topk(k).indices.tolist(), "not_style": (-w).topk(k).indices.tolist()}


# ---------------------------------------------------------------------------------------------
# data


_MMLU_SPLIT = {"train": "test", "validation": "val", "test": "dev"}


def shakespeare_chunks(split: str = "train", seed: int = 0) -> list[str]:
    """1-4 consecutive verse lines of every Tiny Shakespeare speech of ``split`` (speaker names left out)."""
    from ..tasks.poetry import shakespeare_speeches

    rng = random.Random(f"style/shakespeare/{split}/{seed}")
    return [c for s, _, lines in shakespeare_speeches() if s == split for c in _runs(lines, rng, 4, "\n")]


def modern_chunks(lengths: list[int], split: str = "train", seed: int = 0) -> list[str]:
    """Modern English, one text per entry of ``lengths`` (in words): windows of MMLU questions and choices."""
    from ..data import load_mmlu

    rng = random.Random(f"style/modern/{split}/{seed}")
    words = []
    for q in load_mmlu(_MMLU_SPLIT[split]):
        words += (q["question"] + " " + " ".join(q["choices"])).split()
    out = []
    for n in lengths:
        i = rng.randrange(max(1, len(words) - n))
        out.append(" ".join(words[i:i + n]))
    return out


def style_data(split: str = "train", n: int | None = 2000, seed: int = 0) -> tuple[list[str], list[int]]:
    """(texts, labels) of the default task: ``n`` Shakespeare chunks (label 1) and ``n`` modern texts (label 0,
    half MMLU, half modernised Shakespeare), in a seeded order. ``n=None``: every chunk of the split."""
    rng = random.Random(f"style/{split}/{seed}")
    pos = shakespeare_chunks(split, seed)
    rng.shuffle(pos)
    pos = pos[:n] if n is not None else pos
    half = len(pos) // 2
    lengths = [len(t.split()) for t in pos]
    neg = modern_chunks(lengths[:half], split, seed)
    neg += [modernise(t, rng) for t in pos[half:]]
    rows = [(t, 1) for t in pos] + [(t, 0) for t in neg]
    rng.shuffle(rows)
    return [t for t, _ in rows], [y for _, y in rows]


def _paragraph_chunks(texts: list[str], rng: random.Random) -> list[str]:
    """A learner's paragraphs cut into 1-3 sentence pieces (more, shorter training texts)."""
    return [c for t in texts for c in _runs([s for s in re.split(r"(?<=[.!?;:])\s+|\n+", t) if s.strip()], rng, 3, " ")]


def _runs(items: list[str], rng: random.Random, longest: int, sep: str) -> list[str]:
    """``items`` cut into consecutive runs of 1..``longest`` (seeded lengths), each joined by ``sep``."""
    out, i = [], 0
    while i < len(items):
        k = rng.randint(1, longest)
        out.append(sep.join(items[i:i + k]))
        i += k
    return out


# ---------------------------------------------------------------------------------------------
# training


def train_style_classifier(positive: list[str] | None = None, negative: list[str] | None = None, n: int = 2000,
                           steps: int = 150, lr: float = 0.5, weight_decay: float = 1e-6, seed: int = 0,
                           n_features: int = N_FEATURES, label: str | None = None) -> StyleClassifier:
    """Train a :class:`StyleClassifier` (full-batch Adam on the logistic loss; about a second for n=2000).

    positive: texts in the target style (default: Tiny Shakespeare training chunks, see :func:`style_data`);
    a learner's few paragraphs are cut into sentence pieces. negative: texts not in it (default: modern English,
    as in :func:`style_data`). The returned model's ``history`` holds the loss per step and the training accuracy.
    """
    torch.manual_seed(seed)
    rng = random.Random(f"style/train/{seed}")
    if positive is None and negative is None:
        texts, labels = style_data("train", n, seed)
    else:
        pos = style_data("train", n, seed)[0] if positive is None else list(positive)
        if positive is not None and len(pos) < 50:
            pos = _paragraph_chunks(pos, rng)
        if negative is None:
            lengths = [len(t.split()) for t in pos]
            neg = modern_chunks(lengths, "train", seed)
        else:
            neg = list(negative)
        rows = [(t, 1) for t in pos] + [(t, 0) for t in neg]
        rng.shuffle(rows)
        texts, labels = [t for t, _ in rows], [y for _, y in rows]
    if len(set(labels)) < 2:
        raise ValueError("need texts of both classes (positive and negative)")
    clf = StyleClassifier(n_features, label or ("Shakespeare style" if positive is None else "target style"))
    ids, offsets = featurize(texts, n_features)
    y = torch.tensor(labels, dtype=torch.float32)
    lengths = torch.diff(torch.cat([offsets, torch.tensor([len(ids)])]))
    rows = torch.repeat_interleave(torch.arange(len(texts)), lengths)  # the text of every feature occurrence
    cw = torch.where(y == 1, (y == 0).sum() / (y == 1).sum(), 1.0) / len(texts)  # balanced classes, mean loss
    w, b = clf.weight.weight, clf.bias
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(steps):
        with torch.no_grad():  # the logistic loss's gradient by hand: d loss / d z_i = cw_i (sigmoid(z_i) - y_i);
            z = clf(ids, offsets)  # z_i = mean of the text's weights + b, so each occurrence gets 1/len_i of it
            g = cw * (torch.sigmoid(z) - y)
            losses.append((cw * nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")).sum().item())
            w.grad = torch.zeros_like(w).index_add_(0, ids, (g / lengths)[rows].unsqueeze(-1))  # (autograd
            b.grad = g.sum().reshape(1)  # through EmbeddingBag gives the same, ~20x slower on a CPU)
        opt.step()
    clf.history = {"loss": losses, "train_accuracy": accuracy(clf, texts, labels), "n_train": len(texts)}
    return clf.eval()


def accuracy(clf: StyleClassifier, texts: list[str], labels: list[int], threshold: float = 0.5) -> float:
    """The share of texts whose P(style) is on the right side of ``threshold``."""
    p = clf.score(list(texts))
    return sum((pi >= threshold) == bool(y) for pi, y in zip(p, labels)) / max(1, len(labels))


@functools.lru_cache(maxsize=1)
def default_classifier() -> StyleClassifier:
    """The Shakespeare-style classifier with the default settings (trained once per process, seed 0)."""
    return train_style_classifier()


def score(texts: list[str] | str) -> list[float] | float:
    """P("Shakespeare style") of each text under :func:`default_classifier`."""
    return default_classifier().score(texts)


__all__ = ["N_FEATURES", "StyleClassifier", "accuracy", "default_classifier", "featurize", "features",
           "modern_chunks", "modernise", "score", "shakespeare_chunks", "style_data", "train_style_classifier"]
