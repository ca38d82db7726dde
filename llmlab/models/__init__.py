"""The course's model architectures, one file each, with Hugging Face parameter names.

- ``llmlab.models.gpt``   -- Weeks 1-3: GPT-2 (learned positions, LayerNorm, GELU MLP), split as ``transformers``
  splits it: a base model (``GPTModel``: embeddings, blocks, final norm) and heads on top (``GPT``: the LM head);
  convertible to and from ``transformers.GPT2LMHeadModel`` with identical logits.
- ``llmlab.models.llama`` -- Week 4: the Llama architecture (RMSNorm, RoPE, SwiGLU, grouped-query attention),
  convertible to and from ``transformers.LlamaForCausalLM`` with identical logits.
"""
