"""Deprecated name, kept for one release: ``llmlab.flash_attention`` is ``llmlab.systems.flash_attention`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.flash_attention`` runs ``python -m llmlab.systems.flash_attention``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.flash_attention")
