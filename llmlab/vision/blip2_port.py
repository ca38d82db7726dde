"""The course captioner (:class:`llmlab.vision.qformer.Captioner`) as a ``transformers.Blip2ForConditionalGeneration``.

The config is assembled from the parts: a ``Blip2QFormerConfig`` of the course Q-Former, the language model's
``LlamaConfig`` as ``text_config`` (BLIP-2 takes any causal LM: ``AutoModelForCausalLM.from_config``), the number
of query tokens and the id of an ``<image>`` placeholder token. transformers 5's BLIP-2 expects ``num_query_tokens``
copies of ``<image>`` at the start of ``input_ids`` and writes the projected queries over them (what
``Blip2Processor`` does); the course captioner concatenates the same prefix, so the logits agree.

What differs from the stock class: its ``vision_model`` is a ``Blip2VisionModel`` (EVA-CLIP's ViT-g: fused
``qkv`` without a key bias, a biased patch convolution, no LayerNorm before the blocks, the final LayerNorm on
every token). The course tower is CLIP's (``pre_layrnorm``, separate q/k/v, the final norm on the class token
only), which that class cannot express, so :func:`to_hf_blip2` puts the course tower in as a
``transformers.CLIPVisionModel`` (same weights, same ``last_hidden_state``) in place of ``vision_model``.
Everything else, Q-Former, ``query_tokens``, ``language_projection`` and the language model, loads under the
stock names. A model saved with ``save_pretrained`` therefore reloads with a ``Blip2VisionModel`` whose vision
weights do not match: keep the course object, or re-run :func:`to_hf_blip2`.
"""

from __future__ import annotations

import torch

from .qformer import Captioner


def blip2_config(captioner: Captioner, image_token_id: int):
    """The ``Blip2Config`` of a course captioner (vision config sized like the course ViT, for the record)."""
    from transformers import Blip2Config, Blip2VisionConfig

    v = captioner.vision_model.config
    vision = Blip2VisionConfig(hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
                               num_hidden_layers=v.num_hidden_layers, num_attention_heads=v.num_attention_heads,
                               image_size=v.image_size, patch_size=v.patch_size, layer_norm_eps=v.layer_norm_eps)
    text = captioner.language_model.config.to_hf()
    return Blip2Config(vision_config=vision.to_dict(), qformer_config=captioner.qformer.config.to_hf().to_dict(),
                       text_config=text.to_dict(), num_query_tokens=captioner.qformer.config.num_query_tokens,
                       image_token_id=image_token_id, tie_word_embeddings=text.tie_word_embeddings)


def to_hf_blip2(captioner: Captioner, image_token_id: int):
    """The same weights in a ``Blip2ForConditionalGeneration`` (eval mode), the course CLIP tower as its
    ``vision_model`` (see the module docstring)."""
    from transformers import Blip2ForConditionalGeneration, CLIPVisionModel

    from .vit import hf_vision_config

    hf = Blip2ForConditionalGeneration(blip2_config(captioner, image_token_id))
    clip_tower = CLIPVisionModel(hf_vision_config(captioner.vision_model.config))
    missing, unexpected = clip_tower.load_state_dict(captioner.vision_model.state_dict(), strict=False)
    if [k for k in missing if not k.endswith("position_ids")] or unexpected:
        raise RuntimeError(f"vision tower: missing {missing}, unexpected {unexpected}")
    hf.vision_model = clip_tower
    sd = {"query_tokens": captioner.query_tokens.data}
    sd |= {f"qformer.{k}": v for k, v in captioner.qformer.state_dict().items()}
    sd |= {f"language_projection.{k}": v for k, v in captioner.language_projection.state_dict().items()}
    sd |= {f"language_model.{k}": v for k, v in captioner.language_model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith("vision_model.") and not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"captioner -> Blip2ForConditionalGeneration: missing {missing}, unexpected {unexpected}")
    return hf.eval()


def blip2_inputs(input_ids: torch.Tensor, num_query_tokens: int, image_token_id: int,
                 attention_mask: torch.Tensor | None = None):
    """Prepend the ``<image>`` placeholders that transformers' BLIP-2 fills with the queries: (ids, mask)."""
    B = len(input_ids)
    img = torch.full((B, num_query_tokens), image_token_id, dtype=input_ids.dtype)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    return torch.cat([img, input_ids], 1), torch.cat([torch.ones_like(img), mask], 1)
