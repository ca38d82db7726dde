"""Deprecated name, kept for one release: ``llmlab.triton_attention`` is ``llmlab.systems.triton_attention`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.triton_attention`` runs ``python -m llmlab.systems.triton_attention``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.triton_attention")
