"""Deprecated name, kept for one release: ``llmlab.trainer`` is ``llmlab.train.trainer`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.trainer`` runs ``python -m llmlab.train.trainer``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.train.trainer")
