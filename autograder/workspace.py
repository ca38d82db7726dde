"""The learner's working copy: ``workspace/``, seeded from the release ``weeks/`` and never touched by updates.

``weeks/`` is tracked by git, so answers typed into it conflict with the next ``git pull`` of course
updates. Learners work in ``workspace/`` (git-ignored) instead; :func:`update` (``make update``,
``python -m autograder update``; ``make lab`` runs it first) brings in what the release added or changed:

- a notebook (or data file) the workspace does not have yet is copied in;
- a released file that changed since it was copied, and that the learner has not edited, is replaced;
- a changed file that the learner *has* edited is left alone: the new release is saved beside it as
  ``<name>.release-<date>.ipynb``, and the command says so (answers are never overwritten).

``workspace/.release.json`` remembers the checksum of each file as it was copied, which is how "the
learner has edited it" is told apart from "the release changed it".
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = ".release.json"
SKIP = {".ipynb_checkpoints", "__pycache__"}


@dataclass
class UpdateReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (the learner's file, the new release beside it)

    def lines(self) -> list[str]:
        out = [f"new        {p}" for p in self.added] + [f"updated    {p}" for p in self.updated]
        out += [f"kept yours {p}; the new release is beside it: {q}" for p, q in self.kept]
        return out or ["up to date"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _released(src: Path):
    for p in sorted(src.rglob("*")):
        if p.is_file() and not (set(p.relative_to(src).parts) & SKIP):
            yield p.relative_to(src)


def update(src: str | Path = "weeks", dest: str | Path = "workspace", today: str | None = None) -> UpdateReport:
    """Bring the release ``src`` into the workspace ``dest`` without overwriting a learner's work."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise FileNotFoundError(f"no release folder {src} (run from the course's root folder)")
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    today = today or _dt.date.today().isoformat()
    report = UpdateReport()
    for rel in _released(src):
        new, mine, key = src / rel, dest / rel, rel.as_posix()
        new_sha = _sha(new)
        if not mine.exists():
            mine.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(new, mine)
            report.added.append(key)
        elif new_sha == manifest.get(key) or new_sha == _sha(mine):
            pass  # the release did not change (or the learner's copy already equals it)
        elif _sha(mine) == manifest.get(key):  # untouched since copied: safe to replace
            shutil.copy2(new, mine)
            report.updated.append(key)
        else:  # edited by the learner and changed by the release: keep both
            beside = mine.with_name(f"{mine.stem}.release-{today}{mine.suffix}")
            shutil.copy2(new, beside)
            report.kept.append((key, beside.relative_to(dest).as_posix()))
        manifest[key] = new_sha
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return report
