"""Week 6: the course's inference engine and its OpenAI-compatible server.

One concept per file, in the order a request meets them:

- :mod:`.request`: ``SamplingParams`` and ``Sequence`` (a generation in flight);
- :mod:`.block_manager`: the paged KV cache's blocks, block tables, ref counts, prefix sharing, copy-on-write;
- :mod:`.kv_cache`: the K/V tensors, and the adapter through which a Hugging Face model reads/writes them;
- :mod:`.scheduler`: continuous batching (token budget, chunked prefill, preemption by recompute);
- :mod:`.model_runner`: one batched forward pass over prefills and decodes;
- :mod:`.sampler`: logits processors and seeded per-request sampling;
- :mod:`.detokenizer`: streamed text with stop strings;
- :mod:`.engine`: the loop that ties them together (``LLMEngine``);
- :mod:`.speculative`: speculative decoding with a draft model, one sequence (the method);
- :mod:`.spec_decode`: the same inside the batched engine (``LLMEngine(..., draft_model=...)``, ``--draft``);
- :mod:`.hf_backend`: plain ``transformers.generate`` behind the same interface (``--backend hf``, for comparison);
- :mod:`.tiny`: tiny random-weight Llama / Mistral / Qwen2 / GPT-2 folders for tests and notebooks;
- :mod:`.async_engine`, :mod:`.api`, :mod:`.server`, ``__main__``: asyncio, FastAPI, uvicorn, the CLI.
- :mod:`.gpu_tier`: the vLLM / TensorRT-LLM recipes on a CUDA machine (says what it skips elsewhere).
"""

from .block_manager import BlockManager
from .engine import LLMEngine, RequestOutput, load_model
from .request import SamplingParams, Sequence

__all__ = ["BlockManager", "LLMEngine", "RequestOutput", "SamplingParams", "Sequence", "load_model"]
