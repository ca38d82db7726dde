"""Multi-step arithmetic word problems (English and Chinese) with a checkable final answer.

Each template draws its numbers so that every intermediate result is a whole, non-negative number, and writes
the reference solution step by step, ending with "The answer is N." (or "答案是 N。"). The verifier parses the
final answer of a response (:func:`final_answer`) and compares it with the true one; the working is not graded.
"""

from __future__ import annotations

import random
import re

from .common import Example, Verdict, check_split, draw_unique, rng_for

NAMES_EN = ("Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Juno", "Kofi", "Lena")
NAMES_ZH = ("小明", "小红", "小刚", "小丽", "阿强", "阿美", "王伟", "李娜", "张磊", "刘洋")


def _shop(r: random.Random, zh: bool):
    """buy a packs of b, c loose ones, give away d, with start s: s + a*b + c - d"""
    s, a, b, c = r.randint(0, 20), r.randint(2, 6), r.randint(3, 12), r.randint(0, 9)
    d = r.randint(1, s + a * b + c)
    ans = s + a * b + c - d
    if zh:
        who = r.choice(NAMES_ZH)
        q = f"{who}有{s}个苹果。他又买了{a}袋苹果，每袋{b}个，还买了{c}个散装的，然后送给朋友{d}个。{who}现在有多少个苹果？"
        w = f"买的袋装苹果：{a} × {b} = {a * b}。\n一共：{s} + {a * b} + {c} = {s + a * b + c}。\n送出后：{s + a * b + c} - {d} = {ans}。"
    else:
        who = r.choice(NAMES_EN)
        q = (f"{who} has {s} apples, buys {a} bags of {b} apples each and {c} loose apples, then gives {d} apples "
             f"to a friend. How many apples does {who} have now?")
        w = (f"The bags hold {a} × {b} = {a * b} apples.\nIn all: {s} + {a * b} + {c} = {s + a * b + c}.\n"
             f"After giving {d} away: {s + a * b + c} - {d} = {ans}.")
    return q, w, ans


def _split_bill(r: random.Random, zh: bool):
    """n people order k dishes at p each plus a tip t; each pays (k*p + t) / n (chosen to divide exactly)"""
    n, k, p = r.randint(2, 6), r.randint(2, 8), r.randint(5, 30)
    t = (-(k * p)) % n + n * r.randint(0, 4)
    total = k * p + t
    ans = total // n
    if zh:
        q = f"{n}个人吃饭，点了{k}道菜，每道{p}元，另付小费{t}元。大家平均分摊，每人付多少元？"
        w = f"菜钱：{k} × {p} = {k * p}元。\n总计：{k * p} + {t} = {total}元。\n每人：{total} ÷ {n} = {ans}元。"
    else:
        q = (f"{n} friends order {k} dishes at {p} dollars each and leave a {t} dollar tip. They split the bill "
             f"equally. How many dollars does each friend pay?")
        w = f"Dishes: {k} × {p} = {k * p}.\nWith the tip: {k * p} + {t} = {total}.\nEach: {total} ÷ {n} = {ans}."
    return q, w, ans


def _travel(r: random.Random, zh: bool):
    """speed v for h1 hours, then v2 for h2 hours; total distance"""
    v1, h1, v2, h2 = r.randint(3, 12) * 5, r.randint(1, 5), r.randint(3, 12) * 5, r.randint(1, 4)
    ans = v1 * h1 + v2 * h2
    if zh:
        q = f"一辆车先以每小时{v1}千米的速度行驶{h1}小时，再以每小时{v2}千米的速度行驶{h2}小时。一共行驶了多少千米？"
        w = f"第一段：{v1} × {h1} = {v1 * h1}千米。\n第二段：{v2} × {h2} = {v2 * h2}千米。\n合计：{v1 * h1} + {v2 * h2} = {ans}千米。"
    else:
        q = (f"A train runs at {v1} km per hour for {h1} hours, then at {v2} km per hour for {h2} hours. "
             f"How many kilometres does it travel in total?")
        w = f"First part: {v1} × {h1} = {v1 * h1}.\nSecond part: {v2} × {h2} = {v2 * h2}.\nTotal: {v1 * h1} + {v2 * h2} = {ans}."
    return q, w, ans


def _savings(r: random.Random, zh: bool):
    """save w per week for n weeks, spend a third... : start + w*n - cost"""
    start, wk, n = r.randint(0, 50), r.randint(2, 15), r.randint(3, 10)
    cost = r.randint(1, start + wk * n)
    ans = start + wk * n - cost
    if zh:
        who = r.choice(NAMES_ZH)
        q = f"{who}原有{start}元，之后每周存{wk}元，存了{n}周，然后花{cost}元买了一本书。{who}还剩多少元？"
        w = f"存下：{wk} × {n} = {wk * n}元。\n共有：{start} + {wk * n} = {start + wk * n}元。\n买书后：{start + wk * n} - {cost} = {ans}元。"
    else:
        who = r.choice(NAMES_EN)
        q = (f"{who} has {start} dollars, saves {wk} dollars a week for {n} weeks, then spends {cost} dollars on a "
             f"book. How many dollars does {who} have left?")
        w = (f"Saved: {wk} × {n} = {wk * n}.\nTotal: {start} + {wk * n} = {start + wk * n}.\n"
             f"After the book: {start + wk * n} - {cost} = {ans}.")
    return q, w, ans


def _boxes(r: random.Random, zh: bool):
    """rows x cols eggs per box, b boxes, e broken, packed into cartons of c: how many full cartons"""
    rows, cols, b, c = r.randint(2, 5), r.randint(2, 6), r.randint(2, 9), r.choice((6, 10, 12))
    total = rows * cols * b
    e = r.randint(0, min(10, total - 1))
    ans = (total - e) // c
    if zh:
        q = (f"每个盒子里的鸡蛋排成{rows}行，每行{cols}个。一共有{b}盒，其中{e}个鸡蛋破了。把完好的鸡蛋每{c}个装一袋，"
             f"能装满多少袋？")
        w = (f"每盒：{rows} × {cols} = {rows * cols}个。\n共：{rows * cols} × {b} = {total}个。\n"
             f"完好：{total} - {e} = {total - e}个。\n装满：{total - e} ÷ {c} = {ans}袋（余{(total - e) % c}个）。")
    else:
        q = (f"A box holds eggs in {rows} rows of {cols}. There are {b} boxes and {e} eggs are broken. The good eggs "
             f"are packed in cartons of {c}. How many cartons can be filled completely?")
        w = (f"Per box: {rows} × {cols} = {rows * cols}.\nAll boxes: {rows * cols} × {b} = {total}.\n"
             f"Good eggs: {total} - {e} = {total - e}.\nFull cartons: {total - e} ÷ {c} = {ans} "
             f"(remainder {(total - e) % c}).")
    return q, w, ans


TEMPLATES = (_shop, _split_bill, _travel, _savings, _boxes)

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
    """Word problems of 3-4 steps; passed when the parsed final answer equals the true one."""

    name = "arithmetic"

    def generate(self, split: str, n: int = 100, seed: int = 0) -> list[Example]:
        split = check_split(split)

        def make(r: random.Random) -> Example:
            template, zh = r.choice(TEMPLATES), r.random() < 0.5
            q, working, ans = template(r, zh)
            end = f"\n答案是 {ans}。" if zh else f"\nThe answer is {ans}."
            return Example(self.name, split, "arithmetic:" + q, q, working + end, "zh" if zh else "en",
                           {"answer": ans, "template": template.__name__.strip("_")})

        return draw_unique(make, split, n, rng_for(self.name, split, seed), self.name)

    def verify(self, example: Example, response: str) -> Verdict:
        got = final_answer(response)
        want = example.meta["answer"]
        ok = got is not None and abs(got - want) < 1e-9
        reason = "no number in the response" if got is None else f"final answer {got:g}, expected {want}"
        return Verdict.from_checks({"answer": ok}, {"answer": reason})
