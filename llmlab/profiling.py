"""Deprecated name, kept for one release: ``llmlab.profiling`` is ``llmlab.systems.profiling`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.profiling`` runs ``python -m llmlab.systems.profiling``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.profiling")
