"""Week 3: training systems — where memory goes, and the tools that make big models fit and run fast.

- ``llmlab.systems.memory``        -- bytes of parameters, gradients, optimizer states and activations (formulas),
  and the measuring tools the week uses everywhere: ``measure_saved_activations`` / ``saved_tensor_bytes``
  (what autograd saves), ``PeakMemory`` (peak tensor memory on a CPU), ``reachable_tensor_bytes`` (what an
  object keeps alive).
- ``llmlab.systems.amp``           -- a dynamic loss scaler for fp16, as ``torch.amp.GradScaler``.
- ``llmlab.systems.checkpointing`` -- gradient checkpointing of the GPT's blocks (one by one, or sqrt(N) segments).
- ``llmlab.systems.flash_attention`` -- FlashAttention in plain PyTorch (tiles, online softmax, recomputation).
- ``llmlab.systems.triton_attention`` -- the same forward pass as a Triton kernel (GPU, or Triton's interpreter).
- ``llmlab.systems.distributed``   -- run a function on N forked gloo ranks (no env leaks, clean errors).
- ``llmlab.systems.zero``          -- ZeRO-1 sharded AdamW from scratch, and per-rank memory of ZeRO stages 0-3.
- ``llmlab.systems.tensor_parallel`` -- Megatron-style column/row-parallel layers with the f/g operators.
- ``llmlab.systems.profiling``     -- FLOPs per token, MFU, torch.profiler operator tables.
- ``llmlab.systems.ds_train``      -- the DeepSpeed training script (``deepspeed --module llmlab.systems.ds_train``,
  ``launch()`` from Python); configs in ``llmlab/configs/deepspeed``. ``llmlab.systems.zero_ds_demo``: every
  ZeRO stage in one launch, each rank's memory measured.

(Not called ``deepspeed``, ``distributed`` or ``profiling`` at the top level of ``llmlab``: no file here
shadows an installed library.)
"""
