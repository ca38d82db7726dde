"""The zoo's ``food-vlm`` by name: notebook 4's recipe as a library function, trained on the spot when missing.

::

    from llmlab.vision import food_vlm
    path = food_vlm.food_vlm()                    # the folder: a LlavaForConditionalGeneration + tokenizer + zoo.json
    vlm, tok, card = food_vlm.train_food_vlm(**food_vlm.RECIPES["fast"])   # a course VLM (eval mode)

Week 8's notebook 4 trains the course VLM and publishes it at the default size
(:func:`llmlab.vision.pretrained.publish_vlm`); a fresh clone, the FAST tier (grading, CI) and
``python -m llmlab.serve --model food-vlm`` need it *before* anyone ran that notebook, so :func:`food_vlm`
trains the same recipe when the folder is missing, as :func:`llmlab.vision.pretrained.food_clip` does for CLIP:
the zoo's ``food-clip`` vision tower (frozen), the 2-layer projector, the zoo's ``llama-base``; stage 1 the
projector alone on captions, stage 2 projector + LoRA (rank 8, every projection) on the visual instructions of
:mod:`llmlab.vision.instructions`; the model card holds the VQA accuracy per question type on test images.
Tiers: ``fast`` (a toy, seconds: it only makes the FAST notebooks and the tests run), ``cpu`` (notebook 4's
default size, ~5 CPU-minutes), ``gpu``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..zoo import _lock, _quiet_transformers, _tier, zoo_dir
from . import instructions, pretrained
from .vlm import VLM, add_image_token, build_example, collate, splice_image_features

RECIPES = {
    "fast": dict(n_train=256, n_eval=64, stage1_steps=15, stage2_steps=40, batch=16, lr=2e-3),
    "cpu": dict(n_train=2000, n_eval=400, stage1_steps=150, stage2_steps=600, batch=16, lr=2e-3),
    "gpu": dict(n_train=8000, n_eval=1000, stage1_steps=600, stage2_steps=3000, batch=32, lr=1e-3),
}


def end_ids(tok) -> list[int]:
    """The tokens that end an answer: the chat template's <|end|> and the tokenizer's end of text."""
    return [t for t in (tok.convert_tokens_to_ids("<|end|>"), tok.eos_token_id) if t is not None]


@torch.no_grad()
def patch_features(vision, pixel_values: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The frozen tower's patch tokens (n, N, D_v): last layer, no CLS, no final norm (LLaVA's features)."""
    return torch.cat([vision(pixel_values[i:i + batch]).last_hidden_state[:, 1:]
                      for i in range(0, len(pixel_values), batch)])


@torch.no_grad()
def answer_features(vlm: VLM, tok, questions: list[str], feats: torch.Tensor, max_new_tokens: int = 8) -> list[str]:
    """Greedy answers to (question, image features) pairs, batched by question (equal prompt lengths)."""
    from .vlm import greedy_from_embeds

    out, groups = [None] * len(questions), {}
    for i, q in enumerate(questions):
        groups.setdefault(q, []).append(i)
    for q, idx in groups.items():
        ids = build_example(tok, q, None, vlm.num_image_tokens)[0].repeat(len(idx), 1)
        emb = splice_image_features(vlm.language_model.model.embed_tokens(ids), ids,
                                    vlm.multi_modal_projector(feats[idx]), vlm.image_token_id)
        new = greedy_from_embeds(vlm.language_model, emb, max_new_tokens, end_ids(tok))
        for j, i in enumerate(idx):
            row = new[j].tolist()
            cut = min([row.index(t) for t in end_ids(tok) if t in row], default=len(row))
            out[i] = tok.decode(row[:cut], skip_special_tokens=True).strip()
    return out


def vqa_accuracy(data, responses) -> dict[str, float]:
    """Accuracy per question kind (:func:`llmlab.vision.instructions.correct`)."""
    table: dict[str, list[bool]] = {}
    for e, r in zip(data, responses):
        table.setdefault(e.kind, []).append(instructions.correct(e, r))
    return {k: float(np.mean(v)) for k, v in sorted(table.items())}


def train_food_vlm(n_train=256, n_eval=64, stage1_steps=15, stage2_steps=40, batch=16, lr=2e-3, seed=0, tier=None,
                   cache=None, log=None):
    """Notebook 4's two stages on the zoo's food-clip tower and llama-base -> (VLM (eval), tokenizer, card)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .. import zoo
    from ..finetune.lora import LLAMA_TARGETS, inject_lora
    from ..models.llama import from_hf_llama

    torch.manual_seed(seed)
    lm_path = zoo.pretrained("llama-base", tier=tier, cache=cache, log=log or (lambda *a: None))
    tok = AutoTokenizer.from_pretrained(lm_path)
    with _quiet_transformers():
        lm = from_hf_llama(AutoModelForCausalLM.from_pretrained(lm_path))
    image_id = add_image_token(tok, lm)
    clip_model, _ = pretrained.load_food_clip(tier, cache=cache, log=log or (lambda *a: None))
    vlm = VLM(clip_model.vision_model.requires_grad_(False), lm, image_id)
    caps = instructions.visual_instructions("train", n_train, seed=1, kinds=("caption",))
    vqa = instructions.visual_instructions("train", n_train, seed=2)
    test = instructions.visual_instructions("test", n_eval, seed=0)
    feats = {k: patch_features(vlm.vision_tower, torch.stack([e.pixel_values for e in d]))
             for k, d in [("captions", caps), ("vqa", vqa), ("test", test)]}

    def stage(data, f, steps, params, name):
        examples = [build_example(tok, e.question, e.answer, vlm.num_image_tokens) for e in data]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        g, losses = torch.Generator().manual_seed(seed), []
        vlm.train()
        for step in range(steps):
            idx = torch.randint(len(examples), (batch,), generator=g)
            ids, mask, labels = collate([examples[i] for i in idx], tok.pad_token_id)
            emb = splice_image_features(vlm.language_model.model.embed_tokens(ids), ids,
                                        vlm.multi_modal_projector(f[idx]), image_id)
            loss = vlm.language_model(inputs_embeds=emb, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if log and (step % 100 == 0 or step == steps - 1):
                log(f"[food-vlm] {name} step {step}: loss {loss.item():.3f}")
        vlm.eval()
        return losses

    for p in vlm.language_model.parameters():
        p.requires_grad_(False)
    loss1 = stage(caps, feats["captions"], stage1_steps, list(vlm.multi_modal_projector.parameters()), "stage 1")
    inject_lora(vlm.language_model, LLAMA_TARGETS, r=8, alpha=16)
    loss2 = stage(vqa, feats["vqa"], stage2_steps, [p for p in vlm.parameters() if p.requires_grad], "stage 2")
    acc = vqa_accuracy(test, answer_features(vlm, tok, [e.question for e in test], feats["test"]))
    card = {"vqa_accuracy": acc, "n_eval": n_eval, "final_loss": {"stage1": float(np.mean(loss1[-5:])),
                                                                  "stage2": float(np.mean(loss2[-5:]))},
            "vision": "food-clip", "language": "llama-base", "recipe": "llmlab.vision.food_vlm"}
    return vlm, tok, card


def food_vlm(tier: str | None = None, cache=None, force: bool = False, log=print) -> Path:
    """The folder of the zoo's ``food-vlm`` for a tier: notebook 4's published model, else trained here first."""
    tier = _tier(tier)
    root = zoo_dir(cache)
    final = root / f"food-vlm-{tier}"
    if (final / "zoo.json").is_file() and not force:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{final.name}.build.lock"):  # publish_vlm takes the folder's own lock
        if (final / "zoo.json").is_file() and not force:
            return final
        log(f"[zoo] training 'food-vlm' ({tier} tier) into {final} ...")
        t0, c0, threads = time.time(), time.process_time(), torch.get_num_threads()
        if tier == "fast":
            torch.set_num_threads(1)
        try:
            vlm, tok, card = train_food_vlm(**RECIPES[tier], tier=tier, cache=cache, log=log)
        finally:
            torch.set_num_threads(threads)
        card.update(run=RECIPES[tier], train_wall_s=time.time() - t0, train_cpu_s=time.process_time() - c0)
        pretrained.publish_vlm(vlm, tok, "food-vlm", tier, cache, card)
    log(f"[zoo] food-vlm ({tier}): VQA accuracy " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in
                                                              card["vqa_accuracy"].items())
        + f"; trained in {card['train_wall_s']:.0f} s")
    return final
