"""Learner feedback: nbgrader's feedback HTML without hidden tests, and a one-page summary per student.

nbgrader's ``ClearHiddenTests`` removes the hidden tests from the cell sources, but a failing hidden
test still shows its code in the traceback (IPython prints the failing line). ``ShortTracebacks``
keeps only the error's name and message in graded cells: the message is written for learners
(expected / got / likely mistake), the test code is not shown.
"""

from __future__ import annotations

import html
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor

from .results import ANSI


class ShortTracebacks(NbGraderPreprocessor):
    """In graded cells, replace each traceback by its last line (``Error: message``)."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {ANSI.sub('', out.get('evalue', ''))}"]
        return cell, resources


STATUS = {"passed": ("PASS", "#1a7f37"), "failed": ("FAIL", "#cf222e"), "partial": ("PART", "#9a6700"),
          "error": ("ERROR", "#8250df"), "missing": ("MISSING", "#57606a")}


def student_index(student: str, records: list[dict], dest: Path) -> Path:
    """``feedback/<student>/index.html``: every notebook's cells, points, messages and notes."""
    rows = []
    total = possible = 0.0
    for rec in sorted(records, key=lambda r: r["week"]):
        for nb in rec["notebooks"]:
            link = Path(rec["week"]) / f"{nb['notebook']}.html"
            has_html = (dest.parent / link).exists()
            title = f"{rec['week']}/{nb['notebook']}"
            title = f'<a href="{html.escape(str(link))}">{html.escape(title)}</a>' if has_html else html.escape(title)
            pts = sum(c["points"] or 0 for c in nb["cells"])
            mx = sum(c["max_points"] for c in nb["cells"])
            total, possible = total + pts, possible + mx
            rows.append(f'<tr class="nb"><th colspan="4">{title} &nbsp; {pts:g} / {mx:g}</th></tr>')
            for note in nb.get("notes", []):
                rows.append(f'<tr><td></td><td colspan="3" class="note">note: {html.escape(note)}</td></tr>')
            for c in nb["cells"]:
                label, color = STATUS.get(c["status"], (c["status"], "#000"))
                pts_s = "&ndash;" if c["points"] is None else f"{c['points']:g}"
                msg = html.escape(c.get("message") or "")
                if c.get("hint"):
                    msg += f"<br><i>hint: {html.escape(c['hint'])}</i>"
                rows.append(f'<tr><td>{html.escape(c["grade_id"])}</td><td>{pts_s} / {c["max_points"]:g}</td>'
                            f'<td style="color:{color};font-weight:bold">{label}</td><td>{msg}</td></tr>')
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Feedback: {html.escape(student)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em .8em;text-align:left;vertical-align:top}}
tr.nb th{{background:#f6f8fa;border-top:1px solid #ccc}}.note{{color:#57606a}}</style></head><body>
<h1>LLM Lab feedback: {html.escape(student)}</h1><p>Total: <b>{total:g} / {possible:g}</b>.
Each failing test says what was expected, what your code gave and, often, the likely mistake.
Hidden tests are run but not shown.</p>
<table>{''.join(rows)}</table></body></html>
"""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(page, encoding="utf-8")
    return dest
