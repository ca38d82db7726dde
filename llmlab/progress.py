"""Progress bars for long loops.

tqdm writes to stderr by default; nbgrader gives 0 to a test cell that writes to stderr, and
papermill logs would fill with carriage returns. The course's bars write to stdout and refresh
at most once a second.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable=None, **kwargs):
    kwargs.setdefault("file", sys.stdout)
    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
