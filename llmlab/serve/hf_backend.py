"""The comparison backend: plain ``transformers`` ``generate``, one request at a time (``--backend hf``).

Same interface as :class:`~llmlab.serve.engine.LLMEngine` (``add_request``, ``step``, ``abort``, ``has_work``),
so the same API and async loop serve it; but each ``step`` runs one whole request through ``generate``
and returns its answer in one piece: no batching, no paged cache, no streaming token by token. It is there
to compare against (throughput, latency, and the greedy answers, which must be the same).
"""

from __future__ import annotations

from collections import deque

import torch

from .detokenizer import Detokenizer
from .engine import StepOutput
from .request import SamplingParams, Sequence
from .sampler import apply_presence_frequency


class _OpenAIPenalties:
    """presence/frequency penalties as a ``transformers`` logits processor (generate has none): over the
    generated tokens only, the ones after the prompt's ``n_prompt``."""

    def __init__(self, n_prompt: int, presence: float, frequency: float):
        self.n_prompt, self.presence, self.frequency = n_prompt, presence, frequency

    def __call__(self, input_ids, scores):
        return torch.stack([apply_presence_frequency(row, ids[self.n_prompt:].tolist(), self.presence, self.frequency)
                            for ids, row in zip(input_ids, scores)])


class _NoBlocks:
    """``generate`` keeps its own contiguous cache per call: nothing to manage, nothing to leak."""
    num_blocks = num_free = block_size = 0


class HFGenerateEngine:
    def __init__(self, model, tokenizer, max_model_len: int | None = None, **_ignored):
        self.model, self.tokenizer = model.eval(), tokenizer
        cfg = model.config
        self.max_model_len = max_model_len or getattr(cfg, "max_position_embeddings", None) or cfg.n_positions
        self.block_manager = _NoBlocks()
        eos = getattr(model.generation_config, "eos_token_id", None)
        self.eos_ids = list(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        self.queue: deque[Sequence] = deque()

    def add_request(self, prompt_ids, params: SamplingParams | None = None, request_id: str | None = None) -> Sequence:
        if len(prompt_ids) + 1 > self.max_model_len:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens leaves no room in a context of {self.max_model_len}")
        seq = Sequence(list(prompt_ids), params or SamplingParams(), request_id or "")
        self.queue.append(seq)
        return seq

    def abort(self, request_id: str) -> None:
        self.queue = deque(s for s in self.queue if s.request_id != request_id)

    def has_work(self) -> bool:
        return bool(self.queue)

    def extra_inputs(self, seq: Sequence) -> dict:
        """More inputs of ``generate`` for one sequence (a VLM's pixel values: :mod:`.vision_backend`)."""
        return {}

    @torch.inference_mode()
    def step(self) -> list[StepOutput]:
        if not self.queue:
            return []
        seq = self.queue.popleft()
        p = seq.params
        ids = torch.tensor([seq.prompt_ids])
        kwargs = dict(max_new_tokens=p.max_tokens, attention_mask=torch.ones_like(ids),
                      eos_token_id=None if p.ignore_eos else (self.eos_ids + list(p.stop_token_ids)) or None,
                      pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0,
                      repetition_penalty=p.repetition_penalty)
        if p.presence_penalty or p.frequency_penalty:
            from transformers import LogitsProcessorList
            kwargs.update(logits_processor=LogitsProcessorList(
                [_OpenAIPenalties(len(seq.prompt_ids), p.presence_penalty, p.frequency_penalty)]))
        if p.ignore_eos:  # eos_token_id=None would fall back on the generation config's: force the length instead
            kwargs.update(min_new_tokens=p.max_tokens)
        if p.greedy:
            kwargs.update(do_sample=False)
        else:
            torch.manual_seed(seq.generator.initial_seed())
            kwargs.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k or None,
                          min_p=p.min_p or None)
        out = self.model.generate(ids, **kwargs, **self.extra_inputs(seq))[0, len(seq.prompt_ids):].tolist()
        stop_ids = set(self.eos_ids) | set(p.stop_token_ids)
        reason = "length"
        if not p.ignore_eos and out and out[-1] in stop_ids and len(out) <= p.max_tokens:
            reason, text_ids = "stop", out[:-1]
        else:
            text_ids = out
        detok = Detokenizer(self.tokenizer, p.stop)
        text = detok.step(text_ids, final=True)
        if detok.stopped:
            reason = "stop"
        return [StepOutput(seq.request_id, out, text, True, reason)]
