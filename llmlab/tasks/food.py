"""The course food table, and description tasks checked against it.

``FOODS`` (read from ``foods.tsv`` beside this file) is the one place the course's foods are defined: Week 4 asks about them in English and Chinese,
Week 5 builds food-scene preferences on them, Week 8 renders them as images (colour as RGB, shape, texture and
size are there for the renderer). Attribute values are keys of the vocabularies below, which give each value's
Chinese word (and the RGB of a colour); ``food("mango")`` returns one row with both languages.

The verifier reads a response for the table's words (English words whole and case-insensitive, Chinese by
longest match, after removing the food's own name): an attribute is right when its value is mentioned and no
other value of the same attribute is.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from .common import Example, Verdict, check_split, rng_for, sample, split_of

# value -> (English words, Chinese words): the first of each is what the reference answers use
COLOURS = {
    "red": (("red",), ("红色",), "#d62728"), "yellow": (("yellow",), ("黄色",), "#f2c12e"),
    "green": (("green",), ("绿色",), "#3a9d23"), "orange": (("orange",), ("橙色",), "#f28e1c"),
    "brown": (("brown",), ("棕色", "褐色"), "#8b5a2b"), "white": (("white",), ("白色",), "#f5f5f0"),
    "purple": (("purple",), ("紫色",), "#7b3f9e"), "pink": (("pink",), ("粉色", "粉红色"), "#f4a6c0"),
    "black": (("black",), ("黑色",), "#222222"), "golden": (("golden",), ("金黄色", "金色"), "#e0a526"),
    "beige": (("beige",), ("米色",), "#e8d5b0"),
}
SHAPES = {
    "round": (("round",), ("圆形",)), "oval": (("oval",), ("椭圆形",)), "crescent": (("crescent",), ("月牙形",)),
    "triangular": (("triangular",), ("三角形",)), "square": (("square",), ("方形",)),
    "cylindrical": (("cylindrical",), ("圆柱形",)), "long": (("long",), ("长条形",)), "ring": (("ring-shaped",), ("环形",)),
    "bowl": (("bowl-shaped",), ("碗状",)), "flat": (("flat",), ("扁平",)),
}
TASTES = {
    "sweet": (("sweet",), ("甜",)), "sour": (("sour",), ("酸",)), "salty": (("salty",), ("咸",)),
    "spicy": (("spicy",), ("辣",)), "bitter": (("bitter",), ("苦",)), "savoury": (("savoury", "savory"), ("鲜",)),
    "mild": (("mild",), ("清淡",)),
}
CUISINES = {
    "Chinese": (("Chinese",), ("中式", "中国")), "Japanese": (("Japanese",), ("日式", "日本")),
    "Korean": (("Korean",), ("韩式", "韩国")), "Thai": (("Thai",), ("泰式", "泰国")),
    "Indian": (("Indian",), ("印度",)), "Italian": (("Italian",), ("意式", "意大利")),
    "French": (("French",), ("法式", "法国")), "American": (("American",), ("美式", "美国")),
    "Mexican": (("Mexican",), ("墨西哥",)), "Middle Eastern": (("Middle Eastern",), ("中东",)),
    "international": (("international",), ("各国",)),
}
CATEGORIES = {"fruit": ("fruit", "水果"), "dish": ("dish", "菜"), "snack": ("snack", "小吃"),
              "dessert": ("dessert", "甜品"), "drink": ("drink", "饮品"), "bread": ("bread", "面包")}
MEALS = {"breakfast": ("breakfast", "早餐"), "lunch": ("lunch", "午餐"), "dinner": ("dinner", "晚餐"),
         "snack": ("snack", "零食"), "dessert": ("dessert", "甜点")}
TEXTURES = ("smooth", "striped", "dotted", "fuzzy", "grainy", "soft", "patterned", "crispy", "leafy", "cracked",
            "spotted", "stringy", "layered", "flaky", "crusty", "liquid", "holey", "crunchy")
SIZES = ("small", "medium", "large")

TABLE_FILE = Path(__file__).with_name("foods.tsv")  # one row per food: the single source of the table


@dataclass(frozen=True)
class Food:
    key: str
    name: str  # English
    name_zh: str
    category: str
    colour: str
    shape: str
    texture: str
    size: str
    taste: str
    cuisine: str
    meal: str

    @property
    def rgb(self) -> str:
        return COLOURS[self.colour][2]

    def zh(self, attribute: str) -> str:
        """The Chinese word of one attribute's value (``food.zh("colour")`` -> "黄色")."""
        value = getattr(self, attribute)
        table = {"colour": COLOURS, "shape": SHAPES, "taste": TASTES, "cuisine": CUISINES}.get(attribute)
        if table is not None:
            return table[value][1][0]
        return {"category": CATEGORIES, "meal": MEALS}[attribute][value][1]

    def en(self, attribute: str) -> str:
        value = getattr(self, attribute)
        table = {"colour": COLOURS, "shape": SHAPES, "taste": TASTES, "cuisine": CUISINES}.get(attribute)
        return table[value][0][0] if table is not None else value


def load_table(path: str | Path = TABLE_FILE) -> tuple[Food, ...]:
    """The food table from its tab-separated file (header: the field names of :class:`Food`, without ``name``)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return tuple(Food(name=r["key"].replace("_", " "), **r) for r in rows)


FOODS: tuple[Food, ...] = load_table()
_BY_KEY = {f.key: f for f in FOODS}


def food(key: str) -> Food:
    """One row of the table by its key ("mango", "peking_duck") or English name ("peking duck")."""
    return _BY_KEY[key.replace(" ", "_")]


def _check_table():
    for f in FOODS:
        assert f.colour in COLOURS and f.shape in SHAPES and f.taste in TASTES and f.cuisine in CUISINES, f
        assert f.category in CATEGORIES and f.meal in MEALS and f.texture in TEXTURES and f.size in SIZES, f
    assert len({f.name_zh for f in FOODS}) == len(FOODS)


_check_table()

VERIFIED = {"colour": COLOURS, "shape": SHAPES, "taste": TASTES, "cuisine": CUISINES}
# words that are not verified but contain verified ones (甜品 holds 甜): matched first, then ignored
_OTHER_ZH = [v[1] for v in CATEGORIES.values()] + [v[1] for v in MEALS.values()]


def _vocabulary(lang: str) -> dict[str, tuple[str, str] | None]:
    """word -> (attribute, value) for every word of the verified vocabularies in one language."""
    words: dict[str, tuple[str, str] | None] = {}
    for attr, table in VERIFIED.items():
        for value, entry in table.items():
            for w in entry[0 if lang == "en" else 1]:
                words[w.lower() if lang == "en" else w] = (attr, value)
    if lang == "zh":
        words.update({w: None for w in _OTHER_ZH if w not in words})
    return words


_VOCAB = {lang: _vocabulary(lang) for lang in ("en", "zh")}
_PATTERN = {
    "en": re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(_VOCAB["en"], key=len, reverse=True)) + r")\b"),
    "zh": re.compile("|".join(re.escape(w) for w in sorted(_VOCAB["zh"], key=len, reverse=True))),  # longest first
}


def mentioned(text: str, lang: str, name: str = "") -> dict[str, set[str]]:
    """attribute -> the values a text mentions (the food's own ``name`` removed first: "green tea", 甜甜圈)."""
    if name:
        text = re.sub(re.escape(name), " ", text, flags=re.I)
    if lang == "en":
        text = text.lower()
    found: dict[str, set[str]] = {a: set() for a in VERIFIED}
    for w in _PATTERN[lang].findall(text):
        hit = _VOCAB[lang][w]
        if hit is not None:
            found[hit[0]].add(hit[1])
    return found


KINDS = ("describe", "colour", "shape", "taste", "cuisine")
_QUESTIONS = {
    ("describe", "en"): "Food: {name}. Describe it in one sentence: its colour, shape, taste and cuisine.",
    ("describe", "zh"): "用一句话描述{name}：颜色、形状、味道和菜系。",
    ("colour", "en"): "Food: {name}. What colour is it?", ("colour", "zh"): "{name}是什么颜色的？",
    ("shape", "en"): "Food: {name}. What shape is it?", ("shape", "zh"): "{name}是什么形状的？",
    ("taste", "en"): "Food: {name}. What does it taste like?", ("taste", "zh"): "{name}是什么味道的？",
    ("cuisine", "en"): "Food: {name}. Which cuisine is it typical of?", ("cuisine", "zh"): "{name}属于哪种菜系？",
}


def reference_answer(f: Food, kind: str, lang: str) -> str:
    """The table's answer to a question, in the reference templates."""
    if lang == "en":
        name = f.name[0].upper() + f.name[1:]
        return {
            "describe": f"{name} is a {f.en('colour')}, {f.en('shape')} {f.category} with a {f.en('taste')} taste, "
                        f"typical of {f.en('cuisine')} cuisine.",
            "colour": f"It is {f.en('colour')}.",
            "shape": f"It is {f.en('shape')}.",
            "taste": f"It tastes {f.en('taste')}.",
            "cuisine": f"It is typical of {f.en('cuisine')} cuisine.",
        }[kind]
    return {
        "describe": f"{f.name_zh}是一种{f.zh('colour')}、{f.zh('shape')}的{f.zh('category')}，味道{f.zh('taste')}，"
                    f"属于{f.zh('cuisine')}风味。",
        "colour": f"{f.name_zh}是{f.zh('colour')}的。",
        "shape": f"{f.name_zh}是{f.zh('shape')}的。",
        "taste": f"{f.name_zh}的味道是{f.zh('taste')}的。",
        "cuisine": f"{f.name_zh}属于{f.zh('cuisine')}风味。",
    }[kind]


class FoodDescriptions:
    """Questions about the food table in English and Chinese; the verifier checks the facts against the table."""

    name = "food"

    def items(self) -> list[tuple[str, str, str]]:
        return [(f.key, kind, lang) for f in FOODS for kind in KINDS for lang in ("en", "zh")]

    def generate(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        split = check_split(split)
        items = [it for it in self.items() if split_of("food:" + "/".join(it)) == split]
        out = []
        for key, kind, lang in sample(items, n, rng_for(self.name, split, seed), self.name):
            f = _BY_KEY[key]
            prompt = _QUESTIONS[kind, lang].format(name=f.name if lang == "en" else f.name_zh)
            attrs = list(VERIFIED) if kind == "describe" else [kind]
            out.append(Example(self.name, split, f"food:{key}/{kind}/{lang}", prompt, reference_answer(f, kind, lang),
                               lang, {"food": key, "kind": kind, "attributes": attrs}))
        return out

    def verify(self, example: Example, response: str) -> Verdict:
        """One check per asked attribute (its value named, no other value of it), and the language asked in."""
        f = _BY_KEY[example.meta["food"]]
        lang = example.lang
        found = mentioned(response, lang, f.name if lang == "en" else f.name_zh)
        checks, reasons = {}, {}
        for attr in example.meta["attributes"]:
            right, said = getattr(f, attr), found[attr]
            checks[attr] = said == {right}
            word = f.en(attr) if lang == "en" else f.zh(attr)
            reasons[attr] = (f"the {attr} ({word}) is not mentioned" if not said else
                             f"wrong {attr}: {', '.join(sorted(said - {right}))} (the table says {word})")
        han = bool(re.search(r"[\u4e00-\u9fff]", response))
        checks["language"] = han if lang == "zh" else not han
        reasons["language"] = "answer in Chinese (中文作答)" if lang == "zh" else "answer in English"
        return Verdict.from_checks(checks, reasons)
