"""What every task family shares: the example and verdict records, the split rule, sampling, the chat view.

An :class:`Example` is one instruction (``prompt``) with a reference ``response`` that passes its verifier, and
the facts the verifier needs (``meta``: test cases, the required character, the right answer...). A family
generates examples for a split and scores any response to one of them with a :class:`Verdict`.

Splits never overlap because an item's split is a function of the item alone (:func:`split_of`: a hash of its
key, or its place in a corpus), never of the order in which items were drawn; sampling a split only picks
among the items that belong to it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)  # of the items of a family, by hash

SYSTEM_PROMPT = ("You are the LLM Lab assistant. Follow the instruction exactly and answer concisely. "
                 "你是 LLM Lab 的助手：严格按要求作答，简洁准确。")


@dataclass
class Example:
    task: str  # the family's name, e.g. "jueju"
    split: str  # "train", "validation" or "test"
    key: str  # what identifies the item; its split is a function of it
    prompt: str  # the instruction, as the user would write it
    response: str  # a reference answer that passes the verifier
    lang: str = "en"  # "en" or "zh"
    meta: dict = field(default_factory=dict)  # what the verifier needs

    @property
    def id(self) -> str:
        return f"{self.task}/{hashlib.sha256(self.key.encode()).hexdigest()[:12]}"

    def messages(self, system: str | None = SYSTEM_PROMPT, with_response: bool = True) -> list[dict]:
        """The chat view for SFT: ``[{"role": "system"...}, {"role": "user"...}, {"role": "assistant"...}]``."""
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": self.prompt})
        if with_response:
            msgs.append({"role": "assistant", "content": self.response})
        return msgs


@dataclass
class Verdict:
    """A verifier's judgement: ``score`` in [0, 1] (partial credit), ``passed`` only if every check holds."""

    score: float
    passed: bool
    reason: str  # "ok", or the first check that failed, in words
    checks: dict = field(default_factory=dict)  # check name -> bool

    @classmethod
    def from_checks(cls, checks: dict[str, bool], reasons: dict[str, str]) -> Verdict:
        failed = [name for name, ok in checks.items() if not ok]
        score = sum(checks.values()) / len(checks) if checks else 0.0
        return cls(score, not failed, "ok" if not failed else reasons.get(failed[0], failed[0]), dict(checks))


def split_of(key: str, fractions: tuple[float, float, float] = FRACTIONS) -> str:
    """The split an item belongs to: the first 8 bytes of SHA-256(key) as a number in [0, 1), cut by fractions."""
    u = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2 ** 64
    return SPLITS[0] if u < fractions[0] else SPLITS[1] if u < fractions[0] + fractions[1] else SPLITS[2]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return split


def rng_for(task: str, split: str, seed: int) -> random.Random:
    """A generator of its own for (task, split, seed): one family's draws never shift another's."""
    return random.Random(f"{task}/{split}/{seed}")


def sample(items: list, n: int | None, rng: random.Random, what: str) -> list:
    """``n`` distinct items in a seeded order (all of them, shuffled, if n is None)."""
    if n is None:
        n = len(items)
    if n > len(items):
        raise ValueError(f"{what}: asked for {n} examples, the split has only {len(items)}")
    return rng.sample(items, n)


def draw_unique(make, split: str, n: int, rng: random.Random, what: str, max_tries: int = 200) -> list[Example]:
    """For families without a finite list of items: call ``make(rng)`` until ``n`` examples of ``split``
    with distinct keys came out (each candidate's split decided by :func:`split_of` of its key)."""
    out, seen = [], set()
    for _ in range(max_tries * max(n, 1)):
        if len(out) == n:
            return out
        ex = make(rng)
        if ex.key in seen or split_of(ex.key) != split:
            continue
        seen.add(ex.key)
        ex.split = split
        out.append(ex)
    if len(out) < n:
        raise ValueError(f"{what}: found only {len(out)} distinct {split} examples of the {n} asked for")
    return out
