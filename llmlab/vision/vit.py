"""A Vision Transformer image encoder (Dosovitskiy et al., 2021), with the parameter names of Hugging Face's
``CLIPVisionModel``, so that its weights load into ``transformers`` (and, by a renaming, into open_clip).

::

    image (B, 3, S, S)
      -> patch_embedding: a Conv2d with kernel = stride = patch size      (B, D, S/p, S/p) -> (B, N, D), N = (S/p)^2
      -> prepend class_embedding, add position_embedding                   (B, 1 + N, D)
      -> pre_layrnorm (CLIP's extra norm before the blocks; HF's spelling)
      -> L pre-norm blocks: x + attn(layer_norm1(x)); x + mlp(layer_norm2(x))
      -> last_hidden_state (B, 1 + N, D); pooler_output = post_layernorm(last_hidden_state[:, 0])   (B, D)

Attention is written out (softmax of scaled dot products) rather than fused, because Week 8 reads the
attention maps (``output_attentions=True``: attention rollout in :mod:`llmlab.vision.explain`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VisionConfig:
    image_size: int = 32
    patch_size: int = 4
    num_channels: int = 3
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 256
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"  # exact GELU (HF's "gelu"); OpenAI's CLIP used "quick_gelu"

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor  # (B, T, D)
    pooler_output: torch.Tensor | None = None  # (B, D)
    hidden_states: tuple | None = None  # L + 1 tensors (B, T, D): the blocks' input, then each block's output
    attentions: tuple | None = None  # L tensors (B, H, T, T)


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (HF ``CLIPAttention`` names)."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.scale = self.head_dim ** -0.5
        self.q_proj, self.k_proj = nn.Linear(hidden_size, hidden_size), nn.Linear(hidden_size, hidden_size)
        self.v_proj, self.out_proj = nn.Linear(hidden_size, hidden_size), nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """x (B, T, D); mask: additive (B or 1, 1, T, T) or None -> (out (B, T, D), weights (B, H, T, T))."""
        B, T, D = x.shape
        q, k, v = (p(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, T, hd) each
        scores = (q @ k.transpose(-1, -2)) * self.scale  # (B, H, T, T)
        if mask is not None:
            scores = scores + mask
        weights = scores.softmax(dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, T, D)
        return self.out_proj(out), weights


class MLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, act: str = "gelu"):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(hidden_size, intermediate_size), nn.Linear(intermediate_size, hidden_size)
        self.act = {"gelu": F.gelu, "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x)}[act]

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    """A pre-norm Transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, eps: float, act: str):
        super().__init__()
        self.self_attn = Attention(hidden_size, num_heads)
        self.layer_norm1 = nn.LayerNorm(hidden_size, eps=eps)
        self.mlp = MLP(hidden_size, intermediate_size, act)
        self.layer_norm2 = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x, mask=None):
        a, weights = self.self_attn(self.layer_norm1(x), mask)
        x = x + a
        return x + self.mlp(self.layer_norm2(x)), weights


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.layer_norm_eps,
                         cfg.hidden_act) for _ in range(cfg.num_hidden_layers))

    def forward(self, x, mask=None, output_hidden_states=False, output_attentions=False):
        states, attns = [x], []
        for layer in self.layers:
            x, w = layer(x, mask)
            states.append(x)
            attns.append(w)
        return x, (tuple(states) if output_hidden_states else None), (tuple(attns) if output_attentions else None)


class VisionEmbeddings(nn.Module):
    """Patches -> tokens: a strided Conv2d (no bias, as in CLIP), a learned class token, learned positions."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.class_embedding = nn.Parameter(torch.randn(cfg.hidden_size) * cfg.hidden_size ** -0.5)
        self.patch_embedding = nn.Conv2d(cfg.num_channels, cfg.hidden_size, cfg.patch_size, cfg.patch_size, bias=False)
        self.position_embedding = nn.Embedding(cfg.num_patches + 1, cfg.hidden_size)
        self.register_buffer("position_ids", torch.arange(cfg.num_patches + 1)[None], persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        B = pixel_values.shape[0]
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)  # (B, N, D), row-major patches
        cls = self.class_embedding.expand(B, 1, -1)  # (B, 1, D)
        return torch.cat([cls, patches], dim=1) + self.position_embedding(self.position_ids)


class VisionTransformer(nn.Module):
    """The image tower: ``forward(pixel_values)`` -> :class:`EncoderOutput` (HF ``CLIPVisionTransformer``)."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = VisionEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.encoder = Encoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, pixel_values, output_hidden_states: bool = False, output_attentions: bool = False):
        x = self.pre_layrnorm(self.embeddings(pixel_values))
        x, states, attns = self.encoder(x, None, output_hidden_states, output_attentions)
        return EncoderOutput(x, self.post_layernorm(x[:, 0]), states, attns)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Normal(0, std) for linear and embedding weights, zero biases, unit LayerNorms (apply with ``model.apply``)."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight), nn.init.zeros_(module.bias)


def hf_vision_config(cfg: VisionConfig, **extra):
    """The ``transformers.CLIPVisionConfig`` of the same architecture."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=cfg.num_channels,
                            hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
                            num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
                            layer_norm_eps=cfg.layer_norm_eps, hidden_act=cfg.hidden_act, **extra)
