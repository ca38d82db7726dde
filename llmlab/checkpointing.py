"""Deprecated name, kept for one release: ``llmlab.checkpointing`` is ``llmlab.systems.checkpointing`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.checkpointing`` runs ``python -m llmlab.systems.checkpointing``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.checkpointing")
