"""Deprecated name, kept for one release: ``llmlab.tensor_parallel`` is ``llmlab.systems.tensor_parallel`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.tensor_parallel`` runs ``python -m llmlab.systems.tensor_parallel``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.tensor_parallel")
