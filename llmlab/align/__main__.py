"""``python -m llmlab.align``: the RLHF pipeline (see :mod:`llmlab.align.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
