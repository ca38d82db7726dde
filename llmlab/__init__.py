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
- ``llmlab.finetune``     -- Week 4: ``lora`` (from scratch, PEFT-compatible), SFT (``sft``, ``sft_trl``,
  ``chat_eval``, ``chat_model``), QLoRA (``nf4``, ``bnb_cpu``, ``budget``, ``recipe``), ``compare``.
- ``llmlab.tasks``        -- Week 4 on: seeded instruction tasks (poetry, programming, food, arithmetic) and verifiers.
- ``llmlab.align``        -- Week 5: preference data, reward model, DPO, PPO, GRPO (``python -m llmlab.align``).
- ``llmlab.serve``        -- Week 6: the inference engine (paged KV, continuous batching, speculative decoding)
  and the OpenAI-compatible server (``python -m llmlab.serve``).
- ``llmlab.eval``, ``llmlab.prompts``, ``llmlab.evaluate`` -- Week 7: metrics and benchmarks, prompting, the report.
- ``llmlab.vision``       -- Week 8: synthetic food images, ViT/CLIP, Q-Former, the LLaVA-style VLM, explanations.
- ``llmlab.lowrank``      -- bonus track: SVD and low-rank approximation (``svd``), GaLore (``galore``).
- ``llmlab.diffusion``    -- bonus track: DDPM/DDIM schedules and steps (``ddpm``), equal to ``diffusers``'.

The flat names of earlier releases (``llmlab.model``, ``llmlab.chargpt``, ``llmlab.trainer``, ``llmlab.memory``,
...) still import, as the same module objects, for one release (``llmlab/_compat.py``).

Week N notebooks import the finished code of weeks < N from here instead of copying it.
"""

__version__ = "0.1.0"


def _drop_hub_kernel_notice() -> None:
    """bitsandbytes (CPUs with AVX-512 BF16) tries to fetch an optional 4-bit GEMM kernel from the Hugging Face hub
    when it is imported, and logs a warning on stderr when it cannot (always, offline): its built-in CPU kernel
    is then used, with the same results. The course machines never reach the hub, so this one message is dropped
    (test cells must stay silent on stderr); every other bitsandbytes message still shows."""
    import logging

    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
        lambda record: not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community"))


_drop_hub_kernel_notice()
