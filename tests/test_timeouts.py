"""autograder.timeouts: per-notebook cell limits from the course's table, and the grader using them."""

import json
import time
from pathlib import Path

import pytest

from autograder import timeouts

TABLE = """
[defaults]
graded = 60
plain = 180

["week01/04_mini_gpt"]
train_run = 240

["week04/02_sft"]
train_run = 30
"""


def cell(grade_id=None):
    return {"metadata": {"nbgrader": {"grade_id": grade_id}} if grade_id else {}}


@pytest.fixture
def table(tmp_path):
    (tmp_path / "timeouts.toml").write_text(TABLE)
    return timeouts.load(tmp_path / "timeouts.toml")


def test_the_same_grade_id_in_two_notebooks_gets_each_its_own_limit(table):
    assert timeouts.timeout_for(cell("train_run"), "week01/04_mini_gpt", table) == 240
    assert timeouts.timeout_for(cell("train_run"), "week04/02_sft", table) == 30
    assert timeouts.timeout_for(cell("train_run"), "week05/01_reward", table) == 60  # not listed: the default
    assert timeouts.timeout_for(cell("train_run"), None, table) == 240  # notebook unknown: the most generous
    assert timeouts.timeout_for(cell(), "week01/04_mini_gpt", table) == 180  # no grade id: a plain cell


def test_the_grader_passes_the_notebook(table, monkeypatch):
    from autograder.execute import GradingExecute
    from autograder.sandbox import Limits

    monkeypatch.setattr(timeouts, "load", lambda path=None: table)
    ex = GradingExecute()
    ex._limits, ex._deadline = Limits(), time.monotonic() + 3600  # an hour of wall time left: no cap below 30 s
    ex.resources = {"nbgrader": {"assignment": "week04", "notebook": "02_sft"}}
    assert ex._get_timeout(cell("train_run")) == 30


def test_every_limit_names_a_real_notebook_and_cell():
    course = timeouts.load()
    solutions = Path(__file__).resolve().parents[1] / "solutions"
    for key, limits in course["notebooks"].items():
        nb = solutions / f"{key}.ipynb"
        assert nb.is_file(), f"timeouts.toml names {key}, which is not a notebook in solutions/"
        ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in json.loads(nb.read_text())["cells"]}
        assert set(limits) <= ids, f"{key}: no cell has grade id {sorted(set(limits) - ids)}"
