"""Instructor grading of a folder of submissions into a grades CSV.

The folder uses nbgrader's layout, ``<dir>/<student>/<weekNN>/<notebook>.ipynb`` (a course root
holding ``submitted/`` works too). Each (student, week) is autograded by nbgrader in a temporary
course root; the CSV has one row per student x notebook x graded cell. A submission that could not
be graded is marked ``error`` with the reason, never as 0 points; a notebook that was not handed
in is marked ``missing``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .check import _reason
from .course import WEEK, SOLUTIONS, TempCourse, grade_ids, notebooks
from .results import CellResult, read_results

FIELDS = ["student", "assignment", "notebook", "cell", "points", "max_points", "status", "message"]


def find_submissions(folder: Path) -> dict[tuple[str, str], list[Path]]:
    folder = Path(folder)
    if (folder / "submitted").is_dir():
        folder = folder / "submitted"
    found: dict[tuple[str, str], list[Path]] = {}
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for week_dir in sorted(p for p in student_dir.iterdir() if p.is_dir() and WEEK.match(p.name)):
            if (SOLUTIONS / week_dir.name).is_dir():
                found[(student_dir.name, week_dir.name)] = sorted(week_dir.glob("*.ipynb"))
    return found


def grade(folder: str | Path, out_csv: str | Path, progress: bool = True) -> list[dict]:
    subs = find_submissions(Path(folder))
    if not subs:
        raise FileNotFoundError(f"{folder}: no <student>/<weekNN>/*.ipynb submissions found")
    week_list = sorted({w for _, w in subs})
    rows: list[dict] = []
    with TempCourse({w: None for w in week_list}) as course:
        for w in week_list:
            course.generate(w)
        for (student, week), files in _progress(subs.items(), progress):
            expected = {nb.stem: grade_ids(week, nb.stem) for nb in notebooks(week)}
            handed_in = {f.stem: f for f in files if f.stem in expected}
            for name, f in handed_in.items():
                course.submit(student, week, f, name)
            result = course.autograde(week, student) if handed_in else {"success": True}
            for name, cells in expected.items():
                if name not in handed_in:
                    results = [CellResult(g, 0.0, p, "missing", "not handed in") for g, p in cells]
                else:
                    results = read_results(course.db_url, week, name, student,
                                           course.autograded(student, week, name), cells)
                    if not result["success"]:
                        reason = _reason(result)
                        results = [CellResult(r.grade_id, None, r.max_points, "error", reason) for r in results]
                for r in results:
                    rows.append(dict(student=student, assignment=week, notebook=name, cell=r.grade_id,
                                     points="" if r.points is None else r.points, max_points=r.max_points,
                                     status=r.status, message=r.message))
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    return rows


def summary(rows: list[dict]) -> str:
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        key = (r["student"], f"{r['assignment']}/{r['notebook']}")
        pts = by.setdefault(key, [0.0, 0.0, 0.0])
        pts[0] += float(r["points"] or 0)
        pts[1] += float(r["max_points"])
        pts[2] += r["status"] == "error"
    lines = [f"{'student':<16} {'notebook':<36} {'points':>10}"]
    for (student, nb), (p, m, err) in sorted(by.items()):
        lines.append(f"{student:<16} {nb:<36} {('ERROR' if err else f'{p:g}/{m:g}'):>10}")
    return "\n".join(lines)


def _progress(items, enabled):
    items = list(items)
    if not enabled:
        return items
    from llmlab.progress import progress

    return progress(items, desc="grading", unit="submission")
