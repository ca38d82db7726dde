"""``make release``: regenerate ``weeks/`` from ``solutions/`` with nbgrader."""

from __future__ import annotations

import shutil
from pathlib import Path

from .course import RELEASE, TempCourse, weeks


def release(selection: list[str] | None = None, dest: Path = RELEASE) -> list[Path]:
    """Release the given weeks (default: all) into ``dest``; returns the notebooks written.

    A whole week is replaced, so a notebook deleted from solutions/ disappears from weeks/ too.
    """
    written = []
    for week in selection or weeks():
        with TempCourse({week: None}) as course:
            course.generate(week)
            out = course.root / "weeks" / week
            target = Path(dest) / week
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(out, target)
            written += sorted(target.glob("*.ipynb"))
    return written
