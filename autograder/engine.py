"""Grading one submission (one student x one week) with nbgrader in a course root; the unit of work of
``check``, ``progress`` and the cohort grader.

The steps: each expected notebook is read and repaired on its own (``autograder.submission``); the
good ones are put in nbgrader's ``submitted/<student>/<week>/`` with the student's other plain files
(never symlinks); ``nbgrader autograde`` runs (with ``autograder.execute.GradingExecute``, sandboxed
when the course was configured so); the scores come from nbgrader's gradebook and the messages from
the autograded notebooks (``autograder.results``); optionally nbgrader writes the feedback HTML.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .course import TempCourse, grade_ids
from .results import CellResult, read_results
from .submission import BadNotebook, load, sanitize

SKIP_DIRS = {".ipynb_checkpoints", "__pycache__", ".git"}
MAX_EXTRA_FILE = 1_000_000  # bytes: the student's own extra files (helpers, data) copied into the submission


@dataclass
class NotebookResult:
    notebook: str
    cells: list[CellResult]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"notebook": self.notebook, "notes": self.notes, "cells": [asdict(c) for c in self.cells]}

    @classmethod
    def from_dict(cls, d: dict) -> "NotebookResult":
        return cls(d["notebook"], [CellResult(**c) for c in d["cells"]], d.get("notes", []))


def reason_of(result: dict) -> str:
    """The one line that explains why nbgrader failed."""
    text = (result.get("error") or result.get("log") or "nbgrader failed").strip().splitlines()
    important = [ln for ln in text if "rror" in ln or "imeout" in ln or "changed" in ln]
    return (important[-1] if important else text[-1]).strip()[:300]


def errors(cells: list[tuple[str, float]], reason: str) -> list[CellResult]:
    return [CellResult(gid, None, pts, "error", reason) for gid, pts in cells]


def grade_week(course: TempCourse, student: str, week: str, handed_in: dict[str, Path],
               expected: list[str], extra_dir: Path | None = None,
               feedback: bool = False) -> list[NotebookResult]:
    """Grade ``handed_in`` (notebook name -> file) of ``student`` for ``week`` in ``course`` (generated).

    ``expected`` lists the week's notebooks; those not handed in are ``missing``. ``extra_dir``: the
    student's submission folder, whose other plain files travel with the notebooks.
    """
    for sub in ("submitted", "autograded", "feedback"):
        shutil.rmtree(course.root / sub / student / week, ignore_errors=True)
    dest = course.root / "submitted" / student / week
    dest.mkdir(parents=True)
    if extra_dir is not None:
        _copy_plain_files(extra_dir, dest)
    out: dict[str, NotebookResult] = {}
    to_grade = []
    for name in expected:
        cells = grade_ids(week, name)
        if name not in handed_in:
            out[name] = NotebookResult(name, [CellResult(g, 0.0, p, "missing", "not handed in") for g, p in cells])
            continue
        try:
            nb = load(handed_in[name])
        except BadNotebook as e:
            out[name] = NotebookResult(name, errors(cells, str(e)))
            (dest / f"{name}.ipynb").unlink(missing_ok=True)
            continue
        release = nbformat.read(course.root / "weeks" / week / f"{name}.ipynb", as_version=4)
        nb, notes = sanitize(nb, release)
        nbformat.write(nb, dest / f"{name}.ipynb")
        out[name] = NotebookResult(name, [], notes)
        to_grade.append(name)
    # notebooks of other names are not graded: keep them out of nbgrader's way
    for extra in dest.glob("*.ipynb"):
        if extra.stem not in to_grade:
            extra.unlink()
    if to_grade:
        result = course.autograde(week, student)
        for name in to_grade:
            cells = grade_ids(week, name)
            if not result["success"]:
                out[name].cells = errors(cells, reason_of(result))
            else:
                out[name].cells = read_results(course.db_url, week, name, student,
                                               course.autograded(student, week, name), cells)
        if feedback and result["success"]:
            fb = course.api().generate_feedback(week, student, force=True)
            if not fb["success"]:
                for name in to_grade:
                    out[name].notes.append(f"no feedback HTML: {reason_of(fb)}")
    return [out[name] for name in expected]


def _copy_plain_files(src: Path, dest: Path) -> None:
    """Copy the student's regular files (not symlinks: a link to /etc/shadow must not be followed)."""
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith(".") or p.suffix == ".ipynb" or p.is_symlink() or not p.is_file():
                continue
            if p.stat().st_size > MAX_EXTRA_FILE:
                continue
            target = dest / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
