"""Reading what nbgrader decided: points per graded cell, and why a cell failed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class CellResult:
    grade_id: str
    points: float | None  # None: the notebook could not be graded
    max_points: float
    status: str  # passed | failed | partial | error
    message: str = ""  # first line of the failure
    hint: str = ""  # the "likely mistake" line, when the test gave one

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# errors written by autograder.execute, the most telling first
KERNEL_EVENTS = ("LeftoverProcesses", "CellTimeoutError", "KernelDied", "NotRun")


def _errors(cell) -> list:
    errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    # the grader's own account of a timeout or a dead kernel says more than the KeyboardInterrupt under it
    rank = {name: i for i, name in enumerate(KERNEL_EVENTS)}
    return sorted(errs, key=lambda o: rank.get(o.get("ename"), len(rank)))


def _failure_text(cell) -> tuple[str, str]:
    """(first line of the failure, likely-mistake hint) from a graded cell's outputs."""
    for out in _errors(cell):
        if out.get("output_type") == "error":
            evalue = ANSI.sub("", out.get("evalue", "")).strip()
            lines = evalue.splitlines() or [""]
            hint = next((ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("likely mistake:")), "")
            first = f"{out.get('ename', 'Error')}: {lines[0]}".rstrip(": ")
            if out.get("ename") == "NotImplementedError":
                first = "NotImplementedError: an answer cell above is not filled in yet"
            return first, hint
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            text = ANSI.sub("", out.get("text", "")).strip().splitlines()
            return f"the cell wrote to stderr (nbgrader gives such a cell 0): {text[0] if text else ''}", ""
    return "", ""


def read_results(gradebook_url: str, week: str, name: str, student: str, autograded: Path,
                 expected: list[tuple[str, float]]) -> list[CellResult]:
    """One CellResult per graded cell of the source notebook, in notebook order."""
    from nbgrader.api import Gradebook, MissingEntry

    scores: dict[str, tuple[float, float]] = {}
    with Gradebook(gradebook_url) as gb:
        try:
            sub = gb.find_submission_notebook(name, week, student)
        except MissingEntry:
            sub = None
        if sub is not None:
            for g in sub.grades:
                scores[g.name] = (g.score, g.max_score)
    cells, before = {}, {}
    if autograded.exists():
        nb = nbformat.read(autograded, as_version=4)
        event = ""  # the latest timeout / dead kernel above the current cell
        for i, c in enumerate(nb.cells):
            gid = c.metadata.get("nbgrader", {}).get("grade_id")
            cells[gid] = c
            before[gid] = event
            errs = [o for o in c.get("outputs", []) if o.get("output_type") == "error" and o.get("ename") in KERNEL_EVENTS
                    and o.get("ename") not in ("NotRun", "LeftoverProcesses")]
            if errs:
                what = "ran out of time" if errs[0]["ename"] == "CellTimeoutError" else "stopped the kernel"
                event = f"{'cell ' + gid if gid else f'cell {i}'} {what}"
    results = []
    for gid, max_points in expected:
        if gid not in scores:
            results.append(CellResult(gid, None, max_points, "error", "the notebook could not be graded"))
            continue
        score, max_score = scores[gid]
        msg, hint = _failure_text(cells[gid]) if gid in cells else ("", "")
        if msg and before.get(gid) and not msg.startswith(KERNEL_EVENTS):
            msg += f" (earlier, {before[gid]})"
        status = "passed" if score >= max_score else ("partial" if score > 0 else "failed")
        if status != "passed" and not msg:
            msg = "no points (the cell ran but did not pass)"
        results.append(CellResult(gid, float(score), float(max_score), status, msg if status != "passed" else "", hint))
    return results
