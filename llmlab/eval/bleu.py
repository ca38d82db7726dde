"""Corpus BLEU (Papineni et al., 2002) from its sufficient statistics, equal to sacrebleu's defaults.

BLEU compares a system's *corpus* of hypotheses with one or more references per segment:

- **clipped n-gram precision** ``p_n`` (n = 1..4): a hypothesis n-gram counts as correct at most as many
  times as it occurs in the reference that has it most often (``min(count_hyp, max_r count_r)``); the counts
  are summed over the whole corpus before dividing (corpus BLEU is *not* the mean of sentence BLEUs);
- **brevity penalty** ``BP = exp(1 - r / c)`` when the total hypothesis length ``c`` is below the total
  "effective" reference length ``r`` (per segment the reference length closest to the hypothesis length,
  the shorter one on a tie), else 1; ``BP = 0`` for an empty corpus of hypotheses;
- ``BLEU = 100 * BP * exp(mean_n log p_n)``, with sacrebleu's default **exp smoothing** (NIST's mteval-v13a):
  the k-th order with zero matches gets precision ``1 / (2^k * total_n)`` instead of 0; no match at all
  gives 0; an order with no hypothesis n-gram at all (every hypothesis shorter than n) ends the product
  there, its precision stays 0 and BLEU is 0 (sacrebleu's ``effective_order=False``).

Tokenisation is *not* part of the metric's definition, but it decides the number: sacrebleu tokenises with
``13a`` (mteval's rules: punctuation split off) for English and ``zh`` (every CJK character a token) for
Chinese. :func:`tokenizer` returns sacrebleu's own tokenizer objects so that our statistics see the same
tokens; everything after tokenisation is written here.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

MAX_ORDER = 4


def tokenizer(name: str = "13a"):
    """sacrebleu's tokenizer ``name`` ("13a", "zh", "none", "char", "intl") as a ``str -> str`` callable."""
    from sacrebleu.metrics.bleu import BLEU

    return BLEU(tokenize=name).tokenizer


def ngrams(tokens: list[str], n: int) -> Counter:
    """Counts of the n-grams (tuples) of a token list."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def closest_ref_len(hyp_len: int, ref_lens: list[int]) -> int:
    """The reference length closest to ``hyp_len``; the shorter one on a tie."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def segment_stats(hyp: list[str], refs: list[list[str]], max_order: int = MAX_ORDER) -> tuple:
    """``(hyp_len, ref_len, correct[1..N], total[1..N])`` for one tokenised segment."""
    correct, total = [0] * max_order, [0] * max_order
    for n in range(1, max_order + 1):
        h = ngrams(hyp, n)
        best = Counter()
        for r in refs:
            best |= ngrams(r, n)  # | keeps the max count of each n-gram
        correct[n - 1] = sum(min(c, best[g]) for g, c in h.items())
        total[n - 1] = sum(h.values())
    return len(hyp), closest_ref_len(len(hyp), [len(r) for r in refs]), correct, total


@dataclass
class BLEUResult:
    score: float  # 0..100
    precisions: list[float]  # percent, after smoothing
    bp: float
    sys_len: int
    ref_len: int
    correct: list[int]
    total: list[int]


def bleu_from_stats(correct, total, sys_len: int, ref_len: int, smooth: str = "exp") -> BLEUResult:
    """BLEU from summed statistics. ``smooth``: "exp" (sacrebleu's default) or "none"."""
    max_order = len(correct)
    bp = 1.0 if sys_len >= ref_len else (math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0)
    precisions = [0.0] * max_order
    if not any(correct):
        return BLEUResult(0.0, precisions, bp, sys_len, ref_len, list(correct), list(total))
    k = 0  # orders with zero matches so far (exp smoothing)
    for n in range(max_order):
        if total[n] == 0:
            break
        if correct[n] == 0:
            if smooth == "exp":
                k += 1
                precisions[n] = 100.0 / (2 ** k * total[n])
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    if min(precisions) <= 0.0:
        return BLEUResult(0.0, precisions, bp, sys_len, ref_len, list(correct), list(total))
    score = bp * math.exp(sum(math.log(p) for p in precisions) / max_order)
    return BLEUResult(score, precisions, bp, sys_len, ref_len, list(correct), list(total))


def corpus_bleu(hypotheses: list[str], references: list[list[str]], tokenize: str = "13a",
                smooth: str = "exp", max_order: int = MAX_ORDER) -> BLEUResult:
    """Corpus BLEU of ``hypotheses`` against ``references[i]`` (a list of one or more references for segment i).

    Note the layout: one list of references *per segment* (sacrebleu's ``corpus_score`` takes the transpose,
    one list *per reference set*).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    tok = tokenizer(tokenize)
    sys_len = ref_len = 0
    correct, total = [0] * max_order, [0] * max_order
    for hyp, refs in zip(hypotheses, references):
        h, r, c, t = segment_stats(tok(hyp.rstrip()).split(), [tok(x.rstrip()).split() for x in refs], max_order)
        sys_len, ref_len = sys_len + h, ref_len + r
        correct = [a + b for a, b in zip(correct, c)]
        total = [a + b for a, b in zip(total, t)]
    return bleu_from_stats(correct, total, sys_len, ref_len, smooth)


__all__ = ["tokenizer", "ngrams", "closest_ref_len", "segment_stats", "bleu_from_stats", "corpus_bleu", "BLEUResult"]
