"""Week 4: fine-tuning. ``llmlab.finetune.lora`` is LoRA from scratch (notebook 2 of Week 4), PEFT-compatible."""

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
