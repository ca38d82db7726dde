"""The week's CLIP in the course zoo: ``food-clip``, trained on the spot the first time it is asked for.

::

    from llmlab.vision import pretrained
    model, tok = pretrained.load_food_clip()      # a course CLIP (eval mode) and its caption tokenizer
    path = pretrained.food_clip()                 # the folder: a transformers CLIPModel (config.json, model.safetensors),
                                                  # vocab.json (the caption words) and zoo.json (recipe, accuracy)
    vlm, tok = pretrained.load_vlm("food-vlm")    # the week's own small VLM (LlavaForConditionalGeneration)

The recipe is notebook 1's (:func:`train_clip`): foods and seen attribute objects, one random English or Chinese
caption per image, AdamW with warm-up and cosine decay, the temperature clamped. Tiers as in :mod:`llmlab.zoo`:
``fast`` (a toy, seconds: it only makes the later notebooks run), ``cpu`` (the default: ~5 CPU-minutes),
``gpu``. The folder is published with an atomic rename under ``$LLMLAB_CACHE/zoo/food-clip-<tier>``, like the
language models; a build holds a lock so that two notebooks never train it twice. ``zoo.json`` records the
zero-shot accuracy on the test foods (``food_zero_shot``, chance 2 %) and on the 110 colour-shape classes of the
attribute objects, seen pairs and the **held-out pairs** no training image had (``attribute_zero_shot``, chance
0.9 %; colour alone 9 %); an older folder without the latter gets it added on first use (evaluation only).

``food-vlm`` (notebook 4's model) is published by notebook 4 at the default size; when a notebook asks for it
before (or in FAST mode), :func:`food_vlm` builds it with the same recipe (:data:`llmlab.vision.vqa.RECIPES`:
the tier's food-clip tower, the Week 4 ``llama-chat``, two stages) and records VQA accuracy per question type
before and after, with the chance levels, in its ``zoo.json``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ..zoo import _lock, _quiet_transformers, _tier, zoo_dir
from . import images
from .clip import CLIP, CLIPConfig, clamp_logit_scale, encode_images, to_hf_clip, zero_shot_classifier
from .text import CaptionTokenizer, TextConfig, caption_tokenizer
from .vit import VisionConfig

RECIPES = {
    "fast": dict(width=32, layers=2, steps=100, batch=64, n_train=600, lr=1e-3),
    "cpu": dict(width=64, layers=2, steps=1500, batch=128, n_train=3000, lr=1e-3),
    "gpu": dict(width=128, layers=4, steps=5000, batch=256, n_train=20000, lr=5e-4),
}


def clip_config(width: int, layers: int, vocab_size: int) -> CLIPConfig:
    return CLIPConfig(VisionConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=4,
                                   intermediate_size=4 * width),
                      TextConfig(vocab_size=vocab_size, hidden_size=width, num_hidden_layers=layers,
                                 num_attention_heads=4, intermediate_size=4 * width), projection_dim=width)


def train_clip(width=64, layers=2, steps=1500, batch=128, n_train=3000, lr=1e-3, seed=0, log=None):
    """Train a course CLIP on foods + seen attribute objects; returns (model (eval), tokenizer, losses)."""
    torch.manual_seed(seed)
    tok = caption_tokenizer()
    foods, attrs = images.food_dataset("train", n_train, seed), images.attribute_dataset("train", n_train, seed)
    X, objs = torch.cat([foods["pixel_values"], attrs["pixel_values"]]), foods["objects"] + attrs["objects"]
    model = CLIP(clip_config(width, layers, len(tok)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    rng, gen, losses = random.Random(seed), torch.Generator().manual_seed(seed), []
    model.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(len(X), (batch,), generator=gen)
        ids, mask = tok.encode([rng.choice(images.captions(objs[i], rng.choice(["en", "en", "zh"]))) for i in idx])
        loss = model(X[idx], ids, mask).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clamp_logit_scale(model)
        losses.append(loss.item())
        if log and (step % 250 == 0 or step == steps - 1):
            log(f"[food-clip] step {step}: loss {loss.item():.3f}")
    return model.eval(), tok, losses


def food_zero_shot(model: CLIP, tok: CaptionTokenizer, n: int = 500) -> float:
    """Zero-shot accuracy on the test foods with the "a photo of a {}." prompt."""
    from ..tasks import FOODS

    test = images.food_dataset("test", n, seed=0)
    clf = zero_shot_classifier(model, tok, [f.name for f in FOODS])
    return (encode_images(model, test["pixel_values"]) @ clf.T).argmax(1).eq(test["labels"]).float().mean().item()


@torch.no_grad()
def attribute_zero_shot(model: CLIP, tok: CaptionTokenizer, n: int = 500) -> dict:
    """Zero-shot accuracy over the 110 colour-shape classes on the attribute test split (half held-out pairs):
    {"seen", "heldout", "heldout_colour" (the colour right), "chance", "chance_colour"}; notebook 1's prompts."""
    from ..tasks.food import COLOURS, SHAPES

    test = images.attribute_dataset("test", n, seed=0)
    pairs = images.attribute_classes()
    clf = zero_shot_classifier(model, tok, [f"{COLOURS[c][0][0]} {SHAPES[s][0][0]}" for c, s in pairs],
                               ["a photo of a {} thing.", "a {} thing."])
    pred = (encode_images(model, test["pixel_values"]) @ clf.T).argmax(1)
    right, held = pred.eq(test["labels"]), test["heldout"]
    colour = torch.tensor([pairs[p][0] == pairs[t][0] for p, t in zip(pred.tolist(), test["labels"].tolist())])
    return {"seen": right[~held].float().mean().item(), "heldout": right[held].float().mean().item(),
            "heldout_colour": colour[held].float().mean().item(), "chance": 1 / len(pairs),
            "chance_colour": 1 / len(COLOURS)}


def _add_attribute_metrics(path: Path) -> None:
    """Older food-clip folders lack ``attribute_zero_shot``: measure it on the saved weights and add it."""
    meta = json.loads((path / "zoo.json").read_text(encoding="utf-8"))
    if "attribute_zero_shot" in meta:
        return
    with _lock(path.parent / f".{path.name}.lock"):
        meta = json.loads((path / "zoo.json").read_text(encoding="utf-8"))  # another process may have added it
        if "attribute_zero_shot" in meta:
            return
        model, tok = _load_clip(path)
        meta["attribute_zero_shot"] = attribute_zero_shot(model, tok)
        tmp = path / ".zoo.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        tmp.replace(path / "zoo.json")


def food_clip(tier: str | None = None, cache=None, force: bool = False, log=print) -> Path:
    """The folder of the zoo's ``food-clip`` for a tier (trained and cached first if missing)."""
    tier = _tier(tier)
    root = zoo_dir(cache)
    final = root / f"food-clip-{tier}"
    if (final / "zoo.json").is_file() and not force:
        _add_attribute_metrics(final)
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{final.name}.lock"):
        if (final / "zoo.json").is_file() and not force:
            return final
        recipe = RECIPES[tier]
        log(f"[zoo] training 'food-clip' ({tier} tier) into {final} ...")
        t0, c0, threads = time.time(), time.process_time(), torch.get_num_threads()
        if tier == "fast":  # tiny tensors: a second thread only adds synchronisation
            torch.set_num_threads(1)
        try:
            model, tok, losses = train_clip(**recipe, log=log)
        finally:
            torch.set_num_threads(threads)
        meta = {"name": "food-clip", "tier": tier, "recipe": recipe, "config": model.config.to_dict(),
                "final_loss": sum(losses[-20:]) / len(losses[-20:]), "food_zero_shot": food_zero_shot(model, tok),
                "attribute_zero_shot": attribute_zero_shot(model, tok),
                "train_wall_s": time.time() - t0, "train_cpu_s": time.process_time() - c0}
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
        try:
            with _quiet_transformers():
                to_hf_clip(model).save_pretrained(tmp)
            (tmp / "vocab.json").write_text(json.dumps(tok.vocab, ensure_ascii=False), encoding="utf-8")
            (tmp / "zoo.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            tmp.replace(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log(f"[zoo] food-clip ({tier}): zero-shot food accuracy {100 * meta['food_zero_shot']:.1f} %, held-out "
        f"colour-shape pairs {100 * meta['attribute_zero_shot']['heldout']:.1f} % (chance 0.9 %), "
        f"trained in {meta['train_wall_s']:.0f} s ({meta['train_cpu_s']:.0f} CPU-s)")
    return final


def load_food_clip(tier: str | None = None, **kwargs) -> tuple[CLIP, CaptionTokenizer]:
    """(course CLIP in eval mode, its caption tokenizer) from the zoo folder."""
    return _load_clip(food_clip(tier, **kwargs))


def _load_clip(path: Path) -> tuple[CLIP, CaptionTokenizer]:
    from safetensors.torch import load_file

    meta = json.loads((path / "zoo.json").read_text(encoding="utf-8"))
    model = CLIP(CLIPConfig.from_dict(meta["config"]))
    missing, unexpected = model.load_state_dict(load_file(path / "model.safetensors"), strict=False)
    if [k for k in missing if not k.endswith("position_ids")] or unexpected:
        raise RuntimeError(f"{path}: missing {missing}, unexpected {unexpected}")
    vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
    return model.eval(), CaptionTokenizer(vocab)


def publish_vlm(vlm, tokenizer, name: str = "food-vlm", tier: str | None = None, cache=None, card: dict | None = None) -> Path:
    """Publish a course VLM (LoRA merged first, if any) to the zoo as a ``LlavaForConditionalGeneration`` folder with
    its tokenizer and a ``zoo.json`` model card (``card``: measured accuracy, recipe); replaces an older copy."""
    import copy

    from ..finetune.lora import LoRALinear, merge_and_unload
    from .vlm import to_hf_llava

    tier = _tier(tier)
    root = zoo_dir(cache)
    final = root / f"{name}-{tier}"
    root.mkdir(parents=True, exist_ok=True)
    export = copy.deepcopy(vlm)
    if any(isinstance(m, LoRALinear) for m in export.language_model.modules()):
        export.language_model = merge_and_unload(export.language_model)
    with _lock(root / f".{final.name}.lock"):
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
        try:
            with _quiet_transformers():
                to_hf_llava(export).save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
            (tmp / "zoo.json").write_text(json.dumps({"name": name, "tier": tier, **(card or {})}, indent=1,
                                                     ensure_ascii=False), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            tmp.replace(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def food_vlm(tier: str | None = None, cache=None, force: bool = False, log=print) -> Path:
    """The folder of the zoo's ``food-vlm`` for a tier: notebook 4's publication, or (if missing, or made by another
    recipe) built here with the same recipe (:func:`llmlab.vision.vqa.train_food_vlm`) and published by
    :func:`publish_vlm`."""
    from .vqa import RECIPES as VLM_RECIPES, train_food_vlm

    tier = _tier(tier)
    final = zoo_dir(cache) / f"food-vlm-{tier}"

    def current() -> bool:  # published, by this recipe (an older recipe's model is rebuilt)
        return (final / "zoo.json").is_file() and not force and \
            json.loads((final / "zoo.json").read_text(encoding="utf-8")).get("recipe") == VLM_RECIPES[tier]

    if current():
        return final
    zoo_dir(cache).mkdir(parents=True, exist_ok=True)
    with _lock(zoo_dir(cache) / ".food-vlm-build.lock"):  # not publish_vlm's lock: it takes that one itself
        if current():
            return final
        log(f"[zoo] training 'food-vlm' ({tier} tier) into {final} ...")
        threads = torch.get_num_threads()
        if tier == "fast":
            torch.set_num_threads(1)
        try:
            vlm, tok, card = train_food_vlm(VLM_RECIPES[tier], tier)
        finally:
            torch.set_num_threads(threads)
        publish_vlm(vlm, tok, "food-vlm", tier, cache, card={**card, "built_by": "llmlab.vision.pretrained.food_vlm"})
    log(f"[zoo] food-vlm ({tier}): VQA accuracy " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in card["vqa_accuracy"].items())
        + f", trained in {card['train_wall_s']:.0f} s ({card['train_cpu_s']:.0f} CPU-s)")
    return final


def load_vlm(name: str = "food-vlm", tier: str | None = None, cache=None):
    """(``LlavaForConditionalGeneration`` in eval mode, tokenizer) of a published VLM; ``food-vlm`` is built first
    if no notebook has published it yet."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    path = zoo_dir(cache) / f"{name}-{_tier(tier)}"
    if name == "food-vlm":
        path = food_vlm(tier, cache)
    if not (path / "zoo.json").is_file():
        raise FileNotFoundError(f"{path}: not published yet (Week 8 notebook 4 publishes it at the default size)")
    with _quiet_transformers():
        return LlavaForConditionalGeneration.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
