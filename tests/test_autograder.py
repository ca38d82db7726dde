"""The grading tools on a toy course: round trip, learner check, cohort CSV, lint, release."""

import csv
import json

import nbformat
import pytest

import autograder.course as course
from autograder.check import check, roundtrip
from autograder.cli import main
from autograder.grade import grade
from autograder.notebook import lint
from autograder.release import release
from autograder.sandbox import mechanisms

from toycourse import make_course, toy_notebook, with_cells


# graders started by two tests at once would see each other's kernels, cgroups and leftovers: one at a time
pytestmark = pytest.mark.serial

@pytest.fixture
def toy(tmp_path, monkeypatch):
    solutions = make_course(tmp_path)
    monkeypatch.setattr(course, "SOLUTIONS", solutions)
    return solutions


def test_roundtrip_full_marks_and_zero(toy):
    solved, untouched = roundtrip(toy / "week01" / "toy.ipynb")
    assert [r.points for r in solved] == [2, 2, 2]
    assert [r.points for r in untouched] == [0, 0, 0]
    assert all("not filled in" in r.message for r in untouched)


def test_check_reports_message_hint_and_exit_code(toy, tmp_path, capsys):
    wrong = tmp_path / "week01" / "toy.ipynb"
    wrong.parent.mkdir()
    nbformat.write(toy_notebook(add_body="a - b"), wrong)
    rows = check(wrong)
    assert [r.status for r in rows] == ["failed", "passed", "passed"]
    assert rows[0].message.startswith("GradingError: add(1, 2) is wrong")
    assert rows[0].hint == "used - instead of +"
    assert main(["check", str(wrong)]) == 1
    assert "hint: used - instead of +" in capsys.readouterr().out


def test_a_missing_notebook_is_one_line_and_exit_2(tmp_path, capsys):
    for cmd in ("check", "roundtrip", "normalize"):
        assert main([cmd, str(tmp_path / "nope.ipynb")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "nope.ipynb: no such notebook" in err and "Traceback" not in err


def test_hidden_tests_run_in_check(toy, tmp_path):
    # passes the visible test (1 + 2 == 3) but not the hidden one (10 + 5)
    sneaky = tmp_path / "week01" / "toy.ipynb"
    sneaky.parent.mkdir()
    nbformat.write(toy_notebook(add_body="3 if (a, b) == (1, 2) else 0"), sneaky)
    assert check(sneaky)[0].message.startswith("GradingError: hidden: add(10, 5)")


def test_grade_folder_to_csv(toy, tmp_path):
    """Sandboxed (the default): the kernel still imports torch and llmlab and reads ../shared/data."""
    subs = tmp_path / "submitted"
    for student, body in [("alice", "a + b"), ("bob", "a - b")]:
        (subs / student / "week01").mkdir(parents=True)
        nbformat.write(toy_notebook(add_body=body), subs / student / "week01" / "toy.ipynb")
    uses_the_stack = ("import torch\nfrom llmlab.data import load_text\n"
                      "assert len(load_text('tinyshakespeare')) > 100_000 and torch.ones(2).sum() == 2\n"
                      "def add(a, b):\n    return a + b")
    nbformat.write(with_cells(toy_notebook(), add_impl=uses_the_stack), subs / "alice" / "week01" / "toy.ipynb")
    (subs / "carol" / "week01").mkdir(parents=True)
    (subs / "carol" / "week01" / "toy.ipynb").write_text("{ not json")
    (subs / "dave" / "week01").mkdir(parents=True)  # handed in nothing
    rows = grade(subs, tmp_path / "grading", progress=False, sandbox=mechanisms().isolated)
    with open(tmp_path / "grading" / "grades.csv") as f:
        assert list(csv.DictReader(f)) == [{k: str(v) for k, v in r.items()} for r in rows]
    total = {s: sum(float(r["points"] or 0) for r in rows if r["student"] == s) for s in "alice bob".split()}
    assert total == {"alice": 6.0, "bob": 4.0}
    carol = [r for r in rows if r["student"] == "carol"]
    assert {r["status"] for r in carol} == {"error"} and all(r["points"] == "" for r in carol)
    assert {r["status"] for r in rows if r["student"] == "dave"} == {"missing"}


def test_lint_catches_common_slips():
    nb = toy_notebook()
    nb.cells[2].metadata["nbgrader"]["grade_id"] = "test add"  # a space is not allowed
    nb.cells[4].source = nb.cells[4].source.replace("### BEGIN HIDDEN TESTS", "")
    problems = lint(nb, "toy")
    assert any("must match" in p for p in problems)
    assert any("without hidden tests" in p for p in problems)
    assert lint(toy_notebook(), "toy") == []


def test_release_strips_solutions_and_hidden_tests(toy, tmp_path):
    out = release(["week01"], dest=tmp_path / "weeks")
    text = json.dumps(json.loads(out[0].read_text()))
    assert "raise NotImplementedError()" in text
    assert "BEGIN SOLUTION" not in text and "HIDDEN" not in text and "add(10, 5)" not in text
