"""Continuous (iteration-level) batching: which tokens of which sequences run in the next step.

Orca (Yu et al. 2022) and vLLM schedule one *iteration* at a time instead of one batch of requests: a
request joins the batch as soon as there is room and leaves it the step it finishes, so short answers do
not wait for long ones and the batch stays full. Every step has a **token budget**
(``max_num_batched_tokens``) and a cap on sequences (``max_num_seqs``):

1. running sequences first, oldest first: each needs its uncomputed tokens (1 for a decode; a prompt,
   or what is left of it, for a prefill, cut to the budget: *chunked prefill*). If the block manager cannot
   give it the slots, the **newest** running sequence is **preempted**: its blocks are freed and it goes
   back to the front of the waiting queue, to be recomputed later (vLLM's recompute preemption; its
   prefix blocks often survive in the prefix cache, which makes the recompute cheap);
2. then waiting sequences, first come first served, while budget, sequence slots and blocks last: cached
   prefix blocks are attached (their tokens are not recomputed), then the rest of the prompt is scheduled.

Prefills and decodes share one forward pass. A waiting sequence that cannot fit even in an empty cache
is finished with reason ``"length"`` rather than left waiting forever.
"""

from __future__ import annotations

from collections import deque

from .block_manager import BlockManager
from .request import Sequence, Status


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int = 64, max_num_batched_tokens: int = 512):
        self.bm = block_manager
        self.max_num_seqs, self.max_num_batched_tokens = max_num_seqs, max_num_batched_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0
        self.rejected: list[Sequence] = []       # finished by the scheduler itself (too long to ever fit)

    def add(self, seq: Sequence) -> None:
        seq.status = Status.WAITING
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.bm.free_seq(seq)
        seq.status, seq.num_preemptions = Status.WAITING, seq.num_preemptions + 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)

    def finish(self, seq: Sequence, reason: str) -> None:
        """Remove ``seq`` wherever it is, free its blocks (finished or aborted)."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.bm.free_seq(seq)
        seq.status, seq.finish_reason = Status.FINISHED, seq.finish_reason or reason

    def pop_rejected(self) -> list[Sequence]:
        out, self.rejected = self.rejected, []
        return out

    def schedule(self) -> list[tuple[Sequence, int]]:
        budget, batch = self.max_num_batched_tokens, []
        for seq in list(self.running):
            if budget == 0:
                break
            if seq not in self.running:           # preempted below by an older sequence
                continue
            n = min(seq.num_uncomputed, budget)
            while not self.bm.ensure(seq, seq.num_computed + n):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is seq:
                    break
            else:
                batch.append((seq, n))
                budget -= n
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if self.bm.blocks_needed(len(seq)) > self.bm.num_blocks:
                self.waiting.popleft()
                self.finish(seq, "length")        # can never fit
                self.rejected.append(seq)
                continue
            self.bm.allocate_prefix(seq)
            n = min(seq.num_uncomputed, budget)
            # admit only if the whole sequence fits now (otherwise it would be preempted at once)
            if self.bm.blocks_needed(len(seq)) - len(seq.block_table) > self.bm.num_free or \
                    not self.bm.ensure(seq, seq.num_computed + n):
                self.bm.free_seq(seq)
                break
            self.waiting.popleft()
            seq.status = Status.RUNNING
            self.running.append(seq)
            batch.append((seq, n))
            budget -= n
        return batch
