"""Week 8 library: the chance levels VQA accuracy is compared with, and the answer scorer they rely on."""

from llmlab.tasks import FOODS
from llmlab.vision import instructions
from llmlab.vision.vqa import chance_levels, vqa_accuracy


def _ask(f, kind, lang="en"):
    answer, key = instructions.answer_for(f, kind, lang)
    return instructions.VisualInstruction(None, f, kind, lang, instructions.QUESTIONS[kind, lang], answer, key)


def test_chance_levels_majority_and_uniform():
    a = FOODS[0]
    b = next(f for f in FOODS if f.colour != a.colour and a.colour not in f.colour and f.colour not in a.colour)
    train = [_ask(a, "colour")] * 3 + [_ask(b, "colour")]  # the majority colour is a's
    test = [_ask(a, "colour"), _ask(b, "colour")]
    levels = chance_levels(train, test)["colour"]
    n_colours = len({f.colour for f in FOODS})
    assert levels["majority"] == 0.5  # always answering a's colour is right on a's question only
    assert abs(levels["uniform"] - 1 / n_colours) < 1e-12


def test_vqa_accuracy_per_kind():
    f = FOODS[0]
    data = [_ask(f, "colour"), _ask(f, "colour"), _ask(f, "what", "zh")]
    acc = vqa_accuracy(data, [data[0].answer, "I do not know.", f"这是{f.name_zh}。"])
    assert acc == {"colour": 0.5, "what": 1.0}
