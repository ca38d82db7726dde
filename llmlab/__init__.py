"""LLM Lab: the course library.

One concept per module:

- ``llmlab.config``    -- FAST mode, the CPU/GPU tier, seeds, threads.
- ``llmlab.data``      -- finding and loading the course corpora.
- ``llmlab.testing``   -- assertion helpers that test cells use (clear failure messages).
- ``llmlab.plotting``  -- the figures the notebooks draw.
- ``llmlab.attention`` -- Week 1 reference: attention, positional encoding, multi-head attention.
- ``llmlab.model``     -- Week 1 reference: the GPT (GPT-2 parameter names).
- ``llmlab.chargpt``   -- Week 1 reference: char tokenizer, batches and the char-level training loop.
- ``llmlab.hf_tokenizer`` / ``llmlab.bpe`` -- Week 2: byte-level BPE with ``tokenizers`` and from scratch.
- ``llmlab.tokendata``, ``llmlab.optim``, ``llmlab.trainer`` (+ ``python -m llmlab.train_cli``)
                       -- Week 2: memmap token data, AdamW/schedule/clipping, the resumable trainer.
- ``llmlab.flash_attention``, ``llmlab.triton_attention`` -- Week 3: tiled attention, a Triton kernel.
- ``llmlab.zoo``       -- Week 2: the course model zoo (pretrained GPTs in Hugging Face format, cached).
- ``llmlab.memory``, ``llmlab.amp``, ``llmlab.checkpointing`` -- Week 3: where training memory goes,
                       a dynamic loss scaler, sqrt(N) gradient checkpointing.
- ``llmlab.distributed`` -- Week 3: run a function on N forked gloo ranks (no env leaks, clean errors).
- ``llmlab.zero``, ``llmlab.tensor_parallel`` -- Week 3: ZeRO-1 sharded AdamW and its memory formulas;
                       Megatron-style column/row-parallel layers with the f/g operators.
- ``llmlab.ds_train`` (+ ``llmlab.zero_ds_demo``) -- Week 3: the DeepSpeed training script (any ZeRO stage,
                       offload, bf16; ``launch()`` from Python); configs in ``llmlab/configs/deepspeed``.
- ``llmlab.profiling`` -- Week 3: FLOPs per token, MFU, torch.profiler operator tables.

Week N notebooks import the finished code of weeks < N from here instead of copying it.
"""

__version__ = "0.1.0"
