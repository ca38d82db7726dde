"""Rolling memory for long-form writing: a summary per chapter, kept within a token budget.

After each chapter the app adds a short summary (written by the model, or by hand). When the memory grows over
``budget`` tokens, the **two oldest** entries are merged into one by ``merge(a, b) -> str`` (default: a model call
in an app; here any function, e.g. keeping the first sentence of each), until it fits or one entry is left; the
most recent chapters stay verbatim, the distant past is compressed, as a reader remembers a book. ``facts`` are
pinned lines (names, ages, places) that are never merged away: what a fact-recall check tests.

A chapter's summary is best written by the model itself (:data:`SUMMARY_PROMPT`); a small model's summary can be
empty, or longer than the chapter's memory share. :func:`summary_or_fallback` keeps the model's summary when it
is usable and falls back to the rule-based one (the first sentences) when it is not, and says which it used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .assemble import word_count


def first_sentences(a: str, b: str) -> str:
    """A model-free merge: the first sentence of each entry."""
    def first(s):
        s = s.strip()
        for end in (". ", "。", "! ", "? "):
            if end in s:
                return s[: s.index(end) + len(end)].strip()
        return s
    return f"{first(a)} {first(b)}".strip()


SUMMARY_PROMPT = "Summarise the chapter in one or two sentences. Keep the names and the facts."


def summary_or_fallback(summary: str | None, chapter: str, max_words: int, count=word_count) -> tuple[str, str]:
    """``(summary, "model")`` when the model's summary is non-empty and at most ``max_words`` (by ``count``);
    else ``(first sentences of the chapter, "fallback")``, itself cut to ``max_words`` words."""
    summary = (summary or "").strip()
    if summary and count(summary) <= max_words:
        return summary, "model"
    rule = first_sentences(chapter, "")
    return " ".join(rule.split()[:max_words]), "fallback"


@dataclass
class RollingMemory:
    budget: int
    count: object = word_count
    merge: object = first_sentences
    entries: list = field(default_factory=list)  # [(label, text)], oldest first
    facts: list = field(default_factory=list)

    def add(self, label: str, summary: str) -> None:
        self.entries.append((label, summary.strip()))
        self._fit()

    def pin(self, fact: str) -> None:
        if fact not in self.facts:
            self.facts.append(fact)
        self._fit()

    def render(self) -> str:
        lines = [f"- {f}" for f in self.facts] + [f"{label}: {text}" for label, text in self.entries]
        return "\n".join(lines)

    def tokens(self) -> int:
        return self.count(self.render())

    def _fit(self) -> None:
        while self.tokens() > self.budget and len(self.entries) > 1:
            (la, a), (lb, b) = self.entries[0], self.entries[1]
            label = f"{la.split('-')[0]}-{lb.split('-')[-1]}" if la != lb else la
            self.entries[:2] = [(label, self.merge(a, b))]


__all__ = ["RollingMemory", "SUMMARY_PROMPT", "first_sentences", "summary_or_fallback"]
