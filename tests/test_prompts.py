"""llmlab.prompts: Jinja2 modules, budgeted assembly (summarise, then drop, lowest priority first), rolling memory."""

import jinja2
import pytest

from llmlab.prompts import PromptModule, RollingMemory, assemble, word_count


def mods():
    return [PromptModule("system", "You are {{ role }}.", priority=100, required=True),
            PromptModule("persona", "Narrator: {{ persona }}", priority=40),
            PromptModule("world", "{{ world }}", priority=20, summary="{{ world.split('.')[0] }}."),
            PromptModule("memory", "{% for c in chapters %}{{ c }}\n{% endfor %}", priority=30),
            PromptModule("task", "Write chapter {{ n }}.", priority=100, required=True)]


VARS = dict(role="a novelist", persona="an old sailor, gruff", n=3, chapters=["one two three", "four five"],
            world="The island is small. It has one harbour and a lighthouse on the cliff.")


def test_everything_fits_in_the_original_order():
    a = assemble(mods(), budget=1000, **VARS)
    assert list(a.sections) == ["system", "persona", "world", "memory", "task"] and not a.dropped and not a.summarised
    assert a.text.startswith("You are a novelist.\n\nNarrator:") and a.text.endswith("Write chapter 3.")
    assert a.tokens == word_count(a.text)


def test_lowest_priority_is_summarised_then_dropped_first():
    full = assemble(mods(), budget=1000, **VARS).tokens
    a = assemble(mods(), budget=full - 1, **VARS)  # one word too many: the world notes are summarised
    assert a.summarised == ["world"] and a.sections["world"] == "The island is small." and not a.dropped
    b = assemble(mods(), budget=12, **VARS)  # then world dropped, then memory (30) before persona (40)
    assert b.dropped[:2] == ["world", "memory"] and "system" in b.sections and "task" in b.sections
    assert b.tokens <= 12


def test_required_modules_never_go_and_strict_variables():
    with pytest.raises(ValueError):
        assemble(mods(), budget=3, **VARS)  # "You are a novelist." + "Write chapter 3." is 7 words
    with pytest.raises(jinja2.UndefinedError):
        assemble(mods(), budget=100, role="x")  # a missing variable is an error, not an empty string


def test_ties_drop_the_later_module_first_and_empty_modules_vanish():
    ms = [PromptModule("a", "alpha beta", 1), PromptModule("b", "gamma delta", 1), PromptModule("e", "{{ '' }}", 9)]
    a = assemble(ms, budget=2)
    assert a.dropped == ["b"] and a.text == "alpha beta" and "e" not in a.sections


def test_rolling_memory_merges_the_oldest_and_keeps_pinned_facts():
    m = RollingMemory(budget=40)  # room for the pinned fact and about two verbatim chapters (13 words each)
    m.pin("Mara is 17.")
    for i in range(1, 6):
        m.add(f"ch{i}", f"Chapter {i} happens. Many more words follow here to fill the budget.")
    assert m.tokens() <= 40 and len(m.entries) >= 2
    assert m.facts == ["Mara is 17."] and m.render().startswith("- Mara is 17.")
    assert m.entries[-1][0] == "ch5" and m.entries[0][0].startswith("ch1-")  # recent verbatim, old merged


def test_model_summary_is_kept_when_usable_and_falls_back_otherwise():
    from llmlab.prompts import summary_or_fallback

    chapter = "Mara found the map. It was old. The ink had faded."
    assert summary_or_fallback("Mara finds a map.", chapter, 10) == ("Mara finds a map.", "model")
    assert summary_or_fallback("  ", chapter, 10) == ("Mara found the map.", "fallback")  # empty: first sentence
    assert summary_or_fallback("w " * 11, chapter, 10)[1] == "fallback"  # 11 words > 10
    assert summary_or_fallback("w " * 10, chapter, 10)[1] == "model"  # exactly on the limit is kept
    assert summary_or_fallback(None, "one two three four", 2) == ("one two", "fallback")  # the fallback is cut too
