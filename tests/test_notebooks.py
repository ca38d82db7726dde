"""Every course notebook: clean source, runs under papermill in FAST mode, and grades honestly.

- the solution executes top to bottom with hidden tests included (papermill, LLMLAB_FAST=1);
- weeks/ is exactly a fresh nbgrader release of solutions/ (no hand edits, no drift);
- round trip: the solution submitted as a student gets full marks, the untouched release
  notebook gets 0 on every graded cell, and neither grading run crashes.
"""

import json
import time
from pathlib import Path

import nbformat
import papermill
import pytest

from autograder.check import format_table, roundtrip
from autograder.course import RELEASE, SOLUTIONS
from autograder.notebook import lint
from autograder.release import release

from conftest import NOTEBOOK_TIMES

SOURCES = sorted(SOLUTIONS.glob("week*/*.ipynb"))
IDS = [f"{p.parent.name}/{p.stem}" for p in SOURCES]
pytestmark = pytest.mark.notebooks


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_source_is_clean(source):
    nb = nbformat.read(source, as_version=4)
    assert lint(nb, source.name) == []


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_solution_executes(source, tmp_path):
    start = time.perf_counter()
    papermill.execute_notebook(
        str(source), str(tmp_path / source.name), cwd=str(source.parent), kernel_name="llmlab",
        progress_bar=False, execution_timeout=600,
    )
    NOTEBOOK_TIMES[f"{source.parent.name}/{source.name}"] = time.perf_counter() - start


def test_release_has_no_drift(tmp_path):
    release(dest=tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.ipynb"))
    committed = sorted(p.relative_to(RELEASE) for p in RELEASE.rglob("*.ipynb"))
    assert fresh == committed, "weeks/ and solutions/ list different notebooks: run `make release`"
    for rel in fresh:
        a = json.loads((tmp_path / rel).read_text(encoding="utf-8"))
        b = json.loads((RELEASE / rel).read_text(encoding="utf-8"))
        assert a == b, f"weeks/{rel} differs from a fresh release of solutions/: run `make release` and commit"


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_nbgrader_round_trip(source):
    solved, untouched = roundtrip(source)
    assert all(r.passed for r in solved), format_table(solved, "solution submitted as a student:")
    assert all(r.points == 0 and r.status == "failed" for r in untouched), format_table(untouched, "untouched release:")
