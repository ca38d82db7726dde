"""ReAct-format training traces for the arithmetic tasks, with the calculator's real observations.

A tiny chat model does not call tools because nobody showed it how. This file writes the demonstrations: for each
word problem of :mod:`llmlab.tasks.arithmetic` a two-step ReAct trace::

    Thought: I will compute it with the calculator.
    Action: calculator[5 + 3 * 4 + 2 - 6]          <- the numbers of the question, in the order they appear
    Observation: 13                                <- run by the script: calculator("5 + 3 * 4 + 2 - 6")
    Thought: The calculator says 13.
    Final Answer: 13

The expression of each template (:data:`EXPRESSIONS`) is written over the question's numbers by position, so the
model only has to learn *which* expression a question needs and to copy the numbers in order; the arithmetic, the
part a 2M-parameter model gets wrong, is the tool's job. Every trace is checked: the observation must equal the
reference answer, or the trace is rejected.

:func:`sft_rows` turns a trace into chat rows for Week 4's SFT (:mod:`llmlab.finetune.sft_trl`), one row per model
call, with the messages the loop :func:`llmlab.eval.react.react` sends for that call (system, ``Question: ...``, the
scratchpad so far as one assistant message) and the step to learn as the last assistant message, so that training
and inference see the same text.
"""

from __future__ import annotations

import re

from .react import DEFAULT_TOOLS, SYSTEM, calculator

# {i}: the i-th number of the question (English and Chinese questions list them in the same order)
EXPRESSIONS = {
    "shop": "{0} + {1} * {2} + {3} - {4}",  # start, bags x each, loose, given away
    "bill": "({1} * {2} + {3}) / {0}",  # people, dishes x price, tip
    "travel": "{0} * {1} + {2} * {3}",  # v1 x h1 + v2 x h2
    "savings": "{0} + {1} * {2} - {3}",  # start, weekly x weeks, purchase
    "eggs": "({0} * {1} * {2} - {3}) // {4}",  # rows x cols x boxes, broken, carton size
}
FIRST_THOUGHT = "I will compute it with the calculator."
_INT = re.compile(r"\d+")

__all__ = ["EXPRESSIONS", "FIRST_THOUGHT", "expression", "make_trace", "sft_rows", "scratchpad", "system_prompt",
           "trace_dataset"]


def system_prompt(tools=None) -> str:
    """The system message :func:`llmlab.eval.react.react` sends (its default tools unless ``tools`` is given)."""
    tools = DEFAULT_TOOLS if tools is None else tools
    return SYSTEM.format(tools="\n".join(f"- {t.description}" for t in tools.values()))


def expression(example) -> str:
    """The calculator expression that solves an arithmetic ``Example`` (its template's, over its numbers)."""
    numbers = _INT.findall(example.prompt)
    return EXPRESSIONS[example.meta["template"]].format(*numbers)


def make_trace(example) -> list[tuple[str, str | None]]:
    """``[(reply, observation), ...]``: the model's turns and what the loop answered (None after the final answer).

    The observation is the calculator's real output; a trace whose result is not the reference answer raises."""
    expr = expression(example)
    obs = calculator(expr)
    if obs != str(example.meta["answer"]):
        raise ValueError(f"{example.id}: calculator[{expr}] = {obs}, expected {example.meta['answer']}")
    return [(f"Thought: {FIRST_THOUGHT}\nAction: calculator[{expr}]", obs),
            (f"Thought: The calculator says {obs}.\nFinal Answer: {obs}", None)]


def scratchpad(steps: list[tuple[str, str | None]]) -> str:
    """The assistant message the loop builds from earlier steps: each reply, then ``Observation: ...``."""
    return "".join(reply.rstrip() + f"\nObservation: {obs}\n" for reply, obs in steps)


def sft_rows(question: str, steps: list[tuple[str, str | None]], system: str | None = None) -> list[dict]:
    """One chat row per model call of a trace: the messages of that call, then the reply to learn."""
    system = system_prompt() if system is None else system
    rows = []
    for k, (reply, _) in enumerate(steps):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": f"Question: {question}"}]
        if k:
            messages.append({"role": "assistant", "content": scratchpad(steps[:k])})
        rows.append({"messages": messages + [{"role": "assistant", "content": reply}]})
    return rows


def trace_dataset(examples) -> list[dict]:
    """SFT rows for many arithmetic examples (two rows per problem)."""
    return [row for ex in examples for row in sft_rows(ex.prompt, make_trace(ex))]
