"""Grading one notebook: ``check`` for a learner, ``roundtrip`` for the instructor."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

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
    trip = run_roundtrip(source)
    return trip.solved, trip.untouched


@dataclass
class RoundTrip:
    """Both grading runs of one source notebook, and what they ran.

    ``solved``/``untouched``: the graded cells of the solution submitted as a student and of the
    untouched release. ``ran``/``ran_untouched``: the autograded notebooks, every cell as nbgrader's
    kernel ran it (the solution run *is* the execution of the solution: no second run is needed to
    know that it goes top to bottom). ``seconds``/``cpu_seconds``: wall and CPU time (this process
    and the kernels it reaped) of each grading run, keyed ``solution`` and ``untouched``.
    """

    source: Path
    solved: list[CellResult]
    untouched: list[CellResult]
    ran: nbformat.NotebookNode | None
    ran_untouched: nbformat.NotebookNode | None
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    def execution_problems(self) -> list[str]:
        """Why the solution did not run top to bottom with its hidden tests: [] when it did."""
        if self.ran is None:
            return ["nbgrader wrote no autograded notebook (the submission was not graded)"]
        return run_problems(nbformat.read(self.source, as_version=4), self.ran)

    def hidden_tests_missing(self) -> list[str]:
        """Test cells of the untouched release that were graded without their hidden tests ([]: none)."""
        if self.ran_untouched is None:
            return ["nbgrader wrote no autograded notebook for the untouched release"]
        source = nbformat.read(self.source, as_version=4)
        return [f"{gid}: graded without its hidden tests" for gid, hidden in _hidden_tests(source).items()
                if hidden not in _by_grade_id(self.ran_untouched).get(gid, {}).get("source", "")]


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_roundtrip(source: str | Path) -> RoundTrip:
    """Generate the release of ``source`` in a temporary course and autograde, through nbgrader, the
    solution submitted as a student and then the untouched release."""
    source = Path(source)
    week, name = locate_source(source)
    trip = RoundTrip(source, [], [], None, None)
    with TempCourse({week: [name]}) as course:
        course.generate(week)
        released = course.root / "weeks" / week / f"{name}.ipynb"
        for student, nb in (("solution", source), ("untouched", released)):
            wall, cpu = time.perf_counter(), _cpu_seconds()
            cells = grade_week(course, student, week, {name: nb}, [name])[0].cells
            trip.seconds[student], trip.cpu_seconds[student] = time.perf_counter() - wall, _cpu_seconds() - cpu
            done = course.autograded(student, week, name)
            ran = nbformat.read(done, as_version=4) if done.exists() else None
            if student == "solution":
                trip.solved, trip.ran = cells, ran
            else:
                trip.untouched, trip.ran_untouched = cells, ran
    return trip


def _by_grade_id(nb) -> dict:
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells if c.metadata.get("nbgrader")}


def _hidden_tests(nb) -> dict[str, str]:
    """grade id -> the text of its ``### BEGIN HIDDEN TESTS`` block(s), for the cells that have one."""
    out = {}
    for gid, cell in _by_grade_id(nb).items():
        if "### BEGIN HIDDEN TESTS" in cell.source:
            out[gid] = cell.source[cell.source.index("### BEGIN HIDDEN TESTS"):]
    return out


def run_problems(source, ran) -> list[str]:
    """What papermill would have refused in ``ran`` (an executed copy of ``source``): a code cell that
    raised or was not run; plus test cells that ran without their hidden tests. [] means the notebook
    ran top to bottom, hidden tests included."""
    problems = []
    for i, cell in enumerate(ran.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        label = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {i}"
        errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errs and "raises-exception" not in cell.metadata.get("tags", []):
            problems.append(f"{label}: {errs[0].get('ename')}: {str(errs[0].get('evalue', '')).strip()[:300]}")
        elif cell.get("execution_count") is None:
            problems.append(f"{label}: not run")
    code = [c.source.strip() for c in source.cells if c.cell_type == "code" and c.source.strip()]
    if len(code) != sum(1 for c in ran.cells if c.cell_type == "code" and c.source.strip()):
        problems.append(f"the graded notebook has a different number of code cells than the source ({len(code)})")
    ran_ids = _by_grade_id(ran)
    for gid, hidden in _hidden_tests(source).items():
        if hidden not in ran_ids.get(gid, {}).get("source", ""):
            problems.append(f"{gid}: ran without its hidden tests")
    return problems


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
