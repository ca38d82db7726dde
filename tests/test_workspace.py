"""autograder.workspace: a release update never overwrites a learner's answers."""

from autograder.workspace import update


def test_update_adds_replaces_untouched_and_keeps_edited(tmp_path):
    weeks, ws = tmp_path / "weeks" / "week01", tmp_path / "workspace"
    weeks.mkdir(parents=True)
    (weeks / "a.ipynb").write_text("a v1")
    (weeks / "b.ipynb").write_text("b v1")
    assert sorted(update(tmp_path / "weeks", ws).added) == ["week01/a.ipynb", "week01/b.ipynb"]
    (ws / "week01" / "b.ipynb").write_text("b v1 + my answers")  # the learner works on b only
    (weeks / "a.ipynb").write_text("a v2")
    (weeks / "b.ipynb").write_text("b v2")
    (weeks / "c.ipynb").write_text("c v1")
    r = update(tmp_path / "weeks", ws, today="2026-12-03")
    assert r.added == ["week01/c.ipynb"] and r.updated == ["week01/a.ipynb"]
    assert r.kept == [("week01/b.ipynb", "week01/b.release-2026-12-03.ipynb")]
    assert (ws / "week01" / "a.ipynb").read_text() == "a v2"
    assert (ws / "week01" / "b.ipynb").read_text() == "b v1 + my answers"  # never overwritten
    assert (ws / "week01" / "b.release-2026-12-03.ipynb").read_text() == "b v2"
    assert update(tmp_path / "weeks", ws).lines() == ["up to date"]  # the next update has nothing to do
