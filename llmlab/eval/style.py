"""A small narrative-style classifier: is a text Shakespearean (Early Modern English verse) or modern prose?

Week 7 measures whether a writing prompt's *style* module is followed. Rules (pronoun shares, sentence length)
measure some of it; a classifier measures the rest: TF-IDF over character 1-4-grams (within word boundaries, so
"thou", "'st", "-eth" are features) and a logistic regression, trained on lines of Tiny Shakespeare (label 1)
against the modern English of the MMLU questions (label 0), both from ``../shared/data``. Held-out accuracy is
reported by :func:`train`; ``score(texts)`` is P(Shakespearean) per text.

This is a stand-in for the Week 5 style reward model (``llmlab.align.style``) where that is not available; the
measurement in the notebook takes any ``score(texts) -> list[float]``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..data import load_mmlu, load_text

__all__ = ["StyleClassifier", "corpus", "train"]


def _shakespeare_chunks(n: int, rng: random.Random) -> list[str]:
    lines = [ln.strip() for ln in load_text("tinyshakespeare").splitlines()]
    speech = [ln for ln in lines if ln and not ln.endswith(":")]  # drop the speaker headings
    out = []
    for _ in range(n):  # 1-3 consecutive lines, the length of a model's sentence or two
        i, k = rng.randrange(len(speech) - 3), rng.randint(1, 3)
        out.append(" ".join(speech[i: i + k]))
    return out


def _modern_chunks(n: int, rng: random.Random) -> list[str]:
    texts = [" ".join(q["question"].split()[:40]) for split in ("dev", "val") for q in load_mmlu(split)
             if q["question"].strip() and q["question"].isascii()]
    rng.shuffle(texts)
    return texts[:n]


def corpus(n_per_class: int = 2000, seed: int = 0) -> tuple[list[str], list[int]]:
    """``(texts, labels)``: Shakespeare chunks (1) and modern MMLU questions (0), shuffled."""
    rng = random.Random(seed)
    pos, neg = _shakespeare_chunks(n_per_class, rng), _modern_chunks(n_per_class, rng)
    pairs = [(t, 1) for t in pos] + [(t, 0) for t in neg]
    rng.shuffle(pairs)
    return [t for t, _ in pairs], [y for _, y in pairs]


@dataclass
class StyleClassifier:
    pipeline: object
    heldout_accuracy: float
    n_train: int

    def score(self, texts: list[str]) -> list[float]:
        """P(Shakespearean) for each text (an empty text scores 0.5: no evidence either way)."""
        texts = list(texts)
        probs = self.pipeline.predict_proba([t or " " for t in texts])[:, 1]
        return [0.5 if not t.strip() else float(p) for t, p in zip(texts, probs)]


def train(n_per_class: int = 2000, seed: int = 0) -> StyleClassifier:
    """Fit the classifier on 80 % of :func:`corpus`; its accuracy on the other 20 % is ``heldout_accuracy``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = corpus(n_per_class, seed)
    cut = int(0.8 * len(texts))
    pipe = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True),
                         LogisticRegression(max_iter=1000, C=4.0))
    pipe.fit(texts[:cut], labels[:cut])
    acc = float((pipe.predict(texts[cut:]) == labels[cut:]).mean()) if cut < len(texts) else float("nan")
    return StyleClassifier(pipe, acc, cut)
