"""Deprecated name, kept for one release: ``llmlab.distributed`` is ``llmlab.systems.distributed`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.distributed`` runs ``python -m llmlab.systems.distributed``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.distributed")
