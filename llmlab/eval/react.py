"""ReAct (Yao et al., 2023): interleave reasoning and tool calls in one text protocol.

The model writes, turn by turn::

    Thought: I need 17 * 23 first.
    Action: calculator[17 * 23]
    Observation: 391                      <- written by the loop, not the model
    Thought: ... 
    Final Answer: 391

The loop asks the model for one step with the stop sequence ``"Observation:"`` (so it cannot invent the tool's
output), parses the step, runs the tool, appends ``Observation: <result>`` and asks again, until a
``Final Answer:`` or the step limit. Every failure becomes an **observation** the model can react to (an
unparseable step, an unknown tool, a tool that raised), not an exception.

``complete(messages, stop) -> str`` is the only thing the loop needs from a model: :func:`openai_complete`
wraps any OpenAI-compatible client (the Week 6 server, vLLM, a hosted model); :class:`ScriptedModel` replays
fixed replies (how the loop is tested exactly).
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from typing import Callable

STOP = ["Observation:"]
_ACTION = re.compile(r"^\s*Action\s*:\s*([A-Za-z_][\w-]*)\s*\[(.*)\]\s*$", re.S)
_FINAL = re.compile(r"Final Answer\s*:\s*(.*)", re.S)
_THOUGHT = re.compile(r"Thought\s*:\s*(.*?)(?=\n\s*(?:Action|Final Answer)\s*:|\Z)", re.S)

SYSTEM = """Answer the question. You may use tools. Write one step at a time:
Thought: <your reasoning>
Action: <tool>[<input>]
and wait for the Observation. When you know the answer, write
Final Answer: <answer>
Tools:
{tools}"""


# ------------------------------------------------------------------------------------------ tools

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.USub: operator.neg,
        ast.UAdd: operator.pos}


def calculator(expression: str) -> str:
    """Evaluate + - * / // % ** and parentheses on numbers (a safe AST walk, no ``eval``)."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError(f"unsupported expression: {ast.dump(node)[:40]}")

    value = ev(ast.parse(expression.strip().replace("×", "*").replace("÷", "/"), mode="eval"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def food_lookup(name: str) -> str:
    """A row of the course food table (:data:`llmlab.tasks.FOODS`) by English or Chinese name."""
    from ..tasks import FOODS

    key = name.strip().lower()
    for f in FOODS:
        if key in {f.key.lower(), f.name.lower(), f.name_zh}:
            return "; ".join(f"{k}: {getattr(f, k)}" for k in ("name", "name_zh", "category", "colour", "shape",
                                                                 "texture", "size", "taste", "cuisine", "meal"))
    raise KeyError(f"no food called {name.strip()!r}")


@dataclass
class Tool:
    name: str
    fn: Callable[[str], str]
    description: str


def registry(*tools: Tool) -> dict[str, Tool]:
    return {t.name: t for t in tools}


DEFAULT_TOOLS = registry(Tool("calculator", calculator, "calculator[expression]: arithmetic, e.g. calculator[(3 + 4) * 5]"),
                         Tool("lookup", food_lookup, "lookup[food name]: the course food table's row for a food"))


# ------------------------------------------------------------------------------------------ parsing


@dataclass
class Step:
    thought: str | None = None
    action: str | None = None
    action_input: str | None = None
    final: str | None = None
    error: str | None = None  # why the step could not be parsed


def parse_step(text: str) -> Step:
    """One model turn -> a Step. ``Final Answer`` wins over an action in the same turn only if it comes first."""
    m = _THOUGHT.search(text)
    thought = m.group(1).strip() if m else None
    fin = _FINAL.search(text)
    act_line = next((ln for ln in text.splitlines() if re.match(r"\s*Action\s*:", ln)), None)
    if fin and (act_line is None or text.index(fin.group(0)) < text.index(act_line)):
        return Step(thought, final=fin.group(1).strip().splitlines()[0].strip() if fin.group(1).strip() else "")
    if act_line is None:
        return Step(thought, error="no 'Action: tool[input]' and no 'Final Answer:' in the reply")
    a = _ACTION.match(act_line)
    if not a:
        return Step(thought, error=f"could not parse {act_line.strip()!r}: write Action: tool[input]")
    return Step(thought, action=a.group(1), action_input=a.group(2).strip())


# ------------------------------------------------------------------------------------------ the loop


@dataclass
class Trace:
    question: str
    steps: list[dict] = field(default_factory=list)  # {"reply", "step", "observation"}
    answer: str | None = None
    stopped: str = ""  # "final", "max_steps"

    @property
    def tool_calls(self) -> int:
        return sum(1 for s in self.steps if s["step"].action)


def run_tool(tools: dict[str, Tool], name: str, arg: str) -> str:
    if name not in tools:
        return f"Error: unknown tool {name!r}; available: {', '.join(tools)}"
    try:
        return str(tools[name].fn(arg))
    except Exception as e:  # the model sees the error and can try again
        return f"Error: {type(e).__name__}: {e}"


def react(question: str, complete, tools: dict[str, Tool] | None = None, max_steps: int = 6,
          system: str | None = None) -> Trace:
    """Run the ReAct loop; ``complete(messages, stop)`` returns the model's next turn as text."""
    tools = DEFAULT_TOOLS if tools is None else tools
    sys_prompt = (system or SYSTEM).format(tools="\n".join(f"- {t.description}" for t in tools.values()))
    scratch = ""
    trace = Trace(question)
    for _ in range(max_steps):
        messages = [{"role": "system", "content": sys_prompt},
                    {"role": "user", "content": f"Question: {question}"}]
        if scratch:
            messages.append({"role": "assistant", "content": scratch})
        reply = complete(messages, STOP)
        reply = reply.split("Observation:")[0]  # a server that ignores stop sequences
        step = parse_step(reply)
        if step.final is not None:
            trace.steps.append({"reply": reply, "step": step, "observation": None})
            trace.answer, trace.stopped = step.final, "final"
            return trace
        obs = f"Error: {step.error}" if step.error else run_tool(tools, step.action, step.action_input)
        trace.steps.append({"reply": reply, "step": step, "observation": obs})
        scratch += reply.rstrip() + f"\nObservation: {obs}\n"
    trace.stopped = "max_steps"
    return trace


class ScriptedModel:
    """A fake model that returns fixed replies in order and records the messages and stop sequences it got."""

    def __init__(self, replies: list[str]):
        self.replies, self.calls = list(replies), []

    def __call__(self, messages, stop=None) -> str:
        self.calls.append({"messages": [dict(m) for m in messages], "stop": stop})
        if not self.replies:
            raise RuntimeError("the scripted model ran out of replies")
        return self.replies.pop(0)


def openai_complete(client, model: str, temperature: float = 0.0, max_tokens: int = 128):
    """``complete`` over an OpenAI-compatible ``client`` (``openai.OpenAI(base_url=...)``)."""

    def complete(messages, stop=None) -> str:
        r = client.chat.completions.create(model=model, messages=messages, stop=stop, temperature=temperature,
                                           max_tokens=max_tokens)
        return r.choices[0].message.content or ""

    return complete


__all__ = ["STOP", "SYSTEM", "calculator", "food_lookup", "Tool", "registry", "DEFAULT_TOOLS", "Step", "parse_step",
           "Trace", "run_tool", "react", "ScriptedModel", "openai_complete"]
