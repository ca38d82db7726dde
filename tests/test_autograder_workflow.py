"""The instructor's and the learner's workflows end to end, on the toy course.

Instructor: release (``make release``) -> nbgrader exchange (release_assignment -> fetch_assignment ->
submit -> collect) -> ``python -m autograder grade`` (``make autograde``) -> feedback, returned
through the exchange (release_feedback -> fetch_feedback). Learner: ``progress`` over ``weeks/``.
"""

import shutil

import nbformat
import pytest
from traitlets.config import Config

import autograder.course as course
from autograder.cli import main
from autograder.nbconfig import apply
from autograder.progress import format_progress, progress
from autograder.release import release
from autograder.sandbox import mechanisms

from toycourse import make_course, with_cells

# graders started by two tests at once would see each other's kernels, cgroups and leftovers: one at a time
pytestmark = pytest.mark.serial

ANSWERS = {"alice": dict(add_impl="def add(a, b):\n    return a + b", mul_impl="def mul(a, b):\n    return a * b",
                         sub_impl="def sub(a, b):\n    return a - b"),
           "bob": dict(add_impl="def add(a, b):\n    return a - b", mul_impl="def mul(a, b):\n    return a * b")}


def _api(root, exchange):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    c = apply(Config(), root=root)
    c.Exchange.root = str(exchange)
    return NbGraderAPI(coursedir=CourseDirectory(config=c), config=c)


def _learner(cls, exchange, home, student):
    """A learner's nbgrader exchange command (fetch_assignment, submit, fetch_feedback) in ``home``."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory

    c = Config()
    c.CourseDirectory.course_id = "llmlab"
    c.CourseDirectory.assignment_id = "week01"
    c.CourseDirectory.student_id = student  # what `nbgrader submit` takes from the learner's OS account
    c.Exchange.root = str(exchange)
    c.Exchange.assignment_dir = str(home)
    c.Exchange.cache = str(home / ".nbgrader-cache")
    app = cls(coursedir=CourseDirectory(config=c), authenticator=Authenticator(config=c), config=c)
    app.start()


def test_instructor_workflow(tmp_path, monkeypatch, capsys):
    from nbgrader.exchange.default import ExchangeFetchAssignment, ExchangeFetchFeedback, ExchangeSubmit

    root, exchange = tmp_path / "course", tmp_path / "exchange"
    exchange.mkdir()
    monkeypatch.setattr(course, "SOLUTIONS", make_course(root, plain=True))
    # 1. make release: solutions/ -> weeks/
    release(["week01"], dest=root / "weeks")
    # 2. nbgrader release_assignment (from the course root)
    api = _api(root, exchange)
    assert api.release_assignment("week01")["success"]
    # 3. two learners fetch, work, submit
    for student, answers in ANSWERS.items():
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        _learner(ExchangeFetchAssignment, exchange, home, student)
        nb_path = home / "week01" / "toy.ipynb"
        nbformat.write(with_cells(nbformat.read(nb_path, as_version=4), **answers), nb_path)
        _learner(ExchangeSubmit, exchange, home, student)
    # 4. nbgrader collect -> submitted/<student>/week01/
    assert api.collect("week01")["success"]
    assert sorted(p.name for p in (root / "submitted").iterdir()) == ["alice", "bob"]
    # 5. make autograde SUBMISSIONS=submitted OUT=grading
    out = root / "grading"
    unsafe = [] if mechanisms().isolated else ["--no-sandbox"]  # (a machine without isolation: see the cohort tests)
    assert main(["grade", str(root / "submitted"), "--out", str(out), "--no-progress", "-j", "2"] + unsafe) == 0
    text = capsys.readouterr().out
    assert "sandbox mechanisms:" in text and "hardest tests" in text
    rows = (out / "grades.csv").read_text()
    assert "alice,week01,toy,test_add,2.0,2.0,passed" in rows
    assert "bob,week01,toy,test_add,0.0,2.0,failed" in rows and "bob,week01,toy,test_sub,0.0,2.0,failed" in rows
    # 6. feedback: per-student pages, and nbgrader's feedback returned through the exchange
    assert "6 / 6" in (out / "feedback/alice/index.html").read_text()
    assert "add(10, 5)" not in (out / "feedback/bob/week01/toy.html").read_text()
    fb_api = _api(out, exchange)  # the output folder is an nbgrader course root: submitted/ + feedback/
    assert fb_api.release_feedback("week01")["success"]
    _learner(ExchangeFetchFeedback, exchange, tmp_path / "home" / "bob", "bob")
    fetched = list((tmp_path / "home/bob/week01/feedback").glob("*/toy.html"))
    assert len(fetched) == 1 and "add(1, 2) is wrong" in fetched[0].read_text()
    # 7. idempotent: regrading everything gives the same grades
    before = rows
    assert main(["grade", str(root / "submitted"), "--out", str(out), "--no-progress", "--force", "-j", "1"] + unsafe) == 0
    assert (out / "grades.csv").read_text() == before


def test_learner_progress_bars_and_cache(tmp_path, monkeypatch):
    sol = make_course(tmp_path, plain=True)
    (sol / "week02").mkdir()
    shutil.copy(sol / "week01/toy.ipynb", sol / "week02/toy2.ipynb")
    monkeypatch.setattr(course, "SOLUTIONS", sol)
    weeks = tmp_path / "weeks"
    release(["week01"], dest=weeks)
    nb = weeks / "week01/toy.ipynb"
    nbformat.write(with_cells(nbformat.read(nb, as_version=4), **ANSWERS["bob"]), nb)  # 2 of 6 points
    cache = tmp_path / "cache.json"
    first = progress(weeks, cache=cache)
    assert [(w["week"], w["points"], w["max_points"]) for w in first] == [("week01", 2.0, 6.0), ("week02", 0.0, 6.0)]
    text = format_progress(first)
    assert "week01  ████████░░░░░░░░░░░░░░░░      2/6     33%" in text
    assert "(not in this folder)" in text
    # second run: nothing changed, nothing is graded again
    import autograder.progress as prog

    monkeypatch.setattr(prog, "grade_week", lambda *a, **k: pytest.fail("graded again despite the cache"))
    assert progress(weeks, cache=cache) == first
    assert main(["progress", str(weeks), "--cache", str(cache)]) == 0
