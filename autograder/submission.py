"""Reading a learner's submission before nbgrader sees it: broken files, renamed grade ids, edited tests.

nbgrader fails a whole submission (every notebook of the week) when one notebook is not valid JSON or
one grade id was renamed, and says only "see the traceback". Here each notebook is checked on its
own, so one broken file never costs the others, and every repair is written down as a note that
reaches the grades CSV and the learner's feedback.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat


class BadNotebook(Exception):
    """The file is not a notebook nbgrader can grade; the message says why, in a learner's words."""


MAX_NOTEBOOK_MB = 50


def load(path: Path) -> nbformat.NotebookNode:
    size = Path(path).stat().st_size
    if size > MAX_NOTEBOOK_MB * 1024 * 1024:
        raise BadNotebook(f"the notebook is {size / 2**20:.0f} MB (more than {MAX_NOTEBOOK_MB} MB): clear its "
                          "outputs (Edit > Clear Outputs of All Cells), save and submit again")
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise BadNotebook("the file is empty (0 bytes of notebook): was it saved before submitting?")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadNotebook(f"the file is not UTF-8 text ({e.reason} at byte {e.start}): not a notebook") from None
    except json.JSONDecodeError as e:
        raise BadNotebook(f"the file is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}): "
                          "the notebook is damaged; open it in JupyterLab or re-download it") from None
    if not isinstance(data, dict) or "cells" not in data:
        raise BadNotebook("the file is JSON but not a notebook (no cells)")
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as e:  # noqa: BLE001 - nbformat raises many kinds
        raise BadNotebook(f"the file is not a valid notebook ({type(e).__name__}: {str(e)[:200]})") from None
    return nb


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader") or {}


def _kind(meta: dict) -> tuple:
    return bool(meta.get("solution")), bool(meta.get("grade")), bool(meta.get("locked"))


def sanitize(nb, release) -> tuple[nbformat.NotebookNode, list[str]]:
    """Repair what nbgrader would choke on; return (notebook, notes).

    - A grade id that is not in the assignment (renamed): if an id of the same kind of cell is missing
      from the submission, the renamed cell gets it back (pairs are taken in notebook order);
      otherwise its nbgrader metadata is dropped and it runs as an ordinary cell.
    - Edited or deleted test/read-only cells are noted; nbgrader puts the instructor's version back
      (``OverwriteCells``, ``add_missing_cells``).
    """
    notes: list[str] = []
    rel_cells = {m["grade_id"]: (c, m) for c in release.cells if (m := _meta(c)).get("grade_id")}
    seen = {_meta(c).get("grade_id") for c in nb.cells}
    missing = [gid for gid in rel_cells if gid not in seen]
    unknown = [(i, c) for i, c in enumerate(nb.cells) if _meta(c) and _meta(c).get("grade_id") not in rel_cells]
    for i, cell in unknown:
        gid = _meta(cell).get("grade_id")
        same_kind = [m for m in missing if _kind(rel_cells[m][1]) == _kind(_meta(cell))]
        if same_kind:
            new = same_kind[0]
            missing.remove(new)
            orig = rel_cells[new][1]
            cell.metadata["nbgrader"] = {k: v for k, v in orig.items()}
            notes.append(f"cell {i}: grade id '{gid}' is not in the assignment (renamed?); graded as '{new}', "
                         "the id it replaced")
        else:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {i}: grade id '{gid}' is not in the assignment; it ran as an ordinary cell")
    by_id = {_meta(c).get("grade_id"): c for c in nb.cells if _meta(c)}
    for gid, (rel, meta) in rel_cells.items():
        if not (meta.get("locked") or meta.get("grade")) or meta.get("solution"):
            continue
        what = "test cell" if meta.get("grade") else "read-only cell"
        if gid not in by_id:
            notes.append(f"{what} '{gid}' was deleted: the original was put back")
        elif by_id[gid].source.strip() != rel.source.strip():
            notes.append(f"{what} '{gid}' was edited: the original was used")
    return nb, notes
