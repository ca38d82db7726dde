"""The engine loop: schedule, run the model, sample, detokenize, finish; one iteration per ``step()``.

::

    from llmlab.serve import LLMEngine, SamplingParams
    engine = LLMEngine.from_pretrained(path)            # any HF causal LM folder, or a zoo name
    outs = engine.generate(["To be", "O Romeo"], SamplingParams(max_tokens=20, temperature=0))
    outs[0].text, outs[0].token_ids, outs[0].finish_reason

``add_request`` queues a sequence; ``step`` advances every scheduled sequence by one iteration and
returns a :class:`StepOutput` per sequence that produced text or finished; ``abort`` cancels one and
frees its blocks. :class:`llmlab.serve.async_engine.AsyncEngine` drives ``step`` from asyncio for the server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .block_manager import BlockManager
from .detokenizer import Detokenizer
from .kv_cache import PagedKVCache
from .model_runner import ModelRunner
from .request import SamplingParams, Sequence, Status
from .sampler import Sampler
from .scheduler import Scheduler


@dataclass
class StepOutput:
    request_id: str
    new_token_ids: list[int]
    new_text: str
    finished: bool
    finish_reason: str | None = None
    new_logprobs: list = field(default_factory=list)
    spec_proposed: int = 0        # speculative decoding: draft tokens proposed / accepted so far (this request)
    spec_accepted: int = 0


@dataclass
class RequestOutput:
    request_id: str
    prompt_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str | None
    logprobs: list = field(default_factory=list)


def load_model(path: str, dtype=torch.float32, device: str = "cpu"):
    """(model, tokenizer, folder) for a Hugging Face causal LM folder or a course zoo name."""
    import os

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not os.path.isdir(path):
        from .. import zoo
        path = str(zoo.pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer, path


class LLMEngine:
    def __init__(self, model, tokenizer, num_blocks: int = 256, block_size: int = 16, max_num_seqs: int = 64,
                 max_num_batched_tokens: int = 512, enable_prefix_caching: bool = True,
                 max_model_len: int | None = None, draft_model=None, num_speculative_tokens: int = 4):
        self.model, self.tokenizer = model, tokenizer
        cfg = model.config
        self.max_model_len = max_model_len or getattr(cfg, "max_position_embeddings", None) or cfg.n_positions
        self.cache = PagedKVCache.for_config(cfg, num_blocks, block_size,
                                             dtype=next(model.parameters()).dtype,
                                             device=next(model.parameters()).device)
        self.block_manager = BlockManager(num_blocks, block_size, enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, max_num_seqs, max_num_batched_tokens)
        self.runner, self.sampler = ModelRunner(model, self.cache), Sampler()
        eos = getattr(model.generation_config, "eos_token_id", None) or getattr(cfg, "eos_token_id", None)
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
        self.seqs: dict[str, Sequence] = {}
        self.detok: dict[str, Detokenizer] = {}
        self.num_steps, self.num_aborted = 0, 0
        self.spec = None              # speculative decoding with a draft model (same tokenizer), see .spec_decode
        if draft_model is not None:
            from .spec_decode import SpeculativeDecoder
            self.spec = SpeculativeDecoder(self, draft_model, num_speculative_tokens)

    @classmethod
    def from_pretrained(cls, path: str, dtype=torch.float32, device: str = "cpu", draft: str | None = None,
                        **kwargs) -> LLMEngine:
        """``draft``: a zoo name or folder of a draft model for speculative decoding (e.g. ``"llama-draft"``)."""
        model, tokenizer, _ = load_model(path, dtype, device)
        draft_model = load_model(draft, dtype, device)[0] if draft else None
        return cls(model, tokenizer, draft_model=draft_model, **kwargs)

    # -- requests ----------------------------------------------------------------------------------------
    def add_request(self, prompt_ids: list[int], params: SamplingParams | None = None,
                    request_id: str | None = None) -> Sequence:
        params = params or SamplingParams()
        if not prompt_ids:
            raise ValueError("empty prompt")
        if len(prompt_ids) + 1 > self.max_model_len:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens leaves no room in a context of {self.max_model_len}")
        seq = Sequence(list(prompt_ids), params, request_id or "")
        if seq.request_id in self.seqs:
            raise ValueError(f"request id {seq.request_id!r} is already in use")
        self.seqs[seq.request_id] = seq
        self.detok[seq.request_id] = Detokenizer(self.tokenizer, params.stop) if self.tokenizer else None
        self.scheduler.add(seq)
        return seq

    def abort(self, request_id: str) -> None:
        seq = self.seqs.pop(request_id, None)
        self.detok.pop(request_id, None)
        if seq is not None and not seq.finished:
            self.scheduler.finish(seq, "abort")
            self.num_aborted += 1

    def has_work(self) -> bool:
        return self.scheduler.has_work()

    # -- one iteration -----------------------------------------------------------------------------------
    def _stop_reason(self, seq: Sequence, tok: int) -> str | None:
        p = seq.params
        if (tok in self.eos_ids and not p.ignore_eos) or tok in p.stop_token_ids:
            return "stop"
        if len(seq.output_ids) >= p.max_tokens or len(seq) >= self.max_model_len:
            return "length"
        return None

    def step(self) -> list[StepOutput]:
        batch = self.scheduler.schedule()
        outputs = [self._finish(seq, "length", []) for seq in self.scheduler.pop_rejected()]
        if not batch:
            return outputs
        ks = self.spec.plan(batch) if self.spec is not None else None   # may take blocks (and copies) too
        for cache in [self.cache] + ([self.spec.cache] if self.spec is not None else []):
            cache.copy_blocks(self.block_manager.pending_copies)   # copy-on-write before anything is written
        self.block_manager.pending_copies.clear()
        self.num_steps += 1
        if self.spec is not None:
            results = self.spec.run(batch, ks)
        else:
            logits = self.runner.run(batch)
            ready = []
            for (seq, n), row in zip(batch, logits):
                seq.num_computed += n
                if seq.num_uncomputed == 0:       # prefill complete or a decode: this row's logits give a token
                    ready.append((seq, row))
            tokens = iter(self.sampler([r for _, r in ready], [s for s, _ in ready]))
            results = [([next(tokens)], None) if seq.num_uncomputed == 0 else ([], None) for seq, _ in batch]
        for (seq, _), (toks, lps) in zip(batch, results):
            if toks:
                outputs.append(self._emit(seq, toks, lps))
            else:
                self.block_manager.commit(seq)
        return outputs

    def _emit(self, seq: Sequence, toks: list[int], lps) -> StepOutput:
        """Append this step's token(s) one by one, stopping at the first stop condition; one StepOutput.
        ``lps``: their logprob entries (None: the sampler already recorded them)."""
        if seq.first_token_time is None:
            seq.first_token_time = time.perf_counter()
        detok, text, reason, n0 = self.detok.get(seq.request_id), "", None, len(seq.logprobs)
        if lps is None:
            n0 -= len(toks)
        for i, tok in enumerate(toks):
            seq.output_ids.append(tok)
            if lps:
                seq.logprobs.append(lps[i])
            reason = self._stop_reason(seq, tok)
            ids = seq.output_ids[:-1] if reason == "stop" else seq.output_ids   # the stop token is not text
            text += detok.step(ids, final=reason is not None) if detok else ""
            if detok is not None and detok.stopped:
                reason = "stop"
            if reason is not None:
                toks = toks[:i + 1]
                break
        seq.num_computed = min(seq.num_computed, len(seq))   # proposals cut by a stop were computed, not kept
        self.block_manager.commit(seq)                       # register the blocks that became full
        lp = seq.logprobs[n0:] if seq.params.logprobs is not None else []
        if reason is not None:
            return self._finish(seq, reason, toks, text, lp)
        return StepOutput(seq.request_id, list(toks), text, False, None, lp, seq.spec_proposed, seq.spec_accepted)

    def _finish(self, seq: Sequence, reason: str, toks, text: str = "", lp=()) -> StepOutput:
        self.scheduler.finish(seq, reason)
        self.seqs.pop(seq.request_id, None)
        self.detok.pop(seq.request_id, None)
        return StepOutput(seq.request_id, list(toks), text, True, seq.finish_reason, list(lp), seq.spec_proposed,
                          seq.spec_accepted)

    # -- offline use -------------------------------------------------------------------------------------
    def generate(self, prompts, params: SamplingParams | list[SamplingParams] | None = None) -> list[RequestOutput]:
        """Run prompts (strings or token-id lists) to completion, all batched together."""
        params = params if isinstance(params, list) else [params or SamplingParams()] * len(prompts)
        seqs = []
        for p, sp in zip(prompts, params):
            ids = self.tokenizer.encode(p, add_special_tokens=False) if isinstance(p, str) else list(p)
            seqs.append(self.add_request(ids, sp))
        texts = {s.request_id: "" for s in seqs}
        while self.has_work():
            for out in self.step():
                texts[out.request_id] += out.new_text
        return [RequestOutput(s.request_id, s.prompt_ids, s.output_ids, texts[s.request_id], s.finish_reason,
                              s.logprobs) for s in seqs]
