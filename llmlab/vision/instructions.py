"""Visual instructions about food images, in English and Chinese, and a scorer for the answers.

LLaVA's stage 2 data are questions about an image with answers (GPT-4 wrote them from COCO captions and boxes);
here the image generator's ground truth writes them. Each example: an image, a question of one ``KINDS`` kind,
a reference answer, and the word the answer must contain (:func:`correct`)::

    what      "What food is this?"                  -> "It is a mango."             这是什么食物？ -> 这是芒果。
    colour    "What colour is the food?"            -> "It is yellow."              这个食物是什么颜色？ -> 黄色。
    shape     "What shape is it?"                   -> "It is oval."                它是什么形状？ -> 椭圆形。
    meal      "Which meal would you eat this at?"   -> "At dessert."                这适合哪一餐？ -> 甜点。
    caption   "Describe the image."                 -> "a photo of a mango."        (stage 1: captions)

The split of the images follows :func:`llmlab.vision.images.food_dataset` (another variation stream per split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..tasks.food import COLOURS, MEALS, SHAPES, Food
from . import images

KINDS = ("what", "colour", "shape", "meal")
QUESTIONS = {
    ("what", "en"): "What food is this?", ("what", "zh"): "这是什么食物？",
    ("colour", "en"): "What colour is the food?", ("colour", "zh"): "这个食物是什么颜色？",
    ("shape", "en"): "What shape is it?", ("shape", "zh"): "它是什么形状？",
    ("meal", "en"): "Which meal would you eat this at?", ("meal", "zh"): "这适合哪一餐？",
    ("caption", "en"): "Describe the image.", ("caption", "zh"): "描述这张图片。",
}


@dataclass
class VisualInstruction:
    image: np.ndarray  # (H, W, 3) in [0, 1]
    food: Food
    kind: str
    lang: str
    question: str
    answer: str
    key: str  # the word a right answer contains

    @property
    def pixel_values(self):
        return images.to_tensor(self.image)[0]


def answer_for(f: Food, kind: str, lang: str) -> tuple[str, str]:
    """(reference answer, key word) for one food and question kind."""
    zh = lang == "zh"
    if kind == "what":
        return (f"这是{f.name_zh}。", f.name_zh) if zh else (f"It is a {f.name}.", f.name)
    if kind == "colour":
        w = COLOURS[f.colour][1][0] if zh else COLOURS[f.colour][0][0]
        return (f"{w}。", w) if zh else (f"It is {w}.", w)
    if kind == "shape":
        w = SHAPES[f.shape][1][0] if zh else SHAPES[f.shape][0][0]
        return (f"{w}。", w) if zh else (f"It is {w}.", w)
    if kind == "meal":
        w = MEALS[f.meal][1] if zh else MEALS[f.meal][0]
        return (f"{w}。", w) if zh else (f"At {w}.", w)
    if kind == "caption":
        return (f"一张{f.name_zh}的照片。", f.name_zh) if zh else (f"a photo of a {f.name}.", f.name)
    raise KeyError(kind)


def visual_instructions(split: str = "train", n: int = 500, seed: int = 0, kinds=KINDS, langs=("en", "zh"),
                        image_size: int = 32) -> list[VisualInstruction]:
    """``n`` (image, question, answer) examples: foods drawn uniformly, kinds and languages at random."""
    data = images.food_dataset(split, n, seed, image_size=image_size)
    rng = images.rng_for("instructions", split, seed)
    out = []
    for obj in data["objects"]:
        kind, lang = kinds[rng.integers(len(kinds))], langs[rng.integers(len(langs))]
        answer, key = answer_for(obj.food, kind, lang)
        out.append(VisualInstruction(obj.image, obj.food, kind, lang, QUESTIONS[kind, lang], answer, key))
    return out


def correct(example: VisualInstruction, response: str) -> bool:
    """The answer names the right value (English: whole words, case-insensitive) and no other value of the kind."""
    import re

    def has(word):
        if example.lang == "zh":
            return word in response
        return re.search(rf"\b{re.escape(word.lower())}\b", response.lower()) is not None

    if not has(example.key):
        return False
    if example.kind in ("colour", "shape", "meal"):
        table = {"colour": COLOURS, "shape": SHAPES, "meal": MEALS}[example.kind]
        others = [(v[1][0] if example.lang == "zh" else v[0][0]) if example.kind != "meal" else
                  (v[1] if example.lang == "zh" else v[0]) for v in table.values()]
        return sum(has(w) for w in others if w not in example.key) == 0  # 金黄色 holds 黄色: not another value
    return True
