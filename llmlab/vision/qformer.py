"""BLIP-2's Q-Former (Li et al., 2023): a few learned queries that read a frozen image encoder.

The image encoder gives N patch features (N = 64 for a 32-pixel image in 4-pixel patches, 256 for ViT-g); a
language model should not have to read all of them. The Q-Former is a small BERT-style Transformer whose input is
``Q`` learned **query tokens** (32 in BLIP-2). In each layer the queries attend to each other (self-attention),
then, every ``cross_attention_frequency`` layers, to the image features (cross-attention: queries from the
queries, keys and values from the image), then go through an MLP::

    queries (B, Q, D) -> layernorm
      -> per layer:  x = LN(x + SelfAttn(x))                              post-norm, as in BERT
                     x = LN(x + CrossAttn(x, image (B, N, Dv)))           layers 0, f, 2f, ...
                     x = LN(x + MLP(x))                                   (intermediate_query, output_query)
      -> (B, Q, D): a fixed-size summary of the image, whatever N is

Parameter names are those of ``transformers.Blip2QFormerModel`` (queries only: ``use_qformer_text_input=False``),
so :func:`to_hf_qformer` is a ``load_state_dict``. BLIP-2 trains it with three objectives; two of them are here:
the image-text contrastive loss (:func:`itc_loss`: a text matches an image by its best query) and image-grounded
generation (:class:`Captioner`: the queries, projected, are the prefix of a language model's input).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vlm import greedy_from_embeds


@dataclass
class QFormerConfig:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 128
    encoder_hidden_size: int = 64  # the image features' width
    cross_attention_frequency: int = 1
    layer_norm_eps: float = 1e-12  # BERT's
    num_query_tokens: int = 8

    def to_dict(self) -> dict:
        return asdict(self)

    def to_hf(self):
        from transformers import Blip2QFormerConfig

        d = self.to_dict()
        d.pop("num_query_tokens")
        return Blip2QFormerConfig(**d, hidden_act="gelu", use_qformer_text_input=False, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)


class MultiHeadAttention(nn.Module):
    """Queries from ``x``; keys and values from ``context`` (cross-attention) or from ``x`` (self-attention)."""

    def __init__(self, hidden_size: int, num_heads: int, kv_size: int | None = None):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key, self.value = nn.Linear(kv_size or hidden_size, hidden_size), nn.Linear(kv_size or hidden_size, hidden_size)

    def forward(self, x, context=None, mask=None):
        context = x if context is None else context
        B, Q, _ = x.shape
        N = context.shape[1]
        q = self.query(x).view(B, Q, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, Q, hd)
        k = self.key(context).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, hd)
        v = self.value(context).view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) * self.head_dim ** -0.5  # (B, H, Q, N)
        if mask is not None:  # (B, N) of 1 = attend, 0 = padding
            scores = scores.masked_fill(~mask[:, None, None, :].bool(), torch.finfo(scores.dtype).min)
        return (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, Q, -1)


class AddNorm(nn.Module):
    """BERT's "output" block: LayerNorm(residual + dense(x)) (HF ``...SelfOutput`` / ``...Output``)."""

    def __init__(self, in_size: int, hidden_size: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(in_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class AttentionBlock(nn.Module):
    def __init__(self, cfg: QFormerConfig, cross: bool = False):
        super().__init__()
        self.attention = MultiHeadAttention(cfg.hidden_size, cfg.num_attention_heads,
                                            cfg.encoder_hidden_size if cross else None)
        self.output = AddNorm(cfg.hidden_size, cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, x, context=None, mask=None):
        return self.output(self.attention(x, context, mask), x)


class Intermediate(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x):
        return F.gelu(self.dense(x))


class QFormerLayer(nn.Module):
    def __init__(self, cfg: QFormerConfig, layer_idx: int):
        super().__init__()
        self.attention = AttentionBlock(cfg)
        self.has_cross_attention = layer_idx % cfg.cross_attention_frequency == 0
        if self.has_cross_attention:
            self.crossattention = AttentionBlock(cfg, cross=True)
        self.intermediate_query = Intermediate(cfg)
        self.output_query = AddNorm(cfg.intermediate_size, cfg.hidden_size, cfg.layer_norm_eps)

    def forward(self, x, image, image_mask=None):
        x = self.attention(x)  # the queries talk to each other
        if self.has_cross_attention:
            x = self.crossattention(x, image, image_mask)  # ... and read the image
        return self.output_query(self.intermediate_query(x), x)


class QFormerEncoder(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.layer = nn.ModuleList(QFormerLayer(cfg, i) for i in range(cfg.num_hidden_layers))


class QFormer(nn.Module):
    """``forward(query_embeds (B, Q, D), encoder_hidden_states (B, N, Dv))`` -> (B, Q, D)."""

    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.config = cfg
        self.layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.encoder = QFormerEncoder(cfg)

    def forward(self, query_embeds, encoder_hidden_states, encoder_attention_mask=None):
        x = self.layernorm(query_embeds)
        for layer in self.encoder.layer:
            x = layer(x, encoder_hidden_states, encoder_attention_mask)
        return x


def to_hf_qformer(qformer: QFormer):
    """The same weights in a ``transformers.Blip2QFormerModel``."""
    from transformers import Blip2QFormerModel

    hf = Blip2QFormerModel(qformer.config.to_hf()).eval()
    hf.load_state_dict(qformer.state_dict(), strict=True)
    return hf


def itc_loss(query_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """BLIP-2's image-text contrastive loss: image i and text j score by their best query,
    ``max_q <z_iq, t_j>`` (all unit norm); then CLIP's symmetric cross-entropy. query_embeds (B, Q, E), text (B, E)."""
    sim = torch.einsum("iqe,je->ijq", query_embeds, text_embeds).max(-1).values * logit_scale  # (B, B)
    target = torch.arange(len(sim), device=sim.device)
    return (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2


class Captioner(nn.Module):
    """BLIP-2's generative half: frozen image encoder -> Q-Former (learned queries) -> language_projection ->
    a prefix of Q embeddings in front of the caption's token embeddings -> the language model.
    Names as in ``transformers.Blip2ForConditionalGeneration`` (query_tokens, qformer, language_projection)."""

    def __init__(self, vision_model: nn.Module, qformer: QFormer, language_model: nn.Module):
        super().__init__()
        cfg = qformer.config
        self.vision_model, self.qformer, self.language_model = vision_model, qformer, language_model
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_query_tokens, cfg.hidden_size) * 0.02)
        self.language_projection = nn.Linear(cfg.hidden_size, language_model.config.hidden_size)

    def prefix(self, pixel_values) -> torch.Tensor:
        """(B, Q, C): the image as Q "words" for the language model."""
        image = self.vision_model(pixel_values).last_hidden_state  # (B, 1 + N, Dv)
        q = self.qformer(self.query_tokens.expand(len(image), -1, -1), image)
        return self.language_projection(q)

    def forward(self, pixel_values, input_ids, attention_mask=None, labels=None):
        """input_ids (B, T) is the caption; the loss is on the caption tokens only (labels -100 elsewhere)."""
        prefix = self.prefix(pixel_values)
        B, Q = prefix.shape[:2]
        emb = torch.cat([prefix, self.language_model.model.embed_tokens(input_ids)], dim=1)
        if attention_mask is not None:
            attention_mask = torch.cat([torch.ones(B, Q, dtype=attention_mask.dtype), attention_mask], dim=1)
        if labels is not None:
            labels = torch.cat([torch.full((B, Q), -100, dtype=labels.dtype), labels], dim=1)
        return self.language_model(inputs_embeds=emb, attention_mask=attention_mask, labels=labels)

    @torch.no_grad()
    def generate(self, pixel_values, bos_ids: torch.Tensor, max_new_tokens: int = 16, eos_token_id=None):
        """Greedy captions: (B, <= max_new_tokens) new token ids after the prefix and ``bos_ids`` (B, T0)."""
        emb = torch.cat([self.prefix(pixel_values), self.language_model.model.embed_tokens(bos_ids)], dim=1)
        return greedy_from_embeds(self.language_model, emb, max_new_tokens, eos_token_id)
