"""Modular prompts for long-form writing (Week 7): prompt modules, budgeted assembly, rolling memory.

A long-form app (a novel-writing assistant) builds every request from parts of different importance: the system
role, a persona, the narrative style, world and character notes, a memory of earlier chapters, the outline, and
the current task. They do not all fit a context window, and when they do not, the least important parts must be
shortened or dropped first, never the task itself.

::

    from llmlab.prompts import PromptModule, assemble, RollingMemory, word_count
    mods = [PromptModule("system", "You are {{ role }}.", priority=100, required=True),
            PromptModule("style", "Write in {{ style }}.", priority=50),
            PromptModule("world", "{{ notes }}", priority=10, summary="{{ notes[:200] }}"),
            PromptModule("task", "Write chapter {{ n }}.", priority=100, required=True)]
    out = assemble(mods, budget=300, count=word_count, role="a novelist", style="the first person", notes=..., n=3)
    out.text, out.dropped, out.summarised

==============  ================================================================================================
file            what
==============  ================================================================================================
``module.py``   :class:`PromptModule`: a named Jinja2 template with a priority, optional summary template
``assemble.py`` :func:`assemble`: render and fit a token budget (summarise, then drop, lowest priority first)
``memory.py``   :class:`RollingMemory`: chapter summaries kept within a budget by merging the oldest
==============  ================================================================================================

Templates are rendered with Jinja2 (as Hugging Face renders chat templates), with ``StrictUndefined``: a missing
variable is an error, not an empty string.
"""

from .assemble import Assembly, assemble, tokenizer_count, word_count
from .memory import SUMMARY_PROMPT, RollingMemory, summary_or_fallback
from .module import PromptModule

__all__ = ["PromptModule", "assemble", "Assembly", "word_count", "tokenizer_count", "RollingMemory", "SUMMARY_PROMPT",
           "summary_or_fallback"]
