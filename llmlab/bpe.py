"""Deprecated name, kept for one release: ``llmlab.bpe`` is ``llmlab.tokenization.bpe`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.bpe`` runs ``python -m llmlab.tokenization.bpe``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.tokenization.bpe")
