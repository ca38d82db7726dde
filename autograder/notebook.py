"""Keeping source notebooks clean: clear outputs, set the course kernel, lint nbgrader metadata."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from .nbconfig import KERNEL_NAME

KERNELSPEC = {"name": KERNEL_NAME, "display_name": "Python (LLM Lab)", "language": "python"}
GRADE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
NB_KEYS = {"schema_version", "grade", "solution", "locked", "task", "grade_id", "points"}


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def lint(nb, name: str = "notebook") -> list[str]:
    """Problems that would break nbgrader or the course conventions (empty list = clean)."""
    problems: list[str] = []
    seen: set[str] = set()
    answers = tests = 0
    for i, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        where = f"{name} cell {i}"
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{where}: has outputs (source notebooks are kept cleared)")
        if not meta:
            if "### BEGIN SOLUTION" in cell.source or "### BEGIN HIDDEN TESTS" in cell.source:
                problems.append(f"{where}: has solution/hidden-test markers but no nbgrader metadata")
            continue
        extra = set(meta) - NB_KEYS
        if extra:
            problems.append(f"{where}: unknown nbgrader keys {sorted(extra)} (schema 3 allows none)")
        gid = meta.get("grade_id", "")
        if not GRADE_ID.match(gid or ""):
            problems.append(f"{where}: grade_id {gid!r} must match ^[a-zA-Z0-9_-]+$")
        if gid in seen:
            problems.append(f"{where}: duplicate grade_id {gid!r}")
        seen.add(gid)
        if meta.get("solution"):
            answers += 1
            if cell.cell_type == "code" and "### BEGIN SOLUTION" not in cell.source:
                problems.append(f"{where} ({gid}): answer cell without ### BEGIN SOLUTION")
        if meta.get("grade"):
            tests += 1
            if not meta.get("points"):
                problems.append(f"{where} ({gid}): graded cell without points")
            if cell.cell_type == "code" and "### BEGIN HIDDEN TESTS" not in cell.source:
                problems.append(f"{where} ({gid}): test cell without hidden tests")
    if answers < 3:
        problems.append(f"{name}: {answers} graded answer cells (the course asks for at least 3)")
    if tests < 3:
        problems.append(f"{name}: {tests} test cells (the course asks for at least 3)")
    head = "\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
    for word in ("目标", "任务", "验收"):
        if word not in head:
            problems.append(f"{name}: the summary near the top lacks {word} (目标 / 任务 / 验收)")
    return problems


def normalize(path: str | Path) -> list[str]:
    """Rewrite a source notebook in place: outputs cleared, course kernel, stable JSON. Returns lint problems."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        # papermill/jupyter execution metadata does not belong in the source
        for key in ("execution", "papermill", "collapsed", "scrolled", "jupyter"):
            cell.metadata.pop(key, None)
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return lint(nb, path.name)
