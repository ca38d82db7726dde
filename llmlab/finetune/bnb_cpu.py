"""Two workarounds that make bitsandbytes 0.50's 4-bit layers compute the right thing on CPU.

Found while building Week 4's QLoRA notebook, and checked in ``tests/test_qlora.py``:

1. **Wrong dequantization.** bitsandbytes' compiled CPU kernel for ``dequantize_4bit``
   (``cdequantize_blockwise_cpu_nf4_*``, used whenever the last dimension is even) returns wrong values for
   some shapes whose last dimension is not a multiple of the block size (e.g. (32, 32), (96, 48), (128, 352)):
   some elements get another block's scale. Every ``Linear4bit`` forward and backward on CPU goes through it,
   so a model with such a layer (the course's small Llama models: hidden size 32, MLP width 352) computes
   wrong logits. The stored codes and scales are right; only this kernel is wrong. :func:`patch_dequantize`
   registers bitsandbytes' *own* pure-PyTorch implementation (``backends/default``) as the CPU kernel instead.
2. **In-place repacking for inference.** On a CPU with AVX512-BF16, a ``Linear4bit`` in eval mode without
   gradients rewrites its weight into another layout for a faster kernel; that fails for input sizes that
   are not a multiple of the block size, and changes ``weight`` under your feet. :func:`no_cpu_repack`
   switches it off for every 4-bit layer of a model.

Nothing here runs on a GPU (:func:`fix_cpu_4bit` does nothing when the model is on CUDA).
"""

from __future__ import annotations

import torch

__all__ = ["fix_cpu_4bit", "no_cpu_repack", "patch_dequantize"]

_PATCHED = False


def patch_dequantize() -> bool:
    """Use bitsandbytes' reference (pure PyTorch) ``dequantize_4bit`` on CPU; idempotent. True if patched now."""
    global _PATCHED
    if _PATCHED:
        return False
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute
    from bitsandbytes.backends.utils import _get_4bit_code

    def dequantize_4bit_cpu(A, absmax, blocksize, quant_type, shape, dtype):
        if A.dtype != torch.uint8:
            A = A.view(torch.uint8)
        code = _get_4bit_code(quant_type, A.device)
        return _dequantize_4bit_compute(A.reshape(-1), absmax.float(), code, blocksize, shape, dtype)

    torch.library.register_kernel("bitsandbytes::dequantize_4bit", "cpu", dequantize_4bit_cpu)
    _PATCHED = True
    return True


def no_cpu_repack(model: torch.nn.Module) -> int:
    """Turn off the AVX512-BF16 inference repacking in every ``Linear4bit`` of ``model``; returns how many."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for m in layers:
        m.support_avx512bf16_for_cpu = False
    return len(layers)


def fix_cpu_4bit(model: torch.nn.Module) -> torch.nn.Module:
    """Both workarounds for a 4-bit model on CPU (a no-op on CUDA); returns the model."""
    if next(model.parameters()).device.type == "cpu":
        patch_dequantize()
        no_cpu_repack(model)
    return model
