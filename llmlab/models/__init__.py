"""The course's model architectures, one file each, with Hugging Face parameter names.

- ``llmlab.models.gpt``   -- Weeks 1-3: GPT-2 (learned positions, LayerNorm, GELU MLP), split as ``transformers``
  splits it: a base model (``GPTModel``: embeddings, blocks, final norm) and heads on top (``GPT``: the LM head);
  convertible to and from ``transformers.GPT2LMHeadModel`` with identical logits.
- ``llmlab.models.llama`` -- Week 4: the Llama architecture (RMSNorm, RoPE, SwiGLU, grouped-query attention),
  split like ``transformers`` into a base :class:`~llmlab.models.llama.LlamaModel` (hidden states) and heads:
  :class:`~llmlab.models.llama.LlamaForCausalLM` (``lm_head``, ``generate()`` with a KV cache) and
  :class:`~llmlab.models.llama.LlamaForScore` (a scalar ``score`` head: Week 5's reward and value models).
  State dicts load into ``transformers.LlamaForCausalLM`` / ``LlamaForSequenceClassification`` unchanged;
  ``to_hf_llama`` / ``from_hf_llama`` convert with identical logits. Forward arguments as in ``transformers``:
  ``attention_mask``, ``position_ids``, ``past_key_values``, ``inputs_embeds``, ``output_hidden_states``,
  ``output_attentions`` / ``attn_implementation`` ("sdpa" or "eager").
"""
