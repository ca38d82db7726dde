"""CLIP (Radford et al., 2021): an image tower and a text tower trained so that matching pairs are close.

::

    images (B, 3, S, S) -> VisionTransformer -> pooler_output (B, Dv) -> visual_projection -> (B, E) -> L2-normalise
    texts  (B, T)       -> TextTransformer   -> pooler_output (B, Dt) -> text_projection   -> (B, E) -> L2-normalise
    logits_per_image = exp(logit_scale) * image_embeds @ text_embeds.T        (B, B): the diagonal are the true pairs
    loss = (cross_entropy(logits_per_image, arange(B)) + cross_entropy(logits_per_image.T, arange(B))) / 2

The temperature is learned as ``logit_scale = log(1 / 0.07)`` at the start and clamped to at most ``log(100)``
after every step (:func:`clamp_logit_scale`), as in the paper and open_clip. Parameter names are those of
``transformers.CLIPModel`` (:func:`to_hf_clip` is a plain ``load_state_dict``); open_clip's names differ and
Week 8's notebook 2 maps them.

Zero-shot classification (:func:`zero_shot_classifier`): embed one caption per class (or several prompt templates
per class and average their normalised embeddings: *prompt ensembling*), and pick the class whose text embedding
is most similar to the image's. Retrieval (:func:`recall_at_k`): rank all texts for each image (and back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .text import TextConfig, TextTransformer
from .vit import VisionConfig, VisionTransformer, hf_vision_config, init_weights

INIT_LOGIT_SCALE = math.log(1 / 0.07)  # temperature 0.07 at the start
MAX_LOGIT_SCALE = math.log(100)  # the clamp: logits at most 100 x cosine similarity


@dataclass
class CLIPConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    projection_dim: int = 64

    def to_dict(self) -> dict:
        return {"vision": self.vision.to_dict(), "text": self.text.to_dict(), "projection_dim": self.projection_dim}

    @classmethod
    def from_dict(cls, d: dict) -> CLIPConfig:
        return cls(VisionConfig(**d["vision"]), TextConfig(**d["text"]), d["projection_dim"])


@dataclass
class CLIPOutput:
    loss: torch.Tensor | None
    logits_per_image: torch.Tensor  # (B_img, B_txt)
    logits_per_text: torch.Tensor  # (B_txt, B_img)
    image_embeds: torch.Tensor  # (B_img, E), unit norm
    text_embeds: torch.Tensor  # (B_txt, E), unit norm


def clip_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE loss of B matching pairs. Embeddings (B, E) already normalised; ``logit_scale`` is the
    multiplier exp(s) (open_clip's ``ClipLoss`` convention)."""
    logits = logit_scale * image_embeds @ text_embeds.T  # (B, B)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.config = cfg
        self.vision_model = VisionTransformer(cfg.vision)
        self.text_model = TextTransformer(cfg.text)
        self.visual_projection = nn.Linear(cfg.vision.hidden_size, cfg.projection_dim, bias=False)
        self.text_projection = nn.Linear(cfg.text.hidden_size, cfg.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(INIT_LOGIT_SCALE))
        self.apply(init_weights)

    def encode_image(self, pixel_values, normalize: bool = True) -> torch.Tensor:
        z = self.visual_projection(self.vision_model(pixel_values).pooler_output)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, input_ids, attention_mask=None, normalize: bool = True) -> torch.Tensor:
        z = self.text_projection(self.text_model(input_ids, attention_mask).pooler_output)
        return F.normalize(z, dim=-1) if normalize else z

    def forward(self, pixel_values, input_ids, attention_mask=None, return_loss: bool = True) -> CLIPOutput:
        img, txt = self.encode_image(pixel_values), self.encode_text(input_ids, attention_mask)
        scale = self.logit_scale.exp()
        logits = scale * img @ txt.T
        loss = clip_loss(img, txt, scale) if return_loss else None
        return CLIPOutput(loss, logits, logits.T, img, txt)


@torch.no_grad()
def clamp_logit_scale(model: CLIP, max_value: float = MAX_LOGIT_SCALE) -> None:
    """Keep the learned temperature in [0, log 100] (call after each optimizer step)."""
    model.logit_scale.clamp_(0, max_value)


@torch.no_grad()
def zero_shot_classifier(model: CLIP, tokenizer, classnames: list[str], templates=("a photo of a {}.",),
                         context_length: int | None = None) -> torch.Tensor:
    """(num_classes, E) unit-norm class embeddings: each class's prompts embedded, averaged, normalised again."""
    T = context_length or model.config.text.max_position_embeddings
    out = []
    for name in classnames:
        ids, mask = tokenizer.encode([t.format(name) for t in templates], T)
        out.append(F.normalize(model.encode_text(ids, mask).mean(0), dim=-1))
    return torch.stack(out)


@torch.no_grad()
def encode_images(model: CLIP, pixel_values: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([model.encode_image(pixel_values[i:i + batch_size]) for i in range(0, len(pixel_values), batch_size)])


def recall_at_k(similarity: torch.Tensor, ks=(1, 5)) -> dict:
    """Retrieval recall of a square similarity matrix whose diagonal holds the true pairs: for each row, is its
    true column among the k most similar? Returns {"R@1": ..., "R@5": ...} (fractions)."""
    ranks = (similarity > similarity.diagonal()[:, None]).sum(1)  # how many columns beat the true one
    return {f"R@{k}": (ranks < k).float().mean().item() for k in ks}


def to_hf_clip(model: CLIP):
    """The same weights as a ``transformers.CLIPModel`` (identical embeddings up to float round-off)."""
    from transformers import CLIPConfig as HFConfig
    from transformers import CLIPModel, CLIPTextConfig

    t = model.config.text
    text_cfg = CLIPTextConfig(vocab_size=t.vocab_size, max_position_embeddings=t.max_position_embeddings,
                              hidden_size=t.hidden_size, num_hidden_layers=t.num_hidden_layers,
                              num_attention_heads=t.num_attention_heads, intermediate_size=t.intermediate_size,
                              layer_norm_eps=t.layer_norm_eps, hidden_act=t.hidden_act, eos_token_id=t.eos_token_id,
                              pad_token_id=t.pad_token_id, bos_token_id=t.bos_token_id)
    cfg = HFConfig(text_config=text_cfg.to_dict(), vision_config=hf_vision_config(model.config.vision).to_dict(),
                   projection_dim=model.config.projection_dim, logit_scale_init_value=INIT_LOGIT_SCALE)
    hf = CLIPModel(cfg).eval()
    missing, unexpected = hf.load_state_dict(model.state_dict(), strict=False)
    real_missing = [k for k in missing if not k.endswith("position_ids")]
    if real_missing or unexpected:
        raise RuntimeError(f"CLIP -> transformers: missing {real_missing}, unexpected {unexpected}")
    return hf
