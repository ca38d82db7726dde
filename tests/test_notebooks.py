"""Every course notebook: clean source, no release drift, executed once, graded honestly.

Each solution notebook is executed **once** per test run, by nbgrader itself: the round trip
(``autograder.check.run_roundtrip``) autogrades the solution submitted as a student -- nbgrader puts
the instructor's test cells, hidden tests included, back into the submission -- and then the
untouched release notebook. A notebook's two tests share that run (same xdist group, same worker):

- ``test_solution_executes``: the autograded solution ran top to bottom, as papermill would demand
  (every code cell executed, none raised, within the grader's per-cell time limits), and each test
  cell ran with its hidden tests;
- ``test_nbgrader_round_trip``: the solution got full marks, and the untouched release 0 on every
  graded cell ("failed", never "error": a notebook that nbgrader could not grade is no zero), its
  test cells graded with their hidden tests.

``weeks/`` must be exactly a fresh nbgrader release of ``solutions/`` (no hand edits, no drift).
``--nb weeks/week04`` (``make test NB=weeks/week04``) selects the notebooks under a path.
"""

import json
import re

import nbformat
import pytest

from autograder.check import format_table, run_roundtrip
from autograder.course import RELEASE, SOLUTIONS
from autograder.notebook import lint
from autograder.release import release

from conftest import SERIAL, selected

SOURCES = sorted(SOLUTIONS.glob("week*/*.ipynb")) + sorted(SOLUTIONS.glob("bonus/*.ipynb"))  # the weeks, the bonus track
pytestmark = pytest.mark.notebooks
# notebooks that start DeepSpeed (its launcher, or its compiled ops): the serial group
DEEPSPEED = re.compile(r"\bds_train\b|\bzero_ds_demo\b|\bimport deepspeed\b|\bdeepspeed\.")


def _uses_deepspeed(source) -> bool:
    nb = nbformat.read(source, as_version=4)
    return any(DEEPSPEED.search(c.source) for c in nb.cells if c.cell_type == "code")


def pytest_generate_tests(metafunc):
    if "source" in metafunc.fixturenames:
        params = []
        for p in SOURCES:
            name = f"{p.parent.name}/{p.stem}"
            if not selected(metafunc.config, p.parent.name, p.stem):
                continue
            marks = []
            if metafunc.function.__name__ != "test_source_is_clean":  # the two tests that share the run
                marks = [pytest.mark.xdist_group(SERIAL if _uses_deepspeed(p) else f"nb:{name}")]
            params.append(pytest.param(p, id=name, marks=marks))
        metafunc.parametrize("source", params)


def test_source_is_clean(source):
    nb = nbformat.read(source, as_version=4)
    assert lint(nb, source.name) == []


_RUNS: dict = {}  # source -> what its one round trip found (or the exception it raised)


def _run(source, record_property) -> dict:
    """The round trip of ``source``, run by whichever of its two tests comes first."""
    if source not in _RUNS:
        try:
            trip = run_roundtrip(source)
        except Exception as e:  # noqa: BLE001 - both tests report it
            _RUNS[source] = e
            raise
        name = f"{source.parent.name}/{source.stem}"
        record_property("notebook_run", {
            "notebook": name, "solution_s": trip.seconds["solution"], "solution_cpu_s": trip.cpu_seconds["solution"],
            "untouched_s": trip.seconds["untouched"], "untouched_cpu_s": trip.cpu_seconds["untouched"]})
        # keep the verdicts, not the executed notebooks (outputs and figures)
        _RUNS[source] = {"solved": trip.solved, "untouched": trip.untouched, "ran": trip.execution_problems(),
                         "hidden": trip.hidden_tests_missing()}
    got = _RUNS[source]
    if isinstance(got, Exception):
        pytest.fail(f"the round trip of {source.name} raised {type(got).__name__}: {got}")
    return got


def test_solution_executes(source, record_property):
    problems = _run(source, record_property)["ran"]
    assert problems == [], f"{source.name} did not run top to bottom under nbgrader:\n" + "\n".join(problems)


def test_release_has_no_drift(tmp_path, request):
    weeks = sorted({p.parent.name for p in SOURCES if selected(request.config, p.parent.name, p.stem)})
    release(weeks, dest=tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.ipynb"))
    folders = [RELEASE / w for w in weeks] if request.config.getoption("nb") else [RELEASE]  # all: no stray week either
    committed = sorted(p.relative_to(RELEASE) for f in folders for p in f.rglob("*.ipynb"))
    assert fresh == committed, "weeks/ and solutions/ list different notebooks: run `make release`"
    for rel in fresh:
        a = json.loads((tmp_path / rel).read_text(encoding="utf-8"))
        b = json.loads((RELEASE / rel).read_text(encoding="utf-8"))
        assert a == b, f"weeks/{rel} differs from a fresh release of solutions/: run `make release` and commit"


def test_nbgrader_round_trip(source, record_property):
    run = _run(source, record_property)
    solved, untouched = run["solved"], run["untouched"]
    assert all(r.passed for r in solved), format_table(solved, "solution submitted as a student:")
    assert all(r.points == 0 and r.status == "failed" for r in untouched), format_table(untouched, "untouched release:")
    assert run["hidden"] == [], "untouched release: " + "; ".join(run["hidden"])
