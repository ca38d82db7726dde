"""The course's instruction data: seeded generators of instruction/response pairs, each with a verifier.

::

    from llmlab import tasks
    exs = tasks.generate("jueju", "train", n=100, seed=0)    # list[Example]
    v = tasks.verify(exs[0], "床前明月光，疑是地上霜。\\n舉頭望明月，低頭思故鄉。")   # Verdict(score, passed, reason)
    rows = tasks.chat_dataset("train", n_per_task=50)         # [{"messages": [...], "task", "id"}] for SFT

Families (one file each; ``TASKS`` maps a name to its generator/verifier object):

==============  ======================  ==========================================================================
name            file                    what
==============  ======================  ==========================================================================
``shakespeare``  ``poetry.py``           continue a Tiny Shakespeare speech (verifier: register, repeats, length)
``jueju``        ``poetry.py``           a 五言绝句 containing a given character (4 x 5 characters, punctuation)
``python``       ``programming.py``      a small Python function, run on test cases in a sandboxed subprocess
``food``         ``food.py``             questions on the food table ``FOODS`` (shared with Weeks 5 and 8)
``arithmetic``   ``arithmetic.py``       multi-step word problems, English and Chinese; the final answer is parsed
==============  ======================  ==========================================================================

Every family gives ``generate(split, n, seed) -> list[Example]`` and ``verify(example, response) -> Verdict``.
Splits ("train", "validation", "test") never overlap: see :mod:`llmlab.tasks.common`. The same (task, split,
seed, n) always gives the same examples; a different seed gives another sample of the same split.
"""

from __future__ import annotations

from .arithmetic import Arithmetic
from .common import SPLITS, SYSTEM_PROMPT, Example, Verdict, split_of
from .food import FOODS, FoodDescriptions, food
from .poetry import Jueju, ShakespeareContinuation
from .programming import Programming

TASKS = {t.name: t for t in (ShakespeareContinuation(), Jueju(), Programming(), FoodDescriptions(), Arithmetic())}


def _family(name: str):
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def generate(task: str, split: str = "train", n: int | None = None, seed: int = 0, **options) -> list[Example]:
    """``n`` examples of one family's split (``n=None``: all of a finite family's split, shuffled). ``options``
    go to the family's generator (``level="easy"`` for one-step arithmetic)."""
    if n is None and task == "arithmetic":
        raise ValueError("arithmetic problems are unlimited: give n")
    family = _family(task)
    return family.generate(split, n, seed, **options) if n is not None else family.generate(split, seed=seed, **options)


def verify(example: Example, response: str) -> Verdict:
    """Score ``response`` as an answer to ``example`` with its family's verifier."""
    return _family(example.task).verify(example, response)


def mixture(split: str = "train", n_per_task: int | dict = 50, seed: int = 0, tasks=None) -> list[Example]:
    """Examples of several families (default: all), ``n_per_task`` each (an int, or a dict task -> n), interleaved
    in a seeded order. A family's split with fewer items than asked gives all it has."""
    import random

    names = list(tasks or TASKS)
    out = []
    for name in names:
        want = n_per_task[name] if isinstance(n_per_task, dict) else n_per_task
        try:
            out += generate(name, split, want, seed)
        except ValueError:  # a small finite split (the Python tasks): all of it
            out += generate(name, split, None, seed)
    random.Random(f"mixture/{split}/{seed}").shuffle(out)
    return out


def chat_dataset(split: str = "train", n_per_task: int | dict = 50, seed: int = 0, tasks=None,
                 system: str | None = SYSTEM_PROMPT) -> list[dict]:
    """The SFT view: ``{"messages": [system, user, assistant], "task", "id"}`` rows (TRL's conversational format)."""
    return [{"messages": ex.messages(system), "task": ex.task, "id": ex.id}
            for ex in mixture(split, n_per_task, seed, tasks)]


__all__ = ["TASKS", "SPLITS", "SYSTEM_PROMPT", "Example", "Verdict", "FOODS", "food", "generate", "verify",
           "mixture", "chat_dataset", "split_of"]
