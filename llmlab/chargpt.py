"""Deprecated name, kept for one release: ``llmlab.chargpt`` is ``llmlab.train.simple`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.chargpt`` runs ``python -m llmlab.train.simple``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.train.simple")
