"""Training and scoring the course VLM on visual instructions: LLaVA's two stages, greedy answers, VQA accuracy.

::

    from llmlab.vision import vqa
    vlm, tok, card = vqa.train_food_vlm(vqa.RECIPES["cpu"])   # the zoo's food-vlm recipe (notebook 4's run)
    feats = vqa.image_features(vlm, pixel_values)             # the frozen tower's tokens, computed once
    vqa.train_stage(vlm, tok, data, feats, steps=600, params=..., lr=1e-3)
    acc = vqa.vqa_accuracy(test, vqa.answer(vlm, tok, test, test_feats))     # kind -> accuracy
    vqa.chance_levels(train, test)                            # kind -> {"uniform", "majority"} baselines

What made the difference at the default size (measured with the course's ``cpu`` zoo models, Week 8 notebook 4):

- **the chat model**: ``llama-base`` has never seen its own chat tokens (their embeddings are untrained), so the
  frozen LM of stage 1 reads the template as noise; ``llama-chat`` (Week 4's SFT) has learned them.
- **the class token** (``select="all"``, the ``"full"`` strategy of ``LlavaForConditionalGeneration``): CLIP pools
  only the class token of its last layer, so the last block never learned anything for the patch tokens; the
  class token is the one feature trained to say what the image shows.
- **stage 2 trains the whole (1.8M-parameter) LM**, as LLaVA-1.5 does, rather than rank-8 LoRA adapters.

With ``RECIPES["cpu"]`` (one run of notebook 4, 4 CPU-minutes) on 400 test questions: colour 90 %, food 17 %, shape
36 %, meal 40 %, against majority-answer chance 18 %, 0 %, 21 %, 25 % (uniform 9 %, 2 %, 10 %, 20 %); the earlier recipe
(``llama-base``, patch tokens only, rank-8 LoRA, 2000 images) gave 16 %, 0 %, 11 %, 25 %.

Chance: ``uniform`` is one over the number of values a kind has among the foods; ``majority`` always answers the
most frequent value of the training answers (the better baseline: food colours and meals are not uniform).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from . import instructions
from .vlm import VLM, build_example, collate, greedy_from_embeds, splice_image_features

RECIPES = {  # the zoo's food-vlm (and notebook 4's RUN): sizes of the data, steps, learning rates
    "fast": dict(lm="llama-chat", select="all", n_train=400, n_eval=64, stage1_steps=40, stage2_steps=80, batch=16,
                 lr1=2e-3, lr2=2e-3, stage2="full"),
    "cpu": dict(lm="llama-chat", select="all", n_train=6000, n_eval=400, stage1_steps=150, stage2_steps=600, batch=16,
                lr1=2e-3, lr2=2e-3, stage2="full"),
}
RECIPES["gpu"] = dict(RECIPES["cpu"], n_train=10000, n_eval=1000, stage2_steps=3000, batch=64)


@torch.no_grad()
def image_features(vlm: VLM, pixel_values: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The frozen vision tower's tokens (n, N, D_v) that the projector reads (class token first if select="all")."""
    out = [vlm.vision_tower(pixel_values[i:i + batch]).last_hidden_state for i in range(0, len(pixel_values), batch)]
    h = torch.cat(out)
    return h[:, 1:] if vlm.select == "patches" else h


def _embed(vlm: VLM, ids: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    emb = vlm.language_model.model.embed_tokens(ids)
    return splice_image_features(emb, ids, vlm.multi_modal_projector(feats), vlm.image_token_id)


def train_stage(vlm: VLM, tokenizer, data, feats: torch.Tensor, steps: int, params, lr: float, batch: int = 16,
                seed: int = 0, warmup: int = 30, log=None, desc: str | None = None, embed=None) -> list[float]:
    """AdamW on ``params`` (linear warm-up, cosine decay) over random batches of (image features, question, answer);
    the loss is on the answers only (:func:`build_example`'s label mask). ``desc``: show a progress bar with that
    title; ``embed(ids, feats) -> inputs_embeds``: another projector + splice (default: the VLM's). Returns the losses."""
    from ..progress import progress

    embed = embed or (lambda ids, f: _embed(vlm, ids, f))
    examples = [build_example(tokenizer, e.question, e.answer, vlm.num_image_tokens) for e in data]
    params = list(params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    losses = []
    vlm.train()
    for step in (progress(range(steps), desc=desc) if desc else range(steps)):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(len(examples), (batch,), generator=g)
        ids, mask, labels = collate([examples[i] for i in idx], tokenizer.pad_token_id)
        out = vlm.language_model(inputs_embeds=embed(ids, feats[idx]), attention_mask=mask, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
        if log and (step % 100 == 0 or step == steps - 1):
            log(f"[food-vlm] step {step}: loss {np.mean(losses[-20:]):.3f}")
    vlm.eval()
    return losses


def end_ids(tokenizer) -> list[int]:
    """The tokens that end an answer: the chat template's ``<|end|>`` and the tokenizer's end of text."""
    return [tokenizer.convert_tokens_to_ids("<|end|>"), tokenizer.eos_token_id]


@torch.no_grad()
def answer(vlm: VLM, tokenizer, data, feats: torch.Tensor, max_new_tokens: int = 8, embed=None) -> list[str]:
    """Greedy answers to ``data``'s questions, batched by question (prompts of one question have the same length);
    ``embed`` as in :func:`train_stage`."""
    embed = embed or (lambda ids, f: _embed(vlm, ids, f))
    out, groups, ends = [None] * len(data), {}, end_ids(tokenizer)
    for i, e in enumerate(data):
        groups.setdefault(e.question, []).append(i)
    for q, idx in groups.items():
        ids = build_example(tokenizer, q, None, vlm.num_image_tokens)[0].repeat(len(idx), 1)
        new = greedy_from_embeds(vlm.language_model, embed(ids, feats[idx]), max_new_tokens, ends)
        for j, i in enumerate(idx):
            row = new[j].tolist()
            cut = min([row.index(t) for t in ends if t in row], default=len(row))
            out[i] = tokenizer.decode(row[:cut], skip_special_tokens=True).strip()
    return out


def vqa_accuracy(data, responses) -> dict[str, float]:
    """Question kind -> share of right answers (:func:`instructions.correct`)."""
    table = {}
    for e, r in zip(data, responses):
        table.setdefault(e.kind, []).append(instructions.correct(e, r))
    return {k: float(np.mean(v)) for k, v in sorted(table.items())}


def chance_levels(train, test) -> dict[str, dict[str, float]]:
    """Kind -> {"uniform": 1 / number of values among the foods, "majority": accuracy on ``test`` of always giving
    the most frequent training answer of that kind (and language)}."""
    from ..tasks import FOODS

    out = {}
    for kind in sorted({e.kind for e in test}):
        values = {instructions.answer_for(f, kind, "en")[1] for f in FOODS}
        counts = {}
        for e in train:
            if e.kind == kind:
                counts.setdefault(e.lang, {}).setdefault(e.answer, 0)
                counts[e.lang][e.answer] += 1
        best = {lang: max(c, key=c.get) for lang, c in counts.items()}
        rows = [e for e in test if e.kind == kind]
        majority = np.mean([instructions.correct(e, best.get(e.lang, "")) for e in rows])
        out[kind] = {"uniform": 1 / len(values), "majority": float(majority)}
    return out


def train_food_vlm(recipe: dict, tier: str | None = None, seed: int = 0, log=None):
    """The zoo's ``food-vlm``: the tier's food-clip vision tower (frozen) + a 2-layer projector + the recipe's LM;
    stage 1 the projector on captions, stage 2 the projector and the LM (``stage2="full"``, or ``"lora"``: rank-8
    adapters) on the instructions. Returns (vlm (eval, LoRA merged), tokenizer, card: accuracies, chance, times)."""
    import os

    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed (probed by transformers) would announce it on stderr
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .. import zoo
    from ..finetune.lora import LLAMA_TARGETS, inject_lora, merge_and_unload
    from ..models.llama import from_hf_llama
    from . import pretrained
    from .vlm import add_image_token

    torch.manual_seed(seed)
    t0, c0 = time.time(), time.process_time()
    path = zoo.pretrained(recipe["lm"], tier)
    tok = AutoTokenizer.from_pretrained(path)
    with zoo._quiet_transformers():
        lm = from_hf_llama(AutoModelForCausalLM.from_pretrained(path))
    image_id = add_image_token(tok, lm)
    clip, _ = pretrained.load_food_clip(tier)
    vlm = VLM(clip.vision_model.requires_grad_(False), lm, image_id, select=recipe["select"])
    n, b = recipe["n_train"], recipe["batch"]
    captions = instructions.visual_instructions("train", n, seed=seed + 1, kinds=("caption",))
    train = instructions.visual_instructions("train", n, seed=seed + 2)
    test = instructions.visual_instructions("test", recipe["n_eval"], seed=seed)
    feats = {k: image_features(vlm, torch.stack([e.pixel_values for e in d]))
             for k, d in [("captions", captions), ("train", train), ("test", test)]}
    before = vqa_accuracy(test, answer(vlm, tok, test, feats["test"]))
    lm.requires_grad_(False)
    loss1 = train_stage(vlm, tok, captions, feats["captions"], recipe["stage1_steps"],
                        vlm.multi_modal_projector.parameters(), recipe["lr1"], b, seed, log=log)
    after1 = vqa_accuracy(test, answer(vlm, tok, test, feats["test"]))
    if recipe["stage2"] == "lora":
        inject_lora(lm, LLAMA_TARGETS, r=8, alpha=16)
    else:
        lm.requires_grad_(True)
    loss2 = train_stage(vlm, tok, train, feats["train"], recipe["stage2_steps"],
                        [p for p in vlm.parameters() if p.requires_grad], recipe["lr2"], b, seed, log=log)
    after2 = vqa_accuracy(test, answer(vlm, tok, test, feats["test"]))
    if recipe["stage2"] == "lora":
        vlm.language_model = merge_and_unload(vlm.language_model)
    card = {"vqa_accuracy": after2, "vqa_accuracy_stage1": after1, "vqa_accuracy_before": before,
            "chance": chance_levels(train, test), "recipe": recipe, "vision": "food-clip", "language": recipe["lm"],
            "loss": {"stage1": [float(np.mean(loss1[:5])), float(np.mean(loss1[-20:]))],
                     "stage2": [float(np.mean(loss2[:5])), float(np.mean(loss2[-20:]))]},
            "train_wall_s": time.time() - t0, "train_cpu_s": time.process_time() - c0}
    return vlm.eval(), tok, card
