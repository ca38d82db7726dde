"""The course's model architectures, one file each, with Hugging Face parameter names.

- ``llmlab.models.llama`` -- Week 4: the Llama architecture (RMSNorm, RoPE, SwiGLU, grouped-query attention),
  convertible to and from ``transformers.LlamaForCausalLM`` with identical logits.
"""
