"""Constitutional AI's critique -> revision loop (Bai et al., 2022, the supervised stage), at course size.

A *constitution* is a list of written principles. For each prompt and an original response, the model is asked
to critique the response against one principle ("Identify how the answer breaks the requested form"), then to
rewrite the response given its own critique. The (prompt, revision, original) triples are preference data:
``chosen`` = the revision, ``rejected`` = the original, in TRL's conversational format, ready for DPO.

At Anthropic's scale the model's own revision is trusted. The course chat model is far too small for that: its
critiques are mostly noise, and its "revisions" are often no better than the original. So the loop here keeps
a pair only when a *checkable* judge says the revision is better (by default the Week 4 task verifier,
``tasks.verify(example, text).score``, higher for the revision than for the original), and it reports how many
revisions survived. Two critics:

- ``critic="model"``: the model writes the critique (the paper's loop);
- ``critic="rule"``: the verifier's own reason for failing (``Verdict.reason``, e.g. "the character 「月」 does
  not occur") stands in for the critique: a critic that is always right, so only the revision is the model's.

::

    from llmlab.align import constitution, chat_sampler
    gen = constitution.model_generator(model, tok, max_new_tokens=48)
    rows, stats = constitution.critique_revision(examples, originals, gen, critic="model")
    stats  # {"n": ..., "kept": ..., "improved_share": ..., "mean_original": ..., "mean_revised": ...}
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

from .. import tasks
from ..tasks.common import Example

Generate = Callable[[list[list[dict]]], list[str]]  # message lists -> one text each


@dataclass(frozen=True)
class Principle:
    name: str
    critique: str  # the request for a critique
    revision: str  # the request for a revision


GENERAL = (
    Principle("follow_request", "Identify every way in which the answer does not do exactly what the request asks.",
              "Rewrite the answer so that it does exactly what the request asks, and nothing else."),
    Principle("concise", "Identify anything in the answer that is repeated, off the point or too long.",
              "Rewrite the answer without repetition, on the point and concise."),
)
CONSTITUTION: dict[str, tuple[Principle, ...]] = {
    "jueju": (Principle("form", "Does the poem have four lines of five characters, with ， after lines 1 and 3 and 。 "
                                "after lines 2 and 4? Does it use the requested character? Name what is wrong.",
                        "Rewrite the poem as a 五言绝句 with the requested character, in the right form."),),
    "shakespeare": (Principle("register", "Which words or lines do not sound like Shakespeare, or repeat an earlier "
                                          "line? Name them.",
                              "Rewrite the continuation in Shakespeare's language, without repeated lines."),),
    "arithmetic": (Principle("working", "Check each step of the working. Which step is wrong, and does the final "
                                        "answer follow from the working?",
                             "Rewrite the solution with every step correct and the final answer equal to the "
                             "result of the working."),),
    "food": (Principle("facts", "Which statements about the dish are wrong, and is the answer in the language of the "
                                "question?",
                       "Rewrite the answer with the correct facts about the dish, in the language of the question."),),
}


def principles_for(task: str) -> tuple[Principle, ...]:
    """The task's own principles, then the general ones."""
    return CONSTITUTION.get(task, ()) + GENERAL


def critique_messages(prompt: list[dict], response: str, principle: Principle) -> list[dict]:
    """Ask for a critique of ``response`` (an answer to the chat ``prompt``) against one principle."""
    request = prompt[-1]["content"]
    return [{"role": "user", "content": f"Request: {request}\n\nAnswer:\n{response}\n\nCritique: {principle.critique}"}]


def revision_messages(prompt: list[dict], response: str, principle: Principle, critique: str) -> list[dict]:
    """Ask for a revision of ``response`` given the critique; the reply is the revised answer alone."""
    request = prompt[-1]["content"]
    return [{"role": "user", "content": f"Request: {request}\n\nAnswer:\n{response}\n\nCritique: {critique}\n\n"
                                        f"{principle.revision} Reply with the new answer only."}]


_LEAD = re.compile(r"^\s*(revised answer|revision|new answer|answer)\s*[:：]\s*", re.IGNORECASE)


def clean_revision(text: str) -> str:
    """Strip a leading "Revision:" / "New answer:" label and surrounding blank lines."""
    return _LEAD.sub("", text.strip()).strip()


def revision_pair(example: Example, original: str, revised: str, judge=None, system: str | None = None,
                  **extra) -> dict:
    """One TRL conversational preference row: chosen = the revision, rejected = the original, with both judge
    scores (``judge(example, text) -> float``, default: the task verifier's score) and ``kept`` (revision
    strictly better)."""
    judge = judge or (lambda ex, t: tasks.verify(ex, t).score)
    so, sr = float(judge(example, original)), float(judge(example, revised))
    return {"prompt": example.messages(system, with_response=False),
            "chosen": [{"role": "assistant", "content": revised}],
            "rejected": [{"role": "assistant", "content": original}],
            "task": example.task, "kind": "constitutional", "id": f"{example.id}/constitutional",
            "chosen_score": sr, "rejected_score": so, "kept": sr > so, **extra}


def critique_revision(examples: list[Example], originals: list[str], generate: Generate, critic: str = "model",
                      judge=None, seed: int = 0, keep_all: bool = False,
                      system: str | None = None) -> tuple[list[dict], dict]:
    """Critique -> revise every ``originals[i]`` (an answer to ``examples[i]``) once, with a seeded principle.

    ``generate`` answers a batch of message lists (see :func:`model_generator`). Returns (rows, stats): the rows
    whose revision the judge scores higher (all rows with ``keep_all``), and counts of what happened.
    """
    if critic not in ("model", "rule"):
        raise ValueError(f"critic must be 'model' or 'rule', not {critic!r}")
    if len(examples) != len(originals):
        raise ValueError(f"{len(examples)} examples but {len(originals)} original responses")
    rng = random.Random(f"constitution/{seed}")
    chosen = [rng.choice(principles_for(ex.task)) for ex in examples]
    prompts = [ex.messages(system, with_response=False) for ex in examples]
    if critic == "model":
        critiques = generate([critique_messages(p, o, pr) for p, o, pr in zip(prompts, originals, chosen)])
    else:
        critiques = [tasks.verify(ex, o).reason for ex, o in zip(examples, originals)]
    revisions = [clean_revision(t) for t in
                 generate([revision_messages(p, o, pr, c) for p, o, pr, c in zip(prompts, originals, chosen, critiques)])]
    rows = [revision_pair(ex, o, r, judge, system, principle=pr.name, critique=c, critic=critic)
            for ex, o, r, pr, c in zip(examples, originals, revisions, chosen, critiques)]
    kept = [r for r in rows if r["kept"] and r["chosen"] != r["rejected"]]
    n = max(1, len(rows))
    stats = {"n": len(rows), "kept": len(kept), "improved_share": len(kept) / n,
             "worse_share": sum(r["chosen_score"] < r["rejected_score"] for r in rows) / n,
             "mean_original": sum(r["rejected_score"] for r in rows) / n,
             "mean_revised": sum(r["chosen_score"] for r in rows) / n}
    return (rows if keep_all else kept), stats


def model_generator(model, tokenizer, max_new_tokens: int = 48, temperature: float = 0.7, seed: int = 0,
                    batch_size: int = 32) -> Generate:
    """A :data:`Generate` from a chat model (``llmlab.align.sampling.generate``: seeded, batched, KV cache)."""
    from .sampling import generate

    def run(messages: list[list[dict]]) -> list[str]:
        return generate(model, tokenizer, messages, max_new_tokens, temperature, seed=seed,
                        batch_size=batch_size)["texts"]

    return run


__all__ = ["CONSTITUTION", "GENERAL", "Principle", "clean_revision", "critique_messages", "critique_revision",
           "model_generator", "principles_for", "revision_messages", "revision_pair"]
