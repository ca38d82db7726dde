"""A prompt module: one named part of a prompt, a Jinja2 template with a priority.

``priority``: higher is more important (assembly shortens or drops the lowest first). ``required``: never dropped
(the system role, the current task). ``summary``: an optional shorter template used before dropping the module
(for example the first paragraph of the world notes, or a pre-computed summary passed in as a variable).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jinja2


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _env().from_string(source)


@dataclass(frozen=True)
class PromptModule:
    name: str
    template: str
    priority: int = 0
    required: bool = False
    summary: str | None = None  # a shorter template, tried before dropping
    header: str | None = None  # e.g. "## World notes": put above the rendered text

    def _wrap(self, text: str) -> str:
        return f"{self.header}\n{text}" if self.header and text else text

    def render(self, **variables) -> str:
        """The full text (stripped; empty if the template renders to white space)."""
        return self._wrap(_compile(self.template).render(**variables).strip())

    def render_summary(self, **variables) -> str | None:
        """The summary text, or None without a summary template."""
        if self.summary is None:
            return None
        return self._wrap(_compile(self.summary).render(**variables).strip())


__all__ = ["PromptModule"]
