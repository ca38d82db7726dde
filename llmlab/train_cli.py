"""Deprecated name, kept for one release: ``llmlab.train_cli`` is ``llmlab.train.cli`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.train_cli`` runs ``python -m llmlab.train.cli``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.train.cli")
