"""Explaining image regions: which pixels made the model say what it said?

Three families, each a map over the image (patch grid or pixels), larger = more responsible:

- **Attention rollout** (Abnar & Zuidema, 2020): attention says where a token reads from, but through L layers
  information mixes. Average the heads, add the identity for the residual connection, renormalise the rows,
  and multiply the layers' matrices: ``R = A_L ... A_1`` with ``A_l = normalise(0.5 * mean_h(attn_l) + 0.5 * I)``.
  The CLS row of R over the patches is the map. Needs no gradient, and ignores what the model is asked.
- **Grad-CAM** (Selvaraju et al., 2017), on a ViT's patch tokens: the gradient of a score (a class logit, a CLIP
  similarity with "a photo of a tomato") with respect to one layer's token features, averaged over the tokens,
  weights the feature channels; ``relu(sum_d w_d h[:, patch, d])`` is the map. Asking another text gives
  another map: that is the **text-conditioned heat map**.
- **Occlusion** (Zeiler & Fergus, 2014): grey out a window, slide it, and record how much the score drops.
  Model-agnostic and slow (one forward pass per position), the reference the other two approximate.

The **pointing game** (Zhang et al., 2016) scores a map against ground truth: a hit when the map's maximum falls
inside the object's box.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def attention_rollout(attentions, residual: float = 0.5, head_fusion: str = "mean") -> torch.Tensor:
    """attentions: L tensors (B, H, T, T) (first layer first) -> rollout (B, T, T), rows summing to 1."""
    R = None
    for a in attentions:
        a = a.mean(1) if head_fusion == "mean" else a.max(1).values  # (B, T, T)
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = residual * eye + (1 - residual) * a
        a = a / a.sum(-1, keepdim=True)
        R = a if R is None else a @ R  # later layers act on the result of earlier ones
    return R


def cls_map(rollout: torch.Tensor) -> torch.Tensor:
    """(B, 1 + N, 1 + N) -> (B, g, g): how much the CLS token draws from each patch, on the patch grid."""
    m = rollout[:, 0, 1:]
    g = int(round(m.shape[-1] ** 0.5))
    return m.reshape(-1, g, g)


def grad_cam(vision_model, pixel_values: torch.Tensor, score: Callable, layer: int = -2) -> torch.Tensor:
    """(B, g, g) Grad-CAM maps of ``score(output) -> (B,)`` (computed from the ViT's :class:`EncoderOutput`)
    with respect to the patch tokens of hidden state ``layer``. Default -2, the last block's input: a score of the
    pooled class token gives the last block's *output* patch tokens a zero gradient."""
    out = vision_model(pixel_values, output_hidden_states=True)
    h = out.hidden_states[layer]  # (B, 1 + N, D)
    grad, = torch.autograd.grad(score(out).sum(), h)
    w = grad[:, 1:].mean(1, keepdim=True)  # (B, 1, D): each channel's importance
    cam = F.relu((w * h[:, 1:]).sum(-1)).detach()  # (B, N)
    g = int(round(cam.shape[-1] ** 0.5))
    return cam.reshape(-1, g, g)


@torch.no_grad()
def occlusion_map(score: Callable, pixel_values: torch.Tensor, window: int = 8, stride: int = 4,
                  fill: float = 0.0) -> torch.Tensor:
    """(B, n, n) drops of ``score(pixels) -> (B,)`` when a ``window`` square is filled with ``fill`` (0 = the
    normalised mean grey), at ``stride`` steps: n = (S - window) // stride + 1."""
    base = score(pixel_values)
    S = pixel_values.shape[-1]
    n = (S - window) // stride + 1
    out = torch.zeros(len(pixel_values), n, n)
    for i in range(n):
        for j in range(n):
            x = pixel_values.clone()
            x[..., i * stride:i * stride + window, j * stride:j * stride + window] = fill
            out[:, i, j] = base - score(x)
    return out


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(B, g, g) -> (B, size, size), bilinear: a patch-grid map over the image's pixels."""
    return F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def pointing_game(heatmap: torch.Tensor, box, tolerance: int = 0) -> bool:
    """Is the maximum of an (H, W) map inside ``box`` = (x0, y0, x1, y1) (x1, y1 exclusive), grown by
    ``tolerance`` pixels (the original game allows 15 pixels on 224-pixel images)?"""
    y, x = divmod(int(heatmap.flatten().argmax()), heatmap.shape[-1])
    x0, y0, x1, y1 = box
    return x0 - tolerance <= x < x1 + tolerance and y0 - tolerance <= y < y1 + tolerance
