"""Deprecated name, kept for one release: ``llmlab.ds_train`` is ``llmlab.systems.ds_train`` (use that in new code).

Importing it gives that module object itself; ``python -m llmlab.ds_train`` runs ``python -m llmlab.systems.ds_train``.
"""

from llmlab._compat import alias

alias(__name__, "llmlab.systems.ds_train")
