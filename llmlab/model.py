"""Deprecated name, kept for one release: ``llmlab.model`` is ``llmlab.models.gpt`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.model`` runs ``python -m llmlab.models.gpt``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.models.gpt")
