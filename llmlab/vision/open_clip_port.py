"""The course CLIP in open_clip: a registered model config and the parameter mapping (Week 8, notebook 2).

open_clip builds a model from a JSON config found by name; :func:`register` writes one for a course
:class:`~llmlab.vision.clip.CLIPConfig` and calls ``open_clip.add_model_config``. The architectures are the same
(pre-norm ViT with a class token and ``ln_pre``; causal text Transformer pooled at ``<eos>``; exact GELU; bias-free
projections), only the names and layouts differ::

    course / transformers.CLIPModel                         open_clip.CLIP
    vision_model.embeddings.patch_embedding.weight          visual.conv1.weight
    vision_model.embeddings.class_embedding                 visual.class_embedding
    vision_model.embeddings.position_embedding.weight       visual.positional_embedding
    vision_model.pre_layrnorm / post_layernorm              visual.ln_pre / visual.ln_post
    *.encoder.layers.i.self_attn.{q,k,v}_proj               *.resblocks.i.attn.in_proj_{weight,bias}  (q, k, v stacked)
    *.encoder.layers.i.self_attn.out_proj                   *.resblocks.i.attn.out_proj
    *.encoder.layers.i.layer_norm1 / layer_norm2            *.resblocks.i.ln_1 / ln_2
    *.encoder.layers.i.mlp.fc1 / fc2                        *.resblocks.i.mlp.c_fc / c_proj
    visual_projection.weight (E, D)                         visual.proj (D, E)           (x @ proj: transposed)
    text_model.embeddings.token_embedding.weight            token_embedding.weight
    text_model.embeddings.position_embedding.weight         positional_embedding
    text_model.final_layer_norm                             ln_final
    text_projection.weight (E, D)                           text_projection (D, E)
    logit_scale                                             logit_scale

open_clip's text tower masks only the future (no padding mask); the course one also masks padding keys. The
pooled ``<eos>`` state is the same either way, because padding comes after ``<eos>`` and a causal row never sees it.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import torch

from .clip import CLIP, CLIPConfig

_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
          "self_attn.out_proj": "attn.out_proj"}


def open_clip_config(cfg: CLIPConfig) -> dict:
    """The open_clip model-config dict of a course CLIP's architecture."""
    v, t = cfg.vision, cfg.text
    if v.hidden_act != "gelu" or t.hidden_act != "gelu":
        raise ValueError("open_clip builds exact GELU (or quick_gelu for the whole model): use hidden_act='gelu'")
    return {"embed_dim": cfg.projection_dim,
            "vision_cfg": {"image_size": v.image_size, "patch_size": v.patch_size, "width": v.hidden_size,
                           "layers": v.num_hidden_layers, "head_width": v.hidden_size // v.num_attention_heads,
                           "mlp_ratio": v.intermediate_size / v.hidden_size},
            "text_cfg": {"context_length": t.max_position_embeddings, "vocab_size": t.vocab_size, "width": t.hidden_size,
                         "heads": t.num_attention_heads, "layers": t.num_hidden_layers,
                         "mlp_ratio": t.intermediate_size / t.hidden_size, "pool_type": "eos", "eos_id": t.eos_token_id,
                         "pad_id": t.pad_token_id}}


def register(cfg: CLIPConfig, name: str = "llmlab-food-clip") -> str:
    """Register the config with open_clip under ``name`` (``open_clip.create_model(name)`` then builds it)."""
    import open_clip

    with tempfile.TemporaryDirectory() as d:
        Path(d, f"{name}.json").write_text(json.dumps(open_clip_config(cfg)))
        open_clip.add_model_config(d)  # reads the folder now: it can go afterwards
    return name


def to_open_clip_state_dict(sd: dict) -> dict:
    """Course (``CLIPModel``) parameter names -> open_clip's, with q/k/v stacked and projections transposed."""
    out = {}
    for k, w in sd.items():
        if k.endswith("position_ids"):
            continue
        m = re.match(r"(vision|text)_model\.encoder\.layers\.(\d+)\.(.+)", k)
        if m:
            tower, i, rest = m.groups()
            prefix = f"{'visual.' if tower == 'vision' else ''}transformer.resblocks.{i}."
            if re.match(r"self_attn\.[qkv]_proj\.", rest):
                if rest.startswith("self_attn.q_proj."):
                    kind = rest.rsplit(".", 1)[1]  # weight or bias
                    base = k.replace("self_attn.q_proj.", "self_attn.{}_proj.")
                    out[f"{prefix}attn.in_proj_{kind}"] = torch.cat([sd[base.format(p)] for p in "qkv"])
                continue
            for a, b in _LAYER.items():
                if rest.startswith(a + "."):
                    out[prefix + b + rest[len(a):]] = w
                    break
            else:
                raise KeyError(k)
            continue
        out[_FLAT[k] if k in _FLAT else _rename_flat(k)] = w.T if k.endswith("projection.weight") else w
    return out


_FLAT = {"vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
         "vision_model.embeddings.class_embedding": "visual.class_embedding",
         "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
         "visual_projection.weight": "visual.proj",
         "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
         "text_model.embeddings.position_embedding.weight": "positional_embedding",
         "text_projection.weight": "text_projection", "logit_scale": "logit_scale"}


def _rename_flat(k: str) -> str:
    for a, b in (("vision_model.pre_layrnorm.", "visual.ln_pre."), ("vision_model.post_layernorm.", "visual.ln_post."),
                 ("text_model.final_layer_norm.", "ln_final.")):
        if k.startswith(a):
            return b + k[len(a):]
    raise KeyError(k)


def create_open_clip(cfg: CLIPConfig, name: str = "llmlab-food-clip"):
    """A randomly initialised ``open_clip.CLIP`` of the course architecture (open_clip's own initialisation)."""
    import logging

    import open_clip

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "No pretrained weights loaded ... initialized randomly": that is what we ask for
    try:
        return open_clip.create_model(register(cfg, name), pretrained=None)
    finally:
        root.setLevel(level)


def to_open_clip(model: CLIP, name: str = "llmlab-food-clip"):
    """The same weights in an ``open_clip.CLIP`` (eval mode): identical embeddings up to float round-off."""
    oc = create_open_clip(model.config, name)
    oc.load_state_dict(to_open_clip_state_dict(model.state_dict()), strict=True)
    return oc.eval()
