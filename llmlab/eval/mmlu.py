"""MMLU (Hendrycks et al., 2021): the 5-shot prompt of the original code, scored by log-likelihood.

The data: 57 subjects, four choices per question; ``dev`` holds 5 examples per subject (the few-shot
examples), ``test`` the 14,042 questions that are scored. :func:`llmlab.data.load_mmlu` reads the CSV files
from ``../shared/data/mmlu`` (or a cache, or downloads them on a machine with internet).

The prompt is the original harness's (``hendrycks/test``, ``evaluate.py``)::

    The following are multiple choice questions (with answers) about high school physics.

    <question>
    A. <choice>
    B. <choice>
    C. <choice>
    D. <choice>
    Answer: B

    ... (k = 5 dev examples, in file order) ...
    <test question>
    A. ...
    Answer:

and the model's answer is the letter whose continuation (``" A"`` .. ``" D"``) is most likely after the
prompt (``mode="letter"``). ``mode="text"`` scores the full answer text instead (``" " + choice``), by its
summed log-probability or, with ``normalize=True``, per byte of the answer (lm-eval's ``acc_norm`` idea).
Contexts longer than the model's window are cut **on the left** (the last ``max_length`` tokens are kept),
as lm-eval does, so a 5-shot prompt still fits a small model: it loses the first examples, not the question.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
import torch.nn.functional as F

from .perplexity import logits_of

LETTERS = "ABCD"


def format_subject(subject: str) -> str:
    """``high_school_physics`` -> ``high school physics``."""
    return " ".join(subject.split("_"))


def format_example(row: dict, include_answer: bool = True) -> str:
    """One question block; with the answer (`` B`` and a blank line) for a few-shot example."""
    s = row["question"] + "".join(f"\n{LETTERS[j]}. {c}" for j, c in enumerate(row["choices"])) + "\nAnswer:"
    return s + (f" {LETTERS[row['answer']]}\n\n" if include_answer else "")


def build_prompt(row: dict, shots: list[dict], k: int = 5) -> str:
    """Header + the first ``k`` examples of ``shots`` (the subject's dev rows) + the question without its answer."""
    head = f"The following are multiple choice questions (with answers) about {format_subject(row['subject'])}.\n\n"
    return head + "".join(format_example(s) for s in shots[:k]) + format_example(row, include_answer=False)


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of context and continuation, split so that ``context + continuation`` is tokenised as one text
    (BPE merges across the boundary otherwise differ) and trailing spaces of the context move to the continuation."""
    n_space = len(context) - len(context.rstrip())
    if n_space:
        context, continuation = context[:-n_space], context[-n_space:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return whole[:len(ctx)], whole[len(ctx):]


@torch.no_grad()
def continuation_logprob(model, context_ids: list[int], continuation_ids: list[int],
                         max_length: int) -> tuple[float, bool]:
    """``(sum log p(continuation | context), is_greedy)``, the context cut on the left to fit ``max_length``."""
    if not continuation_ids:
        raise ValueError("empty continuation")
    ids = (list(context_ids) + list(continuation_ids))[-(max_length + 1):]
    inp = torch.tensor(ids[:-1]).view(1, -1)
    logp = F.log_softmax(logits_of(model, inp)[0].float(), dim=-1)[-len(continuation_ids):]  # (n_cont, V)
    target = torch.tensor(continuation_ids)
    ll = logp.gather(1, target[:, None]).sum().item()
    return ll, bool((logp.argmax(-1) == target).all())


def choice_scores(model, tokenizer, prompt: str, row: dict, max_length: int, mode: str = "letter",
                  normalize: bool = False) -> list[float]:
    """The score of each of the four choices (higher is better)."""
    conts = [f" {L}" for L in LETTERS] if mode == "letter" else [f" {c}" for c in row["choices"]]
    if mode not in ("letter", "text"):
        raise ValueError(f"mode must be 'letter' or 'text', not {mode!r}")
    out = []
    for cont in conts:
        ctx_ids, cont_ids = encode_pair(tokenizer, prompt, cont)
        ll, _ = continuation_logprob(model, ctx_ids, cont_ids, max_length)
        out.append(ll / len(cont.encode("utf-8")) if normalize else ll)
    return out


def evaluate(model, tokenizer, rows: list[dict], dev: list[dict], k: int = 5, max_length: int = 2048,
             mode: str = "letter", normalize: bool = False, progress=None) -> list[dict]:
    """Score every row; returns ``[{subject, answer, pred, scores, correct}]`` in the order of ``rows``."""
    shots = defaultdict(list)
    for d in dev:
        shots[d["subject"]].append(d)
    it = progress(rows) if progress else rows
    out = []
    for row in it:
        scores = choice_scores(model, tokenizer, build_prompt(row, shots[row["subject"]], k), row, max_length,
                               mode, normalize)
        pred = max(range(4), key=lambda j: scores[j])  # first maximum on ties
        out.append({"subject": row["subject"], "answer": row["answer"], "pred": pred, "scores": scores,
                    "correct": pred == row["answer"]})
    return out


def summarize(results: list[dict], z: float = 1.96) -> dict:
    """Per-subject accuracy with a normal-approximation CI, and the macro average (mean over subjects) with its
    CI (the subjects' variances added: ``se = sqrt(sum_s p_s (1 - p_s) / n_s) / S``); also the micro average."""
    by = defaultdict(list)
    for r in results:
        by[r["subject"]].append(float(r["correct"]))
    subjects = {}
    for s, xs in sorted(by.items()):
        p, n = sum(xs) / len(xs), len(xs)
        half = z * math.sqrt(p * (1 - p) / n)
        subjects[s] = {"acc": p, "n": n, "ci": (p - half, p + half)}
    S = len(subjects)
    macro = sum(v["acc"] for v in subjects.values()) / S
    se = math.sqrt(sum(v["acc"] * (1 - v["acc"]) / v["n"] for v in subjects.values())) / S
    micro = sum(float(r["correct"]) for r in results) / len(results)
    return {"subjects": subjects, "macro": macro, "macro_ci": (macro - z * se, macro + z * se), "micro": micro,
            "n": len(results)}


__all__ = ["LETTERS", "format_subject", "format_example", "build_prompt", "encode_pair", "continuation_logprob",
           "choice_scores", "evaluate", "summarize"]
