"""Grading one notebook: ``check`` for a learner, ``roundtrip`` for the instructor."""

from __future__ import annotations

from pathlib import Path

from .course import TempCourse, locate_source
from .engine import NotebookResult, grade_week, reason_of
from .results import CellResult


def check_notebook(notebook: str | Path) -> NotebookResult:
    """Grade a learner's notebook (hidden tests included) exactly as the instructor's autograde would."""
    notebook = Path(notebook)
    if not notebook.exists():
        raise FileNotFoundError(notebook)
    week, name = locate_source(notebook)
    with TempCourse({week: [name]}) as course:
        course.generate(week)
        return grade_week(course, "learner", week, {name: notebook}, [name])[0]


def check(notebook: str | Path) -> list[CellResult]:
    return check_notebook(notebook).cells


def roundtrip(source: str | Path) -> tuple[list[CellResult], list[CellResult]]:
    """(results of the solution submitted as a student, results of the untouched release notebook)."""
    source = Path(source)
    week, name = locate_source(source)
    with TempCourse({week: [name]}) as course:
        course.generate(week)
        released = course.root / "weeks" / week / f"{name}.ipynb"
        out = []
        for student, nb in (("solution", source), ("untouched", released)):
            out.append(grade_week(course, student, week, {name: nb}, [name])[0].cells)
    return out[0], out[1]


def _reason(result: dict) -> str:
    return reason_of(result)


def format_table(rows: list[CellResult], title: str = "", notes: list[str] = ()) -> str:
    width = max([len(r.grade_id) for r in rows] + [10])
    lines = [title] if title else []
    lines += [f"note: {n}" for n in notes]
    lines.append(f"{'cell':<{width}}  {'points':>9}  result")
    for r in rows:
        pts = "  error" if r.points is None else f"{r.points:g}/{r.max_points:g}"
        mark = {"passed": "PASS", "failed": "FAIL", "partial": "PART", "error": "ERROR", "missing": "MISSING"}[r.status]
        line = f"{r.grade_id:<{width}}  {pts:>9}  {mark}"
        if r.message:
            line += f"  {r.message}"
        lines.append(line)
        if r.hint:
            lines.append(f"{'':<{width}}  {'':>9}        hint: {r.hint}")
    total = sum(r.points or 0 for r in rows)
    possible = sum(r.max_points for r in rows)
    lines.append(f"{'total':<{width}}  {total:g}/{possible:g}")
    return "\n".join(lines)
