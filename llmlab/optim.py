"""Deprecated name, kept for one release: ``llmlab.optim`` is ``llmlab.train.optim`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.optim`` runs ``python -m llmlab.train.optim``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.train.optim")
