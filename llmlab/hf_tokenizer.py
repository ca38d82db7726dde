"""Deprecated name, kept for one release: ``llmlab.hf_tokenizer`` is ``llmlab.tokenization.hf`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.hf_tokenizer`` runs ``python -m llmlab.tokenization.hf``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.tokenization.hf")
