"""Deprecated name, kept for one release: ``llmlab.memory`` is ``llmlab.systems.memory`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.memory`` runs ``python -m llmlab.systems.memory``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.memory")
