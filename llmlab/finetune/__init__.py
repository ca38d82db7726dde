"""Week 4: fine-tuning.

- ``lora``: LoRA from scratch (notebook 2), PEFT-compatible; re-exported here.
- ``sft``: chat encoding, the assistant-only label mask, padding and packing (notebook 4).
- ``sft_trl``: PEFT ``LoraConfig`` + TRL ``SFTTrainer`` settings and runs; ``chat_eval``: generation and verifier
  pass rates; ``chat_model``: the recipe that builds the zoo's ``llama-chat``.
- ``nf4``: 4-bit NormalFloat from scratch, equal to bitsandbytes (notebook 5); ``bnb_cpu``: bitsandbytes' CPU
  4-bit fixes; ``budget``: the QLoRA memory formulas; ``recipe``: the 8B/7B QLoRA command line (notebook 7).
- ``compare``: full fine-tuning vs LoRA vs QLoRA on the same data (notebook 6).
"""

from .lora import (
    LLAMA3_8B,
    LLAMA_TARGETS,
    LoRALinear,
    count_trainable,
    inject_lora,
    linear_dims,
    linear_shapes,
    llama_linear_shapes,
    llama_param_count,
    lora_modules,
    lora_param_count,
    lora_state_dict,
    matches_target,
    merge_and_unload,
    merge_lora,
    unmerge_lora,
)

__all__ = [
    "LLAMA3_8B", "LLAMA_TARGETS", "LoRALinear", "count_trainable", "inject_lora", "linear_dims", "linear_shapes",
    "llama_linear_shapes", "llama_param_count", "lora_modules", "lora_param_count", "lora_state_dict",
    "matches_target", "merge_and_unload", "merge_lora", "unmerge_lora",
]
