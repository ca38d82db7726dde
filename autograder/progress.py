"""``python -m autograder progress [weeks_dir]``: the learner's score per week, as bars.

Every course notebook found in ``weeks_dir/weekNN/`` is graded the way ``check`` grades it (hidden
tests included). Results are cached by the SHA-256 of the notebook and of its source (and the grader
version), so only the notebooks changed since the last run are graded again: the second run is fast.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import course as course_mod
from .course import TempCourse, grade_ids, notebooks
from .engine import NotebookResult, grade_week
from .grade import GRADER_VERSION, write_atomic


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llmlab" / "progress.json"


def _key(nb: Path, week: str) -> str:
    h = hashlib.sha256(GRADER_VERSION.encode())
    h.update(nb.read_bytes())
    h.update((course_mod.SOLUTIONS / week / nb.name).read_bytes())
    return h.hexdigest()


def progress(weeks_dir: str | Path = "weeks", cache: Path | None = None) -> list[dict]:
    """[{week, points, max_points, notebooks: [(name, points, max, status)]}] for every course week."""
    weeks_dir = Path(weeks_dir)
    cache = cache or default_cache()
    try:
        memo = json.loads(cache.read_text())
    except (OSError, ValueError):
        memo = {}
    out = []
    for week in course_mod.weeks():
        names = [nb.stem for nb in notebooks(week)]
        found = {n: weeks_dir / week / f"{n}.ipynb" for n in names if (weeks_dir / week / f"{n}.ipynb").is_file()}
        keys = {n: _key(p, week) for n, p in found.items()}
        todo = {n: p for n, p in found.items() if keys[n] not in memo}
        if todo:
            with TempCourse({week: list(todo)}) as c:
                c.generate(week)
                for r in grade_week(c, "learner", week, todo, list(todo)):
                    memo[keys[r.notebook]] = r.to_dict()
        rows = []
        for n in names:
            mx = sum(p for _, p in grade_ids(week, n))
            if n not in found:
                rows.append((n, 0.0, mx, "missing"))
                continue
            r = NotebookResult.from_dict(memo[keys[n]])
            err = any(c.status == "error" for c in r.cells)
            rows.append((n, sum(c.points or 0 for c in r.cells), mx, "error" if err else "graded"))
        out.append({"week": week, "points": sum(r[1] for r in rows), "max_points": sum(r[2] for r in rows),
                    "notebooks": rows})
    write_atomic(cache, json.dumps(memo))
    return out


def bar(frac: float, width: int = 24) -> str:
    full = int(round(frac * width))
    return "█" * full + "░" * (width - full)


def format_progress(weeks: list[dict]) -> str:
    lines = []
    for w in weeks:
        frac = w["points"] / w["max_points"] if w["max_points"] else 0.0
        lines.append(f"{w['week']}  {bar(frac)}  {w['points']:>5g}/{w['max_points']:<4g} {frac:>4.0%}")
        for name, pts, mx, status in w["notebooks"]:
            tail = {"missing": "  (not in this folder)", "error": "  (could not be graded: run check on it)"}.get(status, "")
            lines.append(f"    {name:<32} {pts:>5g}/{mx:<4g}{tail}")
    total = sum(w["points"] for w in weeks)
    possible = sum(w["max_points"] for w in weeks)
    lines.append(f"course  {bar(total / possible if possible else 0)}  {total:>5g}/{possible:<4g}")
    return "\n".join(lines)

