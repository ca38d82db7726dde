"""Per-cell time limits for grading, read from the course's table (the grader holds no course content).

The course keeps its limits next to its notebooks, in ``<solutions>/timeouts.toml``: a table per notebook,
keyed ``"weekNN/<notebook>"``, of ``grade_id = seconds``, and a ``[defaults]`` table (``graded``: cells with
a grade id, ``plain``: cells without one). Grade ids repeat across notebooks (``setup``, ``test_block``):
a limit belongs to its notebook's cell only.

:func:`timeout_for` is given the notebook by the grader (``GradingExecute`` knows which one it grades).
Called with the cell alone (nbgrader's own ``Execute``, e.g. validation), it uses the largest limit any
notebook gives that grade id: never shorter than the notebook's own.
"""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path

FILE_NAME = "timeouts.toml"
FALLBACK_DEFAULTS = {"graded": 60, "plain": 180}  # when the course has no table


@functools.lru_cache(maxsize=None)
def load(path: str | os.PathLike | None = None) -> dict:
    """``{"defaults": {...}, "notebooks": {"weekNN/name": {grade_id: seconds}}}`` from the course's table."""
    if path is None:
        from .course import SOLUTIONS  # the course's source folder (LLMLAB_SOLUTIONS may move it)

        path = SOLUTIONS / FILE_NAME
    path = Path(path)
    table = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    defaults = {**FALLBACK_DEFAULTS, **table.pop("defaults", {})}
    return {"defaults": defaults, "notebooks": {nb: dict(limits) for nb, limits in table.items()}}


def notebook_key(resources: dict | None) -> str | None:
    """``"weekNN/<notebook>"`` from nbgrader's resources (assignment and notebook ids), or None."""
    ids = (resources or {}).get("nbgrader", {})
    if ids.get("assignment") and ids.get("notebook"):
        return f"{ids['assignment']}/{ids['notebook']}"
    return None


def timeout_for(cell, notebook: str | None = None, table: dict | None = None) -> int:
    """Seconds allowed for ``cell`` of ``notebook`` ("weekNN/name"; None: the most generous notebook's)."""
    table = load() if table is None else table
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    if gid is None:
        return table["defaults"]["plain"]
    if notebook is not None:
        return table["notebooks"].get(notebook, {}).get(gid, table["defaults"]["graded"])
    limits = [nb[gid] for nb in table["notebooks"].values() if gid in nb]
    return max(limits, default=table["defaults"]["graded"])
