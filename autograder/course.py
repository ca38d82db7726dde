"""A throw-away nbgrader course directory, so that grading never touches the repository.

nbgrader keeps state (a sqlite gradebook, ``autograded/``, ``feedback/``) in its course root. The
course's commands build that root in a temporary folder from ``solutions/``: the repository stays
clean and two commands can run side by side.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config

from .nbconfig import apply

REPO = Path(__file__).resolve().parents[1]
# the source notebooks; LLMLAB_SOLUTIONS points the tools at another copy (e.g. an instructor's private repo)
SOLUTIONS = Path(os.environ.get("LLMLAB_SOLUTIONS") or REPO / "solutions").resolve()
RELEASE = REPO / "weeks"
WEEK = re.compile(r"^(week\d\d|bonus)$")  # the eight weeks, and the bonus track (solutions/bonus -> weeks/bonus)

# nbgrader runs helper programs (alembic) and kernels by name: make this interpreter's bin folder
# come first on PATH, so `.venv/bin/python -m autograder` works without activating the venv
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def _alembic_head() -> str:
    """nbgrader stamps each new gradebook with its alembic head by running ``alembic heads`` in a
    subprocess (2-12 s on a busy 2-core machine, for every temporary course); read it in-process once."""
    global _ALEMBIC_HEAD
    if _ALEMBIC_HEAD is None:
        import nbgrader
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
        _ALEMBIC_HEAD = ScriptDirectory.from_config(cfg).get_current_head()
    return _ALEMBIC_HEAD


_ALEMBIC_HEAD: str | None = None
import nbgrader.api  # noqa: E402

nbgrader.api.get_alembic_version = _alembic_head

# grading always runs the small size, offline, and without the chatter of library loggers
GRADING_ENV = {"LLMLAB_FAST": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}


def weeks() -> list[str]:
    names = [p.name for p in SOLUTIONS.iterdir() if p.is_dir() and WEEK.match(p.name)]
    return sorted(names, key=lambda n: (n == "bonus", n))  # the bonus track after the weeks


def notebooks(week: str) -> list[Path]:
    return sorted((SOLUTIONS / week).glob("*.ipynb"))


def locate_source(notebook: str | Path) -> tuple[str, str]:
    """(week, notebook name) of the source notebook that a learner's notebook comes from."""
    p = Path(notebook)
    name = p.stem
    if WEEK.match(p.parent.name) and (SOLUTIONS / p.parent.name / f"{name}.ipynb").exists():
        return p.parent.name, name
    hits = [w for w in weeks() if (SOLUTIONS / w / f"{name}.ipynb").exists()]
    if len(hits) == 1:
        return hits[0], name
    raise FileNotFoundError(
        f"{p}: no course notebook named {name}.ipynb under solutions/ "
        "(keep the file name of the release notebook, e.g. weeks/week01/01_attention.ipynb)"
    )


def grade_ids(week: str, name: str) -> list[tuple[str, float]]:
    """(grade id, points) of the graded cells of a source notebook, in notebook order."""
    nb = nbformat.read(SOLUTIONS / week / f"{name}.ipynb", as_version=4)
    out = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            out.append((meta["grade_id"], float(meta.get("points", 0))))
    return out


@dataclass
class TempCourse:
    """An nbgrader course root in a temporary folder, holding copies of the chosen source notebooks."""

    selection: dict[str, list[str] | None]  # week -> notebook names (None = all)
    overrides: dict = field(default_factory=dict)  # extra config, "Section.attr" -> value (e.g. the sandbox)
    base: str | None = None  # where to make the temporary root (default: the system's temp folder)
    root: Path = field(init=False)
    _tmp: tempfile.TemporaryDirectory = field(init=False, repr=False)

    def __post_init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="llmlab-grade-", dir=self.base)
        self.root = Path(self._tmp.name)
        for week, names in self.selection.items():
            dest = self.root / "solutions" / week
            dest.mkdir(parents=True)
            for src in (SOLUTIONS / week).iterdir():
                if src.suffix == ".ipynb" and names is not None and src.stem not in names:
                    continue
                if src.name.startswith(".") or src.name == "__pycache__":
                    continue
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / src.name)
        self.db_url = f"sqlite:///{self.root / 'gradebook.db'}"

    def config(self, **overrides) -> Config:
        c = Config()
        apply(c, root=self.root, db_url=self.db_url)
        for key, value in {**self.overrides, **overrides}.items():
            section, attr = key.split(".")
            setattr(c[section], attr, value)
        return c

    def api(self, **overrides):
        import warnings

        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from sqlalchemy.exc import SAWarning

        # nbgrader 0.9.6 trips SQLAlchemy 2's autoflush warnings on every autograde; they are harmless
        warnings.filterwarnings("ignore", category=SAWarning)

        c = self.config(**overrides)
        api = NbGraderAPI(coursedir=CourseDirectory(config=c), config=c)
        api.log.setLevel(logging.ERROR)
        return api

    def generate(self, week: str) -> None:
        names = self.selection.get(week)
        overrides = {"CourseDirectory.notebook_id": names[0]} if names and len(names) == 1 else {}
        result = self.api(**overrides).generate_assignment(week, force=True, create=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader could not generate {week}:\n{result.get('error') or result.get('log')}")

    def submit(self, student: str, week: str, notebook: Path, name: str | None = None) -> Path:
        dest = self.root / "submitted" / student / week
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / f"{name or notebook.stem}.ipynb"
        shutil.copy2(notebook, target)
        return target

    def autograde(self, week: str, student: str) -> dict:
        with grading_env():
            return self.api().autograde(week, student, force=True, create=True)

    def autograded(self, student: str, week: str, name: str) -> Path:
        return self.root / "autograded" / student / week / f"{name}.ipynb"

    def cleanup(self):
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


class grading_env:
    """Set GRADING_ENV for the kernels nbgrader starts; restore the caller's environment after."""

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in GRADING_ENV}
        os.environ.update(GRADING_ENV)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
