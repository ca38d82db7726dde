"""Assemble prompt modules into one prompt that fits a token budget.

The rule (what the tests check):

1. render every module (full text); modules that render empty are left out;
2. while the joined text (sections separated by a blank line, in the modules' **original order**) has more than
   ``budget`` tokens, take the **lowest-priority** module that can still shrink (ties: the one listed *later*
   first, so that earlier material, usually more general, survives longer):
   - at full text with a summary template whose text is shorter: replace it by its summary;
   - otherwise, if not ``required``: drop it;
   required modules never shrink below their summary and are never dropped;
3. if nothing can shrink and the prompt is still too long: ``ValueError`` (the required parts alone do not fit).

``count`` is any ``str -> int``: :func:`word_count` for tests and sketches, :func:`tokenizer_count` with the
model's tokenizer for the real budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .module import PromptModule

SEPARATOR = "\n\n"


def word_count(text: str) -> int:
    """White-space separated words: a tokenizer-free stand-in for token counts."""
    return len(text.split())


def tokenizer_count(tokenizer):
    """``str -> int`` with a Hugging Face tokenizer (no special tokens)."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class Assembly:
    text: str
    tokens: int
    sections: dict = field(default_factory=dict)  # name -> text used, original order
    summarised: list = field(default_factory=list)  # names, in the order they were shortened
    dropped: list = field(default_factory=list)  # names, in the order they were dropped


def assemble(modules: list[PromptModule], budget: int, count=word_count, **variables) -> Assembly:
    """Render ``modules`` with ``variables`` and fit them into ``budget`` tokens (see the module docstring)."""
    names = [m.name for m in modules]
    if len(set(names)) != len(names):
        raise ValueError(f"module names must be unique, got {names}")
    state = {}  # name -> "full" | "summary"
    texts = {}
    for m in modules:
        t = m.render(**variables)
        if t:
            texts[m.name], state[m.name] = t, "full"
    out = Assembly("", 0)

    def joined():
        return SEPARATOR.join(texts[m.name] for m in modules if m.name in texts)

    order = sorted(range(len(modules)), key=lambda i: (modules[i].priority, -i))  # lowest priority, later first
    while count(joined()) > budget:
        for i in order:
            m = modules[i]
            if m.name not in texts:
                continue
            if state[m.name] == "full":
                s = m.render_summary(**variables)
                if s is not None and count(s) < count(texts[m.name]):
                    texts[m.name], state[m.name] = s, "summary"
                    out.summarised.append(m.name)
                    break
            if not m.required:
                del texts[m.name]
                out.dropped.append(m.name)
                break
        else:
            raise ValueError(f"the required modules alone need {count(joined())} tokens, more than the budget of {budget}")
    out.text = joined()
    out.tokens = count(out.text)
    out.sections = {m.name: texts[m.name] for m in modules if m.name in texts}
    return out


__all__ = ["SEPARATOR", "word_count", "tokenizer_count", "Assembly", "assemble"]
