"""ROUGE-1, ROUGE-2 and ROUGE-L (Lin, 2004), equal to Google's ``rouge-score`` package.

ROUGE is recall-oriented: how much of the reference the candidate covers. For each type the scorer
returns precision, recall and F1 (``fmeasure``):

- **ROUGE-N**: ``overlap = sum_g min(count_ref(g), count_cand(g))`` over n-grams ``g``;
  ``P = overlap / max(#cand n-grams, 1)``, ``R = overlap / max(#ref n-grams, 1)``;
- **ROUGE-L**: the length of the longest common subsequence (LCS, a dynamic programme; order matters,
  gaps are allowed) of the two token lists; ``P = LCS / len(cand)``, ``R = LCS / len(ref)``, 0 if either is empty;
- ``F = 2PR / (P + R)`` (0 when ``P + R = 0``);
- **several references**: each type takes the scores of the reference with the highest F (``score_multi``).

Tokenisation follows rouge-score: lowercase, every run of characters outside ``[a-z0-9]`` is a separator.
That drops every Chinese character, so for Chinese the convention is **character-level** ROUGE: each
non-space character a token (:func:`char_tokens`; rouge-score takes it as a custom ``tokenizer``).
"""

from __future__ import annotations

import re
from collections import Counter

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def tokens(text: str) -> list[str]:
    """rouge-score's default tokenisation (no stemming): lowercase, split on anything outside [a-z0-9]."""
    return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]


def char_tokens(text: str) -> list[str]:
    """Character-level tokens for Chinese: every non-whitespace character."""
    return [c for c in text if not c.isspace()]


def fmeasure(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _ngrams(toks: list[str], n: int) -> Counter:
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def rouge_n(ref: list[str], cand: list[str], n: int) -> tuple[float, float, float]:
    """(precision, recall, fmeasure) of ROUGE-n on token lists."""
    r, c = _ngrams(ref, n), _ngrams(cand, n)
    overlap = sum(min(k, c[g]) for g, k in r.items())
    p, rec = overlap / max(sum(c.values()), 1), overlap / max(sum(r.values()), 1)
    return p, rec, fmeasure(p, rec)


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(ref: list[str], cand: list[str]) -> tuple[float, float, float]:
    """(precision, recall, fmeasure) of sentence-level ROUGE-L on token lists."""
    if not ref or not cand:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(ref, cand)
    p, r = lcs / len(cand), lcs / len(ref)
    return p, r, fmeasure(p, r)


def rouge(references: str | list[str], candidate: str, types=("rouge1", "rouge2", "rougeL"),
          tokenize=tokens) -> dict:
    """``{type: (precision, recall, fmeasure)}`` for one candidate; several references: the best F per type."""
    refs = [references] if isinstance(references, str) else list(references)
    cand = tokenize(candidate)
    out = {}
    for t in types:
        scores = [rouge_l(tokenize(r), cand) if t == "rougeL" else rouge_n(tokenize(r), cand, int(t[5:]))
                  for r in refs]
        out[t] = max(scores, key=lambda s: s[2])  # first maximum on ties, as numpy.argmax
    return out


__all__ = ["tokens", "char_tokens", "fmeasure", "rouge_n", "lcs_length", "rouge_l", "rouge"]
