"""Checkable preference data: pairs of responses to one prompt, ranked by a rule a learner can read.

The course cannot ship human preference labels, so it builds preferences that a program can check. Every pair
comes from a Week 4 task (:mod:`llmlab.tasks`) and is ranked by that task's verifier: the ``chosen`` response
scores higher than the ``rejected`` one (``chosen_score > rejected_score``), with one documented exception
(``shuffled`` below). The families and their rejected responses (``kind``):

==============  ============================================================================================
task            rejected responses
==============  ============================================================================================
``jueju``       ``model`` (a sample of the course model that fails the verifier), ``missing_char`` (a real
                五言绝句 of the same split without the requested character), ``broken_form`` (a verse one
                character short), ``punctuation`` (the pause and stop marks swapped)
``shakespeare`` ``model``, ``shuffled`` (the true continuation, its words shuffled: the verifier checks style,
                not order, so both score the same; the rule is "the corpus's word order"), ``modern`` (the
                same lines in a modern register), ``repeated`` (one line over and over)
``arithmetic``  ``model``, ``wrong_answer`` (the reference working with a slip in the last step, so the final
                answer is wrong), ``inconsistent`` (the right working, then a final answer that is not its result)
``food``        ``model``, ``wrong_fact`` (the reference sentence for the same food with one attribute taken
                from another row of the table), ``wrong_language`` (the right facts in the other language)
==============  ============================================================================================

``chosen`` is the task's reference response (a real poem, the real next lines, the worked solution, the
table's facts), or a model sample when one passes the verifier. Pairs are seeded (the same arguments give the
same pairs) and keep the tasks' splits ("train", "validation", "test": never overlapping). Rows are in TRL's
conversational preference format::

    {"prompt": [{"role": "user", "content": ...}], "chosen": [{"role": "assistant", "content": ...}],
     "rejected": [{"role": "assistant", "content": ...}], "task": ..., "kind": ..., "id": ...,
     "chosen_score": 1.0, "rejected_score": 0.67}

A ``sampler`` (see :func:`llmlab.align.sampling.chat_sampler`) maps a list of prompts (message lists) to one
response each; with one, a share ``model_share`` of the pairs gets its rejected response from the model.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Callable

from .. import tasks
from ..tasks.common import Example
from ..tasks.food import FOODS, food, reference_answer
from ..tasks.poetry import jueju_poems

FAMILIES = ("jueju", "shakespeare", "arithmetic", "food")
CORRUPTIONS = {
    "jueju": ("missing_char", "broken_form", "punctuation"),
    "shakespeare": ("shuffled", "modern", "repeated"),
    "arithmetic": ("wrong_answer", "inconsistent"),
    "food": ("wrong_fact", "wrong_language"),
}
TIED_KINDS = {"shuffled"}  # ranked by construction, not by the verifier (see the module docstring)

Sampler = Callable[[list[list[dict]]], list[str]]

# words no Tiny Shakespeare speech uses: a modern register the verifier's vocabulary check catches
_MODERN = ("okay", "basically", "guys", "awesome", "weekend", "email", "smartphone", "online", "laptop",
           "literally", "vibe", "deadline", "website", "yeah", "anyway", "selfie", "emoji")
_ARCHAIC = {"thou": "you", "thee": "you", "thy": "your", "thine": "yours", "art": "are", "hath": "has",
            "doth": "does", "dost": "do", "ere": "before", "'tis": "it is", "wherefore": "why", "nay": "no",
            "ay": "yes", "hither": "here", "thither": "there", "whence": "where from", "shalt": "will"}


# ---------------------------------------------------------------------------------------------
# corruptions: a rejected response made from the chosen one (rng: the pair's own random.Random)


def _jueju_missing_char(ex: Example, rng: random.Random) -> str:
    char = ex.meta["char"]
    pool = [p for p in jueju_poems() if p[0] == ex.split and char not in p[3]]
    return rng.choice(pool)[3]


def _jueju_broken_form(ex: Example, rng: random.Random) -> str:
    lines = ex.response.split("\n")
    i = rng.randrange(len(lines))
    j = rng.choice((0, 6))  # first or second verse of the couplet: "ABCDE，FGHIJ。"
    k = j + rng.randrange(5)
    lines[i] = lines[i][:k] + lines[i][k + 1:]  # one character short
    return "\n".join(lines)


def _jueju_punctuation(ex: Example, rng: random.Random) -> str:
    return "\n".join(ln[:5] + "。" + ln[6:11] + "，" for ln in ex.response.split("\n"))


def _shakespeare_shuffled(ex: Example, rng: random.Random) -> str:
    lines = ex.response.split("\n")
    words = " ".join(lines).split()
    for _ in range(10):  # a shuffle that changes the text
        rng.shuffle(words)
        if " ".join(words) != " ".join(" ".join(lines).split()) or len(set(words)) < 2:
            break
    out, pos = [], 0
    for ln in lines:  # the same number of words on each line
        n = len(ln.split())
        out.append(" ".join(words[pos:pos + n]))
        pos += n
    return "\n".join(out)


def modernise(text: str, rng: random.Random) -> str:
    """Any text in a modern register: archaic words replaced, a modern word inserted for about every two words
    (also the negatives of :mod:`llmlab.align.style`)."""
    out = []
    for ln in text.split("\n"):
        words = [_ARCHAIC.get(w.lower(), w) for w in ln.split()]
        for _ in range(1 + len(words) // 2):  # a modern word for every ~2 words
            words.insert(rng.randrange(len(words) + 1), rng.choice(_MODERN))
        out.append(" ".join(words))
    return "\n".join(out)


def _shakespeare_modern(ex: Example, rng: random.Random) -> str:
    return modernise(ex.response, rng)


def _shakespeare_repeated(ex: Example, rng: random.Random) -> str:
    line = rng.choice([ln for ln in ex.response.split("\n") if ln.strip()] or [ex.response])
    return "\n".join([line] * max(2, ex.meta["n_lines"]))


def _wrong_number(right: int, rng: random.Random) -> int:
    return right + rng.choice([d for d in (-10, -3, -2, -1, 1, 2, 3, 10) if right + d >= 0])


def _arithmetic_wrong_answer(ex: Example, rng: random.Random) -> str:
    right, wrong = ex.meta["answer"], _wrong_number(ex.meta["answer"], rng)
    lines = ex.response.split("\n")
    # the last step "... = ans" (or "= ans (remainder r)") and the answer line get the wrong number
    last = len(lines) - 2
    lines[last] = re.sub(rf"= {right}(?!\d)", f"= {wrong}", lines[last])
    lines[-1] = lines[-1].replace(str(right), str(wrong))
    return "\n".join(lines)


def _arithmetic_inconsistent(ex: Example, rng: random.Random) -> str:
    right, wrong = ex.meta["answer"], _wrong_number(ex.meta["answer"], rng)
    lines = ex.response.split("\n")
    lines[-1] = lines[-1].replace(str(right), str(wrong))  # the working still ends with the right number
    return "\n".join(lines)


def _food_wrong_fact(ex: Example, rng: random.Random) -> str:
    f = food(ex.meta["food"])
    attr = rng.choice(ex.meta["attributes"])
    others = sorted({getattr(g, attr) for g in FOODS} - {getattr(f, attr)})
    twin = dataclasses.replace(f, **{attr: rng.choice(others)})
    return reference_answer(twin, ex.meta["kind"], ex.lang)


def _food_wrong_language(ex: Example, rng: random.Random) -> str:
    return reference_answer(food(ex.meta["food"]), ex.meta["kind"], "en" if ex.lang == "zh" else "zh")


_CORRUPT = {
    "missing_char": _jueju_missing_char, "broken_form": _jueju_broken_form, "punctuation": _jueju_punctuation,
    "shuffled": _shakespeare_shuffled, "modern": _shakespeare_modern, "repeated": _shakespeare_repeated,
    "wrong_answer": _arithmetic_wrong_answer, "inconsistent": _arithmetic_inconsistent, "wrong_fact": _food_wrong_fact,
    "wrong_language": _food_wrong_language,
}
assert set(_CORRUPT) == {k for ks in CORRUPTIONS.values() for k in ks}


def corrupt(example: Example, kind: str, seed: int = 0) -> str:
    """A rejected response of one ``kind`` for ``example`` (seeded)."""
    if kind not in CORRUPTIONS.get(example.task, ()):
        raise ValueError(f"no corruption {kind!r} for task {example.task!r}; known: {CORRUPTIONS.get(example.task)}")
    return _CORRUPT[kind](example, random.Random(f"{example.id}/{kind}/{seed}"))


# ---------------------------------------------------------------------------------------------
# pairs


def _row(ex: Example, chosen: str, rejected: str, kind: str, source: str, system: str | None) -> dict:
    c, r = tasks.verify(ex, chosen).score, tasks.verify(ex, rejected).score
    return {"prompt": ex.messages(system, with_response=False),
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "task": ex.task, "kind": kind, "source": source, "split": ex.split, "id": f"{ex.id}/{kind}",
            "chosen_score": c, "rejected_score": r}


def preference_pairs(task: str, split: str = "train", n: int = 100, seed: int = 0, sampler: Sampler | None = None,
                     model_share: float = 0.5, system: str | None = None) -> list[dict]:
    """``n`` preference pairs of one task family (see the module docstring), one per prompt.

    Without a ``sampler`` every rejected response is a corruption (the kinds in turn). With one, the model
    answers every prompt once; a sample that fails the verifier is the rejected response of that pair for a
    share ``model_share`` of the prompts (kind ``model``); a sample that passes becomes the *chosen* response
    against a corruption (source ``model``). A pair whose verifier scores do not rank as expected is dropped
    and replaced (never the case for the reference responses; it guards against a corruption that happens to
    pass, e.g. a "modern" line whose inserted words all occur in Shakespeare).
    """
    if task not in FAMILIES:
        raise ValueError(f"unknown preference family {task!r}; known: {FAMILIES}")
    rng = random.Random(f"prefs/{task}/{split}/{seed}")
    want = n
    pool = tasks.generate(task, split, n=None if task != "arithmetic" else 3 * n + 10, seed=seed)
    rng.shuffle(pool)
    kinds = CORRUPTIONS[task]
    rows: list[dict] = []
    failed = 0  # model samples that failed the verifier so far: every 1/model_share-th becomes a rejected response
    for start in range(0, len(pool), max(want, 1)):
        batch = pool[start:start + want]
        samples = sampler([ex.messages(system, with_response=False) for ex in batch]) if sampler else None
        for i, ex in enumerate(batch):
            kind = kinds[(start + i) % len(kinds)]
            row = None
            if samples is not None:
                s = samples[i]
                if tasks.verify(ex, s).passed:  # a good model answer: chosen against a corruption
                    row = _row(ex, s, corrupt(ex, kind, seed), kind, "model", system)
                else:
                    failed += 1
                    if int(failed * model_share) > int((failed - 1) * model_share):
                        row = _row(ex, ex.response, s, "model", "model", system)
            if row is None:
                row = _row(ex, ex.response, corrupt(ex, kind, seed), kind, "reference", system)
            ok = row["chosen_score"] > row["rejected_score"] or (
                row["kind"] in TIED_KINDS and row["chosen_score"] >= row["rejected_score"]
                and row["chosen"] != row["rejected"])
            if ok:
                rows.append(row)
            if len(rows) == want:
                return rows
    raise ValueError(f"{task}/{split}: only {len(rows)} valid pairs of the {want} asked for")


def on_policy_pairs(examples: list[Example], sampler: Sampler, k: int = 4, system: str | None = None,
                    reference: bool = False) -> list[dict]:
    """Pairs from the policy's *own* answers: ``k`` samples per prompt, ranked by the verifier.

    Offline DPO on "reference vs corruption" pairs teaches the policy to rank texts it would never write, and
    need not change what it does write; these pairs are about its own outputs (the online/iterative DPO of
    Xiong et al., 2024, and RLHF's "best-of-k vs worst-of-k"). For each example the best-scoring sample is
    ``chosen`` and the worst ``rejected`` (kind ``on_policy``, source ``model``); a prompt whose samples all
    score the same teaches nothing and is skipped, unless ``reference`` is set: then the task's reference
    response is ``chosen`` against the worst sample if it scores higher (kind ``model``, as in
    :func:`preference_pairs`). The sampler is called once with every prompt repeated ``k`` times (it must draw
    independent samples, as :func:`llmlab.align.sampling.chat_sampler` does in one seeded stream).
    """
    if k < 2:
        raise ValueError(f"on-policy pairs need k >= 2 samples per prompt, got {k}")
    prompts = [ex.messages(system, with_response=False) for ex in examples]
    texts = sampler([p for p in prompts for _ in range(k)])
    rows = []
    for i, ex in enumerate(examples):
        own = texts[i * k:(i + 1) * k]
        scores = [tasks.verify(ex, t).score for t in own]
        best, worst = max(range(k), key=scores.__getitem__), min(range(k), key=scores.__getitem__)
        if scores[best] > scores[worst]:
            row = _row(ex, own[best], own[worst], "on_policy", "model", system)
        elif reference and tasks.verify(ex, ex.response).score > scores[worst]:
            row = _row(ex, ex.response, own[worst], "model", "model", system)
        else:
            continue
        row["id"] = f"{ex.id}/{row['kind']}"
        rows.append(row)
    return rows


def preference_dataset(split: str = "train", n_per_task: int | dict = 50, seed: int = 0, families=FAMILIES,
                       sampler: Sampler | None = None, model_share: float = 0.5,
                       system: str | None = None) -> list[dict]:
    """Pairs of several families (``n_per_task`` each: an int or a dict task -> n), interleaved in a seeded order."""
    rows = []
    for t in families:
        k = n_per_task[t] if isinstance(n_per_task, dict) else n_per_task
        rows += preference_pairs(t, split, k, seed, sampler, model_share, system)
    random.Random(f"prefs/{split}/{seed}").shuffle(rows)
    return rows


def preference_splits(n_per_task: int | dict = 50, seed: int = 0, **kw) -> dict[str, list[dict]]:
    """{"train", "validation", "test"} -> pairs; validation and test get a quarter of ``n_per_task`` each."""
    small = ({t: max(1, k // 4) for t, k in n_per_task.items()} if isinstance(n_per_task, dict)
             else max(1, n_per_task // 4))
    return {s: preference_dataset(s, n_per_task if s == "train" else small, seed, **kw) for s in tasks.SPLITS}


def as_text(row: dict, tokenizer, which: str) -> tuple[str, str]:
    """(prompt text with the generation prompt, response text ending with the end-of-turn token) of a pair."""
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(row["prompt"] + row[which], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not extend the prompt with the response")
    return prompt, full[len(prompt):]


def write_jsonl(rows: list[dict], path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Pairs from a JSONL file: conversational rows as above, or plain ``prompt``/``chosen``/``rejected``
    strings (turned into one user and one assistant message)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if isinstance(r["prompt"], str):
            r["prompt"] = [{"role": "user", "content": r["prompt"]}]
        for k in ("chosen", "rejected"):
            if isinstance(r[k], str):
                r[k] = [{"role": "assistant", "content": r[k]}]
        rows.append(r)
    return rows


__all__ = ["FAMILIES", "CORRUPTIONS", "TIED_KINDS", "corrupt", "modernise", "on_policy_pairs", "preference_pairs",
           "preference_dataset", "preference_splits", "as_text", "write_jsonl", "read_jsonl"]
