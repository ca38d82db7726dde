"""Grading one notebook: ``check`` for a learner, ``roundtrip`` for the instructor."""

from __future__ import annotations

from pathlib import Path

from .course import TempCourse, grade_ids, locate_source
from .results import CellResult, read_results


def check(notebook: str | Path) -> list[CellResult]:
    """Grade a learner's notebook (hidden tests included) exactly as the instructor's autograde would."""
    notebook = Path(notebook)
    if not notebook.exists():
        raise FileNotFoundError(notebook)
    week, name = locate_source(notebook)
    with TempCourse({week: [name]}) as course:
        course.generate(week)
        course.submit("learner", week, notebook, name)
        result = course.autograde(week, "learner")
        rows = read_results(course.db_url, week, name, "learner", course.autograded("learner", week, name),
                            grade_ids(week, name))
        if not result["success"]:
            reason = _reason(result)
            rows = [CellResult(r.grade_id, None, r.max_points, "error", reason) for r in rows]
    return rows


def roundtrip(source: str | Path) -> tuple[list[CellResult], list[CellResult]]:
    """(results of the solution submitted as a student, results of the untouched release notebook)."""
    source = Path(source)
    week, name = locate_source(source)
    with TempCourse({week: [name]}) as course:
        course.generate(week)
        released = course.root / "weeks" / week / f"{name}.ipynb"
        course.submit("solution", week, source, name)
        course.submit("untouched", week, released, name)
        out = []
        for student in ("solution", "untouched"):
            result = course.autograde(week, student)
            rows = read_results(course.db_url, week, name, student, course.autograded(student, week, name),
                                grade_ids(week, name))
            if not result["success"]:
                rows = [CellResult(r.grade_id, None, r.max_points, "error", _reason(result)) for r in rows]
            out.append(rows)
    return out[0], out[1]


def _reason(result: dict) -> str:
    text = (result.get("error") or result.get("log") or "nbgrader failed").strip().splitlines()
    important = [ln for ln in text if "rror" in ln or "imeout" in ln or "changed" in ln]
    return (important[-1] if important else text[-1]).strip()[:300]


def format_table(rows: list[CellResult], title: str = "") -> str:
    width = max([len(r.grade_id) for r in rows] + [10])
    lines = [title] if title else []
    lines.append(f"{'cell':<{width}}  {'points':>9}  result")
    for r in rows:
        pts = "  error" if r.points is None else f"{r.points:g}/{r.max_points:g}"
        mark = {"passed": "PASS", "failed": "FAIL", "partial": "PART", "error": "ERROR"}[r.status]
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
