"""llmlab.align.constitution: critique -> revision pairs, checked with a scripted generator (fixed replies), so
the loop's bookkeeping is tested exactly; no model is needed."""

import pytest

from llmlab import tasks
from llmlab.align import constitution


@pytest.fixture(scope="module")
def examples():
    return tasks.generate("arithmetic", "test", n=4, seed=0)


def scripted(examples, good=(0, 2)):
    """Critiques are 'wrong'; the revision of example i is its reference answer if i in good, else 'no idea'."""
    calls = []

    def gen(batch):
        calls.append(batch)
        if len(calls) % 2 == 1:
            return ["The last step is wrong."] * len(batch)
        return [("Revision: " + ex.response) if i in good else "no idea" for i, ex in enumerate(examples)]

    return gen, calls


def test_keeps_only_revisions_the_verifier_prefers(examples):
    originals = ["42"] * len(examples)  # no working, (almost surely) the wrong number
    gen, calls = scripted(examples)
    rows, stats = constitution.critique_revision(examples, originals, gen, critic="model")
    assert len(calls) == 2 and "Critique:" in calls[1][0][0]["content"]  # critique first, then revision given it
    assert [r["chosen"][0]["content"] for r in rows] == [examples[0].response, examples[2].response]  # label stripped
    assert all(r["rejected"][0]["content"] == "42" and r["chosen_score"] > r["rejected_score"] for r in rows)
    assert stats["n"] == 4 and stats["kept"] == 2 and stats["improved_share"] == 0.5


def test_rule_critic_uses_the_verdict_and_keep_all(examples):
    gen, calls = scripted(examples, good=())
    rows, stats = constitution.critique_revision(examples, ["42"] * 4, gen, critic="rule", keep_all=True)
    assert len(calls) == 1  # the rule wrote the critiques
    assert rows[0]["critique"] == tasks.verify(examples[0], "42").reason and stats["kept"] == 0 and len(rows) == 4
    assert set(rows[0]) >= {"prompt", "chosen", "rejected", "kept"} and rows[0]["prompt"][-1]["role"] == "user"


def test_bad_arguments(examples):
    with pytest.raises(ValueError):
        constitution.critique_revision(examples, ["x"], lambda b: [""] * len(b))
    with pytest.raises(ValueError):
        constitution.critique_revision(examples, ["x"] * 4, lambda b: [""] * len(b), critic="human")
    assert constitution.clean_revision("  New answer: 7 \n") == "7"
