"""The old flat module names (``llmlab.model``, ``llmlab.chargpt``, ...), kept for one release.

Each old file calls :func:`alias`: importing it yields the new module object itself (so monkeypatching
and ``isinstance`` behave as before), and ``python -m llmlab.<old>`` runs ``python -m <new>``.
"""

import importlib
import runpy
import sys


def alias(name: str, new: str) -> None:
    """Make module ``name`` (an old name being imported, or ``"__main__"``) be module ``new``."""
    if name == "__main__":
        runpy.run_module(new, run_name="__main__", alter_sys=True)
    else:
        sys.modules[name] = importlib.import_module(new)
