"""Deprecated name, kept for one release: ``llmlab.zero_ds_demo`` is ``llmlab.systems.zero_ds_demo`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.zero_ds_demo`` runs ``python -m llmlab.systems.zero_ds_demo``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.zero_ds_demo")
