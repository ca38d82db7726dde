"""Deprecated name, kept for one release: ``llmlab.tokendata`` is ``llmlab.train.batches`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.tokendata`` runs ``python -m llmlab.train.batches``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.train.batches")
