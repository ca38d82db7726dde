"""Deprecated name, kept for one release: ``llmlab.amp`` is ``llmlab.systems.amp`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.amp`` runs ``python -m llmlab.systems.amp``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.amp")
