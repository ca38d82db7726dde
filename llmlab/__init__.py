"""LLM Lab: the course library, in sub-packages by concern (each package's docstring lists its files).

Top level, used by every week:

- ``llmlab.config``    -- FAST mode, the CPU/GPU tier, seeds, threads.
- ``llmlab.data``      -- finding and loading the course corpora.
- ``llmlab.testing``   -- assertion helpers that test cells use (clear failure messages).
- ``llmlab.plotting``, ``llmlab.progress`` -- the figures the notebooks draw; progress bars on stdout.
- ``llmlab.attention`` -- Week 1 reference: attention, the causal mask, positional encoding, multi-head attention.
- ``llmlab.zoo``       -- the course model zoo (pretrained models in Hugging Face format, cached).

Sub-packages:

- ``llmlab.models``       -- the architectures: ``gpt`` (GPT-2: base model + heads), ``llama`` (Week 4).
- ``llmlab.tokenization`` -- ``char``, ``bpe`` (from scratch), ``hf`` (Hugging Face ``tokenizers``).
- ``llmlab.train``        -- the one training stack: ``TrainConfig``, ``lr_at``, ``get_batch``, ``Trainer``
  (``model=``, ``batches=``, ``loss_fn=``, callbacks), ``train``, and its command line.
- ``llmlab.systems``      -- Week 3: memory accounting and measuring, mixed precision, checkpointing,
  FlashAttention, Triton, ZeRO, tensor parallelism, profiling, DeepSpeed.
- ``llmlab.finetune``     -- Week 4: ``lora`` (LoRA from scratch, PEFT-compatible).
- ``llmlab.tasks``        -- Week 4 on: seeded instruction tasks (poetry, programming, food, arithmetic) and verifiers.

The flat names of earlier releases (``llmlab.model``, ``llmlab.chargpt``, ``llmlab.trainer``, ``llmlab.memory``,
...) still import, as the same module objects, for one release (``llmlab/_compat.py``).

Week N notebooks import the finished code of weeks < N from here instead of copying it.
"""

__version__ = "0.1.0"
