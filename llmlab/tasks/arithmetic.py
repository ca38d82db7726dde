"""Multi-step arithmetic word problems (English and Chinese) with a checkable final answer.

Each template draws its numbers so that every intermediate result is a whole, non-negative number, and writes
the reference solution step by step, ending with "The answer is N." (or "答案是 N。"). The verifier parses the
final answer of a response (:func:`final_answer`) and compares it with the true one; the working is not graded.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

from .common import Example, Verdict, check_split, draw_unique, rng_for

NAMES_EN = ("Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Juno", "Kofi", "Lena")
NAMES_ZH = ("小明", "小红", "小刚", "小丽", "阿强", "阿美", "王伟", "李娜", "张磊", "刘洋")


@dataclass(frozen=True)
class Template:
    """A problem: ``draw`` picks the numbers (and computes every intermediate result and ``ans``); the question
    and the step-by-step working are format strings over them, in English and in Chinese."""

    name: str
    draw: Callable[[random.Random], dict]
    en: tuple[str, str]  # question, working
    zh: tuple[str, str]


def _shop(r):  # start s, a bags of b, c loose, d given away
    n = dict(s=r.randint(0, 20), a=r.randint(2, 6), b=r.randint(3, 12), c=r.randint(0, 9))
    n["ab"] = n["a"] * n["b"]
    n["tot"] = n["s"] + n["ab"] + n["c"]
    n["d"] = r.randint(1, n["tot"])
    return {**n, "ans": n["tot"] - n["d"]}


def _bill(r):  # k dishes at p, tip t (chosen so that the total divides by the n people)
    n = dict(n=r.randint(2, 6), k=r.randint(2, 8), p=r.randint(5, 30))
    n["kp"] = n["k"] * n["p"]
    n["t"] = (-n["kp"]) % n["n"] + n["n"] * r.randint(0, 4)
    n["tot"] = n["kp"] + n["t"]
    return {**n, "ans": n["tot"] // n["n"]}


def _travel(r):  # v1 km/h for h1 hours, then v2 km/h for h2 hours
    n = dict(v1=5 * r.randint(3, 12), h1=r.randint(1, 5), v2=5 * r.randint(3, 12), h2=r.randint(1, 4))
    n["d1"], n["d2"] = n["v1"] * n["h1"], n["v2"] * n["h2"]
    return {**n, "ans": n["d1"] + n["d2"]}


def _savings(r):  # start s, w a week for k weeks, then a purchase c
    n = dict(s=r.randint(0, 50), w=r.randint(2, 15), k=r.randint(3, 10))
    n["wk"] = n["w"] * n["k"]
    n["tot"] = n["s"] + n["wk"]
    n["c"] = r.randint(1, n["tot"])
    return {**n, "ans": n["tot"] - n["c"]}


def _eggs(r):  # boxes of rows x cols eggs, e broken, the rest packed in cartons of c
    n = dict(rows=r.randint(2, 5), cols=r.randint(2, 6), b=r.randint(2, 9), c=r.choice((6, 10, 12)))
    n["box"] = n["rows"] * n["cols"]
    n["all"] = n["box"] * n["b"]
    n["e"] = r.randint(0, min(10, n["all"] - 1))
    n["good"] = n["all"] - n["e"]
    return {**n, "ans": n["good"] // n["c"], "rem": n["good"] % n["c"]}


TEMPLATES = (
    Template("shop", _shop,
             ("{who} has {s} apples, buys {a} bags of {b} apples each and {c} loose apples, then gives {d} apples to "
              "a friend. How many apples does {who} have now?",
              "The bags hold {a} × {b} = {ab} apples.\nIn all: {s} + {ab} + {c} = {tot}.\n"
              "After giving {d} away: {tot} - {d} = {ans}."),
             ("{who}有{s}个苹果。他又买了{a}袋苹果，每袋{b}个，还买了{c}个散装的，然后送给朋友{d}个。{who}现在有多少个苹果？",
              "买的袋装苹果：{a} × {b} = {ab}。\n一共：{s} + {ab} + {c} = {tot}。\n送出后：{tot} - {d} = {ans}。")),
    Template("bill", _bill,
             ("{n} friends order {k} dishes at {p} dollars each and leave a {t} dollar tip. They split the bill "
              "equally. How many dollars does each friend pay?",
              "Dishes: {k} × {p} = {kp}.\nWith the tip: {kp} + {t} = {tot}.\nEach: {tot} ÷ {n} = {ans}."),
             ("{n}个人吃饭，点了{k}道菜，每道{p}元，另付小费{t}元。大家平均分摊，每人付多少元？",
              "菜钱：{k} × {p} = {kp}元。\n总计：{kp} + {t} = {tot}元。\n每人：{tot} ÷ {n} = {ans}元。")),
    Template("travel", _travel,
             ("A train runs at {v1} km per hour for {h1} hours, then at {v2} km per hour for {h2} hours. "
              "How many kilometres does it travel in total?",
              "First part: {v1} × {h1} = {d1}.\nSecond part: {v2} × {h2} = {d2}.\nTotal: {d1} + {d2} = {ans}."),
             ("一辆车先以每小时{v1}千米的速度行驶{h1}小时，再以每小时{v2}千米的速度行驶{h2}小时。一共行驶了多少千米？",
              "第一段：{v1} × {h1} = {d1}千米。\n第二段：{v2} × {h2} = {d2}千米。\n合计：{d1} + {d2} = {ans}千米。")),
    Template("savings", _savings,
             ("{who} has {s} dollars, saves {w} dollars a week for {k} weeks, then spends {c} dollars on a book. "
              "How many dollars does {who} have left?",
              "Saved: {w} × {k} = {wk}.\nTotal: {s} + {wk} = {tot}.\nAfter the book: {tot} - {c} = {ans}."),
             ("{who}原有{s}元，之后每周存{w}元，存了{k}周，然后花{c}元买了一本书。{who}还剩多少元？",
              "存下：{w} × {k} = {wk}元。\n共有：{s} + {wk} = {tot}元。\n买书后：{tot} - {c} = {ans}元。")),
    Template("eggs", _eggs,
             ("A box holds eggs in {rows} rows of {cols}. There are {b} boxes and {e} eggs are broken. The good eggs "
              "are packed in cartons of {c}. How many cartons can be filled completely?",
              "Per box: {rows} × {cols} = {box}.\nAll boxes: {box} × {b} = {all}.\nGood eggs: {all} - {e} = {good}."
              "\nFull cartons: {good} ÷ {c} = {ans} (remainder {rem})."),
             ("每个盒子里的鸡蛋排成{rows}行，每行{cols}个。一共有{b}盒，其中{e}个鸡蛋破了。把完好的鸡蛋每{c}个装一袋，能装满多少袋？",
              "每盒：{rows} × {cols} = {box}个。\n共：{box} × {b} = {all}个。\n完好：{all} - {e} = {good}个。\n"
              "装满：{good} ÷ {c} = {ans}袋（余{rem}个）。")),
)

def _more(r):  # a + b
    n = dict(a=r.randint(1, 9), b=r.randint(1, 9))
    return {**n, "ans": n["a"] + n["b"]}


def _fewer(r):  # a - b, never negative
    n = dict(a=r.randint(2, 18))
    n["b"] = r.randint(1, n["a"] - 1)
    return {**n, "ans": n["a"] - n["b"]}


EASY_TEMPLATES = (
    Template("more", _more,
             ("{who} has {a} apples and buys {b} more. How many apples does {who} have now?", "{a} + {b} = {ans}."),
             ("{who}有{a}个苹果，又买了{b}个。{who}现在有多少个苹果？", "{a} + {b} = {ans}。")),
    Template("fewer", _fewer,
             ("{who} has {a} apples and gives {b} to a friend. How many apples does {who} have left?",
              "{a} - {b} = {ans}."),
             ("{who}有{a}个苹果，送给朋友{b}个。{who}还剩多少个苹果？", "{a} - {b} = {ans}。")),
)
LEVELS = {"multi": TEMPLATES, "easy": EASY_TEMPLATES}

_MARKED = [
    re.compile(r"\\boxed\{\s*(-?[\d,]*\.?\d+)\s*\}"),
    re.compile(r"####\s*(-?[\d,]*\.?\d+)"),
    re.compile(r"answer\s*(?:is|:|=)?\s*\$?\s*(-?[\d,]*\.?\d+)", re.I),
    re.compile(r"答案\s*(?:是|为|：|:)?\s*(-?[\d,]*\.?\d+)"),
]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def final_answer(response: str) -> float | None:
    """The final answer of a response: the last "The answer is N" / "答案是 N" / "#### N" / "\\boxed{N}",
    or else the last number in the text; None if there is no number. Thousands separators are removed."""
    for pattern in _MARKED:
        hits = pattern.findall(response)
        if hits:
            return float(hits[-1].replace(",", ""))
    nums = _NUMBER.findall(response)
    return float(nums[-1].replace(",", "")) if nums else None


class Arithmetic:
    """Word problems of 3-4 steps (``level="easy"``: one step); passed when the parsed final answer equals the
    true one."""

    name = "arithmetic"

    def generate(self, split: str, n: int = 100, seed: int = 0, level: str = "multi") -> list[Example]:
        split = check_split(split)
        if level not in LEVELS:
            raise ValueError(f"unknown arithmetic level {level!r}; known: {', '.join(LEVELS)}")
        templates = LEVELS[level]
        family = self.name if level == "multi" else f"{self.name}-{level}"  # own keys and random stream

        def make(r: random.Random) -> Example:
            t, lang = r.choice(templates), r.choice(("en", "zh"))
            numbers = {**t.draw(r), "who": r.choice(NAMES_EN if lang == "en" else NAMES_ZH)}
            question, working = (text.format(**numbers) for text in (t.en if lang == "en" else t.zh))
            end = f"\nThe answer is {numbers['ans']}." if lang == "en" else f"\n答案是 {numbers['ans']}。"
            return Example(self.name, split, f"{family}:" + question, question, working + end, lang,
                           {"answer": numbers["ans"], "template": t.name, "level": level})

        return draw_unique(make, split, n, rng_for(family, split, seed), family)

    def verify(self, example: Example, response: str) -> Verdict:
        got = final_answer(response)
        want = example.meta["answer"]
        ok = got is not None and abs(got - want) < 1e-9
        reason = "no number in the response" if got is None else f"final answer {got:g}, expected {want}"
        return Verdict.from_checks({"answer": ok}, {"answer": reason})
