"""llmlab.tasks: every generator is seeded, its splits never overlap, its references pass, wrong answers fail."""

import re

import pytest

from llmlab import tasks
from llmlab.tasks.arithmetic import final_answer
from llmlab.tasks.food import FOODS, food, mentioned
from llmlab.tasks.poetry import parse_jueju, shakespeare_speeches
from llmlab.tasks.programming import run_tests

FINITE = ["shakespeare", "jueju", "python", "food"]
N = {"shakespeare": 20, "jueju": 20, "python": 4, "food": 20, "arithmetic": 20}


def ex(task, split="validation", i=0, seed=0):
    return tasks.generate(task, split, N[task], seed)[i]


@pytest.mark.parametrize("task", list(tasks.TASKS))
def test_generation_is_seeded(task):
    a, b = tasks.generate(task, "train", N[task], seed=1), tasks.generate(task, "train", N[task], seed=1)
    assert [e.key for e in a] == [e.key for e in b] and [e.response for e in a] == [e.response for e in b]
    assert [e.key for e in a] != [e.key for e in tasks.generate(task, "train", N[task], seed=2)]
    assert len({e.key for e in a}) == len(a)  # no example twice


@pytest.mark.parametrize("task", FINITE)
def test_splits_never_overlap(task):
    # the whole of each split: no item, and no instruction + reference pair, in two splits
    by_split = {s: tasks.generate(task, s, None) for s in tasks.SPLITS}
    keys = {s: {e.key for e in exs} for s, exs in by_split.items()}
    pairs = {s: {(e.prompt, e.response) for e in exs} for s, exs in by_split.items()}
    for s, t in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not keys[s] & keys[t] and not pairs[s] & pairs[t], (task, s, t)
    assert all(len(v) > 0 for v in keys.values())
    assert len(keys["train"]) > len(keys["test"])


def test_arithmetic_splits_never_overlap():
    # unlimited problems: a problem's split is a function of its text, so large samples stay disjoint
    keys = {s: {e.key for e in tasks.generate("arithmetic", s, 300)} for s in tasks.SPLITS}
    assert not keys["train"] & keys["validation"] and not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    assert all(tasks.split_of(k) == s for s, ks in keys.items() for k in ks)


@pytest.mark.parametrize("task", list(tasks.TASKS))
def test_reference_responses_pass_and_wrong_ones_fail(task):
    for e in tasks.generate(task, "test", N[task]):
        v = tasks.verify(e, e.response)
        assert v.passed and v.score == 1.0, (e.prompt, e.response, v)
    e = ex(task, "test")
    wrong = {"shakespeare": "Okay so basically the dude is like totally freaking out about his phone lol",
             "jueju": "今天天气很好。", "python": "```python\ndef f():\n    pass\n```", "food": wrong_food(e) if task == "food" else "",
             "arithmetic": f"The answer is {e.meta.get('answer', 0) + 1}."}[task]
    v = tasks.verify(e, wrong)
    assert not v.passed and v.score < 1.0 and v.reason != "ok"


def wrong_food(e):
    """The table's answer for another food that differs from this one in every attribute asked about."""
    from llmlab.tasks.food import reference_answer

    f = food(e.meta["food"])
    g = next(g for g in FOODS if all(getattr(g, a) != getattr(f, a) for a in e.meta["attributes"]))
    return reference_answer(g, e.meta["kind"], e.lang)


def test_chat_view_and_dataset():
    e = ex("food")
    msgs = e.messages()
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[1]["content"] == e.prompt and msgs[2]["content"] == e.response
    assert [m["role"] for m in e.messages(system=None, with_response=False)] == ["user"]
    rows = tasks.chat_dataset("validation", n_per_task=3, seed=0)
    assert len(rows) == 5 * 3 and {r["task"] for r in rows} == set(tasks.TASKS)
    assert rows == tasks.chat_dataset("validation", n_per_task=3, seed=0)  # seeded, interleaved the same way
    assert len({r["id"] for r in rows}) == len(rows)


def test_shakespeare_held_out_speeches_come_from_the_last_tenth():
    from llmlab.data import load_text

    text = load_text("tinyshakespeare")
    tail = text[int(0.9 * len(text)):]  # the zoo's validation text: the base model never trained on it
    for split in ("validation", "test"):
        for e in tasks.generate("shakespeare", split, 10):
            assert e.meta["passage"].split("\n", 1)[1] in tail and e.response in tail
    assert [s[0] for s in shakespeare_speeches()][-1] == "test"


def test_shakespeare_verifier_on_corruptions():
    e = ex("shakespeare")
    passage_line = e.meta["passage"].split("\n")[1]
    assert not tasks.verify(e, "").passed  # nothing written
    assert not tasks.verify(e, passage_line + "\nand more words here too").checks["not_copied"]
    assert not tasks.verify(e, "my lord is here\nmy lord is here").checks["no_repeats"]
    many = "\n".join(f"line {i} of my lord" for i in range(20))  # far more lines than asked for
    assert not tasks.verify(e, many).checks["lines"]


GOOD = "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。"


@pytest.mark.parametrize("response,fails", [
    (GOOD, None),
    ("床前明月光，\n疑是地上霜。\n舉頭望明月，\n低頭思故鄉。", None),  # one verse per line is fine too
    ("床前明月光，疑是地上霜。", "form"),  # 2 verses
    ("床前明月光亮，疑是地上霜。\n舉頭望明月，低頭思故鄉。", "form"),  # 6 characters
    ("床前明月光疑是地上霜\n舉頭望明月低頭思故鄉", "form"),  # no punctuation
    ("床前明月光。疑是地上霜，\n舉頭望明月。低頭思故鄉，", "punctuation"),  # stops and pauses swapped
    ("床前白日光，疑是地上霜。\n舉頭望白日，低頭思故鄉。", "character"),  # no 月
])
def test_jueju_verifier(response, fails):
    e = tasks.TASKS["jueju"].generate("train", 1)[0]
    e.meta = {**e.meta, "char": "月"}
    v = tasks.verify(e, response)
    assert v.passed == (fails is None), v
    if fails:
        assert not v.checks[fails] and v.score < 1.0


def test_jueju_reference_is_a_real_poem_with_the_character():
    for e in tasks.generate("jueju", "test", 10):
        assert e.meta["char"] in e.response and f"「{e.meta['char']}」" in e.prompt
        assert parse_jueju(e.response) is not None and len(e.response.replace("\n", "")) == 24


def test_python_verifier_scores_each_test_case():
    e = next(x for s in tasks.SPLITS for x in tasks.generate("python", s, None) if x.meta["spec"] == "sum_even")
    assert tasks.verify(e, "def sum_even(xs):\n    return sum(x for x in xs if x % 2 == 0)").passed  # no fence
    half = tasks.verify(e, "```python\ndef sum_even(xs):\n    return sum(xs)\n```")  # right only for some inputs
    assert not half.passed and 0 < half.score < 1 and "expected" in half.reason
    assert "SyntaxError" in tasks.verify(e, "```python\ndef sum_even(xs) return 0\n```").reason
    assert "does not define" in tasks.verify(e, "```python\ndef other(xs):\n    return 0\n```").reason
    raised = tasks.verify(e, "```python\ndef sum_even(xs):\n    return xs[99]\n```")
    assert raised.score == 0 and "IndexError" in raised.reason


def test_python_sandbox_time_limit_network_and_files(tmp_path):
    loop = run_tests("def f():\n    while True:\n        pass", "f", [[]], timeout=1.0)
    assert "timed out" in loop["error"]
    net = run_tests("import socket\ndef f():\n    socket.create_connection(('127.0.0.1', 9))", "f", [[]])
    assert not net["results"][0]["ok"] and "disabled" in net["results"][0]["value"]
    # the code runs in a temporary folder that is deleted afterwards, isolated from the environment (-I)
    out = run_tests("import os, sys\ndef f():\n    open('junk.txt', 'w').write('x')\n"
                    "    return [os.getcwd(), os.environ.get('PYTHONPATH'), sys.flags.isolated]", "f", [[]])
    cwd, pythonpath, isolated = out["results"][0]["value"]
    assert "llmlab-verify-" in cwd and pythonpath is None and isolated == 1
    assert not (tmp_path / "junk.txt").exists() and not __import__("os").path.exists(cwd)
    big = run_tests("def f():\n    return len(bytearray(2 << 30))", "f", [[]], mem_mb=256)  # 2 GiB > 256 MB limit
    assert not big.get("results", [{"ok": False}])[0]["ok"]


def test_food_table_is_complete_and_bilingual():
    assert 30 <= len(FOODS) <= 60
    assert len({f.name for f in FOODS}) == len({f.name_zh for f in FOODS}) == len(FOODS)
    assert food("peking duck").name_zh == "北京烤鸭" and food("mango").zh("colour") == "黄色"
    assert all(re.fullmatch(r"#[0-9a-f]{6}", f.rgb) for f in FOODS)  # Week 8 draws with these
    # every (colour, shape) pairing is not unique to one food: Week 8's held-out combinations need variety
    assert len({f.colour for f in FOODS}) >= 8 and len({f.shape for f in FOODS}) >= 8


def test_food_mentions_use_longest_match_and_ignore_the_name():
    assert mentioned("金黄色的月牙形面包", "zh")["colour"] == {"golden"}  # 金黄色, not 黄色
    assert mentioned("椭圆形", "zh")["shape"] == {"oval"}  # not 圆形
    assert mentioned("甜甜圈是一种甜点，味道咸", "zh", "甜甜圈")["taste"] == {"salty"}  # 甜点 is a meal, not 甜
    assert mentioned("Green tea is brown", "en", "green tea")["colour"] == {"brown"}
    assert mentioned("typical of Middle Eastern cuisine", "en")["cuisine"] == {"Middle Eastern"}


def test_food_verifier_on_wrong_and_contradictory_answers():
    e = next(x for x in tasks.generate("food", "train", None) if x.meta["kind"] == "describe" and x.lang == "en")
    f = food(e.meta["food"])
    wrong_colour = "purple" if f.colour != "purple" else "red"
    v = tasks.verify(e, e.response.replace(f.en("colour"), wrong_colour))
    assert not v.checks["colour"] and v.score == pytest.approx(4 / 5) and "wrong colour" in v.reason
    both = tasks.verify(e, e.response + f" Some say it is {wrong_colour}.")  # hedging between two colours
    assert not both.checks["colour"]
    assert not tasks.verify(e, reference_zh(f)).checks["language"]  # the right facts in the wrong language


def reference_zh(f):
    from llmlab.tasks.food import reference_answer

    return reference_answer(f, "describe", "zh")


@pytest.mark.parametrize("text,want", [
    ("3 + 4 = 7. The answer is 7.", 7), ("#### 1,234", 1234), ("so \\boxed{42} it is", 42),
    ("答案是 15。", 15), ("第一步 2 × 3 = 6，答案：6", 6), ("first 5, then 9", 9), ("Answer: -3", -3),
    ("The answer is 12 apples. (I checked 3 times.)", 12), ("no idea", None),
])
def test_final_answer_parsing(text, want):
    assert final_answer(text) == want


def test_arithmetic_working_is_correct_arithmetic():
    # every "a op b = c" step of every reference really holds: the generator's answers are not hard-coded
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "÷": lambda a, b: a // b}
    for e in tasks.generate("arithmetic", "train", 60):
        steps = re.findall(r"(\d+) ([-+×÷]) (\d+)(?: \+ (\d+))? = (\d+)", e.response)
        assert len(steps) >= 3, e.response
        for a, op, b, c, res in steps:
            val = ops[op](int(a), int(b)) + (int(c) if c else 0)
            assert val == int(res), (e.response, a, op, b, c, res)
        assert final_answer(e.response) == e.meta["answer"]


def test_arithmetic_easy_level_is_one_checked_step_and_leaves_the_default_alone():
    # level="easy": one "a op b = c" step that holds, the reference passes the shared verifier, splits stay
    # disjoint, and the default multi-step problems are the same with or without the new argument
    easy = {s: tasks.generate("arithmetic", s, 100, level="easy") for s in tasks.SPLITS}
    for e in easy["train"]:
        ((a, op, b, res),) = re.findall(r"(\d+) ([-+]) (\d+) = (\d+)", e.response)
        assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(res) == e.meta["answer"] >= 0
        assert tasks.verify(e, e.response).passed and not tasks.verify(e, f"The answer is {int(res) + 1}.").passed
    keys = [{e.key for e in v} for v in easy.values()]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    multi = tasks.TASKS["arithmetic"].generate("test", 20, 0, level="multi")
    assert [e.key for e in tasks.generate("arithmetic", "test", 20)] == [e.key for e in multi]
