"""Week 8 library: the image generator's ground truth, CLIP (loss, HF mapping), the Q-Former, the VLM splicing."""

import math

import numpy as np
import pytest
import torch

from llmlab.tasks import FOODS, food
from llmlab.vision import images
from llmlab.vision.clip import CLIP, CLIPConfig, clamp_logit_scale, clip_loss, recall_at_k, to_hf_clip
from llmlab.vision.text import TextConfig, caption_tokenizer
from llmlab.vision.vit import VisionConfig


@pytest.mark.parametrize("key", ["apple", "banana", "donut", "ramen", "baguette", "cheese"])
def test_mask_is_the_object(key):
    """Without variation, lighting or noise, every masked pixel of a smooth food has the table's colour
    exactly, and the background has none of it: the mask is what was drawn."""
    f = food(key)
    o = images.render_object(f.colour, f.shape, "smooth", f.size, variation=False, noise=0.0, seed=1)
    colour = images.rgb(f.colour)
    assert o.mask.sum() > 20
    assert np.abs(o.image[o.mask] - colour).max() < 1e-6  # float32 copies of one value
    assert (np.abs(o.image[~o.mask] - colour).max(-1) > 0.05).all()  # the table top never has the food's colour


def test_box_is_tight_and_occlusion_hides_pixels():
    for seed in range(20):
        o = images.render_food(food("pizza"), seed=seed, occlusion=1.0)
        x0, y0, x1, y1 = o.box
        ys, xs = np.nonzero(o.mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
        assert 0.0 < o.occluded < 0.6  # the card always hides part of it, never most of it


def test_scene_ground_truth():
    for seed in range(10):
        s = images.render_scene(seed=seed)
        masks = np.stack([o.mask for o in s.objects])
        assert 2 <= len(s.objects) <= 4 and masks.sum(0).max() == 1  # objects never overlap
        facts = s.facts()
        assert facts["scene"] in images.SCENES and len(facts["objects"]) == len(s.objects)
        meal = images.SCENES[s.label][0]
        assert sum(o["meal"] == meal for o in facts["objects"]) >= len(s.objects) - 1  # at most one distractor
        assert all(name in images.scene_caption(s) for name in (o.food.name for o in s.objects))


def test_splits_and_held_out_pairs():
    test = images.attribute_dataset("test", n=200, seed=0)
    train = images.attribute_dataset("train", n=400, seed=0)
    classes = images.attribute_classes()
    train_pairs = {classes[i] for i in train["labels"].tolist()}
    held = {classes[i] for i, h in zip(test["labels"].tolist(), test["heldout"].tolist()) if h}
    assert held and held <= set(images.HELD_OUT_PAIRS) and not (held & train_pairs)
    assert not set(images.HELD_OUT_PAIRS) & {(f.colour, f.shape) for f in FOODS}  # no food has them either
    a, b = images.food_dataset("train", 8, seed=0), images.food_dataset("train", 8, seed=0)
    assert torch.equal(a["pixel_values"], b["pixel_values"])  # seeded
    assert not torch.equal(a["pixel_values"], images.food_dataset("validation", 8, seed=0)["pixel_values"])


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    tok = caption_tokenizer()
    cfg = CLIPConfig(VisionConfig(image_size=16, patch_size=4, hidden_size=32, intermediate_size=64),
                     TextConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=96, max_position_embeddings=16),
                     projection_dim=24)
    return CLIP(cfg).eval(), tok


def test_clip_matches_transformers(tiny_clip):
    """Same weights in transformers' CLIPModel: same logits (float32 round-off through 2 + 2 blocks: 1e-5)."""
    model, tok = tiny_clip
    ids, mask = tok.encode(["a red round apple.", "一个黄色月牙形的香蕉。", "a photo of a donut."], 16)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x, ids, mask), to_hf_clip(model)(input_ids=ids, attention_mask=mask, pixel_values=x)
    assert torch.allclose(ours.logits_per_image, theirs.logits_per_image, atol=1e-5)


def test_clip_loss_matches_open_clip():
    """open_clip's ClipLoss on the same unit vectors and scale: float32 cross-entropies, 1e-6."""
    import open_clip

    g = torch.Generator().manual_seed(0)
    for B, E in [(1, 8), (5, 16), (32, 7)]:
        img = torch.nn.functional.normalize(torch.randn(B, E, generator=g), dim=-1)
        txt = torch.nn.functional.normalize(torch.randn(B, E, generator=g), dim=-1)
        scale = torch.tensor(14.3)
        assert abs(clip_loss(img, txt, scale).item() - open_clip.loss.ClipLoss()(img, txt, scale).item()) < 1e-6


def test_logit_scale_clamp_and_recall(tiny_clip):
    model, _ = tiny_clip
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    clamp_logit_scale(model)
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.95, 0.9, 0.0], [0.3, 0.2, 0.1]])  # true pair ranked 1st, 2nd, 3rd
    assert recall_at_k(sim, (1, 2)) == pytest.approx({"R@1": 1 / 3, "R@2": 2 / 3})


def test_food_clip_zoo_round_trip(tmp_path, monkeypatch):
    """A 3-step build: the folder holds a transformers CLIPModel, and load gives back the same embeddings."""
    from llmlab.vision import pretrained

    monkeypatch.setitem(pretrained.RECIPES, "fast", dict(width=16, layers=1, steps=3, batch=8, n_train=16, lr=1e-3))
    path = pretrained.food_clip("fast", cache=tmp_path, log=lambda *a: None)
    model, tok = pretrained.load_food_clip("fast", cache=tmp_path, log=lambda *a: None)
    assert (path / "model.safetensors").is_file() and len(tok) == len(caption_tokenizer())
    from transformers import CLIPModel

    hf = CLIPModel.from_pretrained(path).eval()
    x = images.food_dataset("test", 2)["pixel_values"]
    ids, mask = tok.encode(["a photo of a mango.", "a red round thing."])
    with torch.no_grad():  # float32 through one block per tower: 1e-5
        assert torch.allclose(model(x, ids, mask).logits_per_image,
                              hf(input_ids=ids, attention_mask=mask, pixel_values=x).logits_per_image, atol=1e-5)


def test_visual_instructions_and_scorer():
    from llmlab.vision import instructions

    exs = instructions.visual_instructions("train", 40, seed=0)
    assert {e.kind for e in exs} == set(instructions.KINDS) and {e.lang for e in exs} == {"en", "zh"}
    assert all(instructions.correct(e, e.answer) for e in exs)  # every reference answer passes
    mango = next(e for e in instructions.visual_instructions("train", 200, seed=0) if e.kind == "colour" and e.lang == "en")
    assert not instructions.correct(mango, f"It is {mango.key} and purple." if mango.key != "purple" else "It is purple and red.")
    assert not instructions.correct(mango, "I do not know.")
