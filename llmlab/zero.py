"""Deprecated name, kept for one release: ``llmlab.zero`` is ``llmlab.systems.zero`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.zero`` runs ``python -m llmlab.systems.zero``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.zero")
