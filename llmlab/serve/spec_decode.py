"""Speculative decoding inside the batched engine: a draft model proposes, the target verifies, for a whole batch.

:mod:`.speculative` explains the method on one sequence. Here it runs in every engine step, for every
sequence of the batch at once, on the paged KV cache:

- the draft has its **own** :class:`~.kv_cache.PagedKVCache` (its own layer shapes) addressed by the **same**
  block tables: token ``p`` of a sequence sits in the same slot of both caches, so the block manager, prefix
  sharing, copy-on-write and preemption need nothing new (copies are applied to both caches);
- a step runs the draft ``k`` times (pass 1 also catches the draft up on prefill chunks and on the tokens
  the last round accepted), then the target **once** over every sequence: prefill chunks as usual, and for
  each decoding sequence its last token plus its ``k`` proposals (``k + 1`` positions, all their logits);
- the acceptance rule (:func:`.speculative.accept_or_resample`, with the request's own generator and its
  processed distributions) keeps a prefix of the proposals and adds one target token; the K/V the target
  wrote for rejected positions stay in their slots and are simply overwritten later (``num_computed`` is
  rolled back to the accepted length, so nothing reads them).

Greedy output is the target's own greedy output token for token (the rule keeps a proposal iff it is the
target's argmax). The draft's cache only ever affects *which* tokens are proposed, never which are
emitted: a stale draft slot costs acceptance, not correctness. ``k`` shrinks near ``max_tokens`` and the
context end, and a sequence speculates only if its extra slots fit in free blocks (else it decodes plainly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .kv_cache import PagedKVCache
from .model_runner import ModelRunner
from .request import Sequence
from .sampler import probs_of, sample_token, top_logprobs
from .speculative import SpecStats, accept_or_resample


@dataclass
class _View:
    """What :meth:`ModelRunner.prepare` reads of a sequence, for tokens the sequence does not hold yet."""
    tokens: list[int]
    num_computed: int
    block_table: list[int]


class SpeculativeDecoder:
    def __init__(self, engine, draft_model, num_speculative_tokens: int = 4):
        if draft_model.config.vocab_size != engine.model.config.vocab_size:
            raise ValueError(f"the draft's vocabulary ({draft_model.config.vocab_size}) differs from the target's "
                             f"({engine.model.config.vocab_size}): they must share the tokenizer")
        p = next(draft_model.parameters())
        self.engine, self.k = engine, num_speculative_tokens
        self.cache = PagedKVCache.for_config(draft_model.config, engine.cache.num_blocks, engine.cache.block_size,
                                             dtype=p.dtype, device=p.device)
        self.draft = ModelRunner(draft_model, self.cache)
        self.stats = SpecStats()

    def plan(self, batch: list[tuple[Sequence, int]]) -> dict[int, int]:
        """The draft length of each decoding sequence (before the step's copy-on-write is applied)."""
        eng, ks = self.engine, {}
        for seq, n in batch:
            if seq.num_uncomputed != 1:              # a prefill chunk: no speculation this step
                continue
            room = min(seq.params.max_tokens - len(seq.output_ids), eng.max_model_len - len(seq)) - 1
            k = max(0, min(self.k, room))
            if k and not eng.block_manager.ensure(seq, len(seq) + k):
                k = 0                                 # no free blocks for the proposals: decode plainly
            ks[seq.seq_id] = k
        return ks

    @torch.inference_mode()
    def run(self, batch: list[tuple[Sequence, int]], ks: dict[int, int]):
        """Per sequence of the batch, in order: ``(new tokens, their logprob entries)`` (empty for an
        unfinished prefill chunk); updates ``num_computed`` and the stats."""
        # 1. the draft: catch up (prefill chunks, tokens accepted last round), then k - 1 more single steps
        proposals: dict[int, list[int]] = {s.seq_id: [] for s, _ in batch}
        qs: dict[int, list[torch.Tensor]] = {s.seq_id: [] for s, _ in batch}
        catch_up = []
        for seq, n in batch:
            end = seq.num_computed + n               # the draft computes what the target computes this step
            start = min(seq.draft_computed, seq.num_computed)
            if seq.seq_id in ks and ks[seq.seq_id] == 0:
                start = end                           # nothing to propose
            if start < end:
                catch_up.append((seq, _View(seq.tokens, start, seq.block_table), end - start))
        if catch_up:
            rows = self.draft.run([(v, m) for _, v, m in catch_up])
            self.stats.draft_calls += 1
            for (seq, v, m), row in zip(catch_up, rows):
                seq.draft_computed = v.num_computed + m
                if ks.get(seq.seq_id):
                    self._propose(seq, row, proposals, qs)
        for step in range(1, max(ks.values(), default=0)):
            todo = [s for s, _ in batch if ks.get(s.seq_id, 0) > step]
            views = [(_View(s.tokens + proposals[s.seq_id], len(s) + step - 1, s.block_table), 1) for s in todo]
            self.stats.draft_calls += 1
            for seq, row in zip(todo, self.draft.run(views)):
                self._propose(seq, row, proposals, qs)
                seq.draft_computed = len(seq) + step

        # 2. the target, once: prefill chunks as usual; decodes over the last token + the proposals
        entries = [(seq, n) if seq.seq_id not in ks else
                   (_View(seq.tokens + proposals[seq.seq_id], seq.num_computed, seq.block_table), 1 + ks[seq.seq_id])
                   for seq, n in batch]
        logits = self.engine.runner.run(entries, all_logits=True)
        self.stats.target_calls += 1

        # 3. accept or resample, per sequence
        results = []
        for (seq, n), rows in zip(batch, logits):
            if seq.seq_id not in ks:                  # a prefill chunk
                seq.num_computed += n
                seq.draft_computed = min(seq.draft_computed, seq.num_computed)
                results.append(self._plain(seq, rows[-1]) if seq.num_uncomputed == 0 else ([], []))
                continue
            k, prop = ks[seq.seq_id], proposals[seq.seq_id]
            if k == 0:                                # a plain decode
                seq.num_computed += 1
                results.append(self._plain(seq, rows[0]))
                continue
            ctx, outs, P = seq.tokens, seq.output_ids, seq.params
            p = torch.stack([probs_of(rows[i], P, ctx + prop[:i], outs + prop[:i]) for i in range(k + 1)])
            q = torch.stack(qs[seq.seq_id])
            accepted, y = accept_or_resample(p, q, prop, seq.generator)
            seq.num_computed += 1 + len(accepted)     # the last token and the accepted proposals; not y
            seq.draft_computed = min(seq.draft_computed, seq.num_computed)
            self.stats.rounds += 1
            self.stats.proposed += k
            self.stats.accepted += len(accepted)
            seq.spec_proposed += k
            seq.spec_accepted += len(accepted)
            new = accepted + [y]
            lps = [top_logprobs(rows[i], t, P.logprobs) for i, t in enumerate(new)] if P.logprobs is not None else []
            results.append((new, lps))
        return results

    def _propose(self, seq, row, proposals, qs):
        prop, P = proposals[seq.seq_id], seq.params
        q = probs_of(row, P, seq.tokens + prop, seq.output_ids + prop)
        x = int(q.argmax()) if P.greedy else int(torch.multinomial(q, 1, generator=seq.generator))
        prop.append(x)
        qs[seq.seq_id].append(q)

    def _plain(self, seq, row):
        """A token sampled from the target as without speculation (after a prefill, or with k = 0)."""
        tok = sample_token(row, seq)
        return [tok], ([top_logprobs(row, tok, seq.params.logprobs)] if seq.params.logprobs is not None else [])
