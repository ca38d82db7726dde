"""The paged KV cache's bookkeeping: fixed-size blocks, block tables, reference counts, prefix sharing, copy-on-write.

The KV cache is one big pool of ``num_blocks`` blocks of ``block_size`` token slots each
(:class:`llmlab.serve.kv_cache.PagedKVCache` holds the tensors). A sequence does not own a contiguous
region: it owns a **block table**, the list of physical blocks that hold its tokens 0..B-1, B..2B-1, ...
so memory is claimed one block at a time as the sequence grows and nothing is reserved for output that
is never generated (vLLM's PagedAttention, Kwon et al. 2023). This file moves no tensors: it only decides
which block holds what, and tells the model runner which blocks to copy.

- **Reference counts.** A block can be in several block tables; it returns to the free list when the
  last sequence lets go of it.
- **Prefix sharing.** A *full* block is identified by a hash of its tokens chained with the hash of the
  block before it, so equal hashes mean equal prefixes. A new sequence whose prompt starts with cached
  blocks reuses them and skips their prefill. Freed blocks keep their hash until they are handed out
  again, so a later request can still revive them (an LRU cache for free).
- **Copy-on-write.** Before a slot of a shared block is written (a forked sequence, or a prompt that is
  entirely cached, whose last token is recomputed to get its logits) the writer gets a private copy;
  the runner performs the copies listed in ``pending_copies`` before the step.
- The scheduler preempts a sequence (frees its blocks, recomputes it later) when ``ensure`` cannot get
  a block: ``ensure`` returns ``False`` and changes nothing in that case.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .request import Sequence


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    hash: int | None = None
    token_ids: tuple[int, ...] = field(default=())


def block_hash(prev_hash: int | None, token_ids) -> int:
    """The identity of a full block: its tokens and (through ``prev_hash``) everything before them."""
    return hash((prev_hash, tuple(token_ids)))


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        assert num_blocks > 0 and block_size > 0
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))  # oldest first
        self.cached: dict[int, int] = {}          # hash -> block id (full blocks, used or free)
        self.pending_copies: list[tuple[int, int]] = []   # (src, dst) for the runner, copy-on-write
        self.stats = {"allocated": 0, "freed": 0, "prefix_hits": 0, "copied": 0}

    # -- counts ------------------------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free(self) -> int:
        return len(self.free)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    # -- the free list -----------------------------------------------------------------------------------
    def _take(self, block_id: int | None = None) -> Block:
        """A block off the free list with ref 1: the oldest free one (its cached contents are forgotten),
        or ``block_id`` itself to revive a freed block whose prefix is still cached."""
        if block_id is None:
            block_id, _ = self.free.popitem(last=False)
            block = self.blocks[block_id]
            if block.hash is not None and self.cached.get(block.hash) == block_id:
                del self.cached[block.hash]      # recycled: its old contents are about to be overwritten
            block.hash, block.token_ids = None, ()
        else:
            del self.free[block_id]
            block = self.blocks[block_id]
        block.ref_count = 1
        self.stats["allocated"] += 1
        return block

    def _release(self, block_id: int) -> None:
        block = self.blocks[block_id]
        assert block.ref_count > 0, f"block {block_id} freed twice"
        block.ref_count -= 1
        if block.ref_count == 0:
            self.free[block_id] = None            # most recently freed last: evicted last
            self.stats["freed"] += 1

    # -- sequences ---------------------------------------------------------------------------------------
    def allocate_prefix(self, seq: Sequence) -> int:
        """Attach the cached full blocks that start ``seq``'s tokens; return how many tokens they cover.

        At least one token is always left to compute (the logits of the last token are needed), so a
        fully cached prompt shares all its blocks and recomputes the last token (copy-on-write)."""
        assert not seq.block_table, "allocate_prefix on a sequence that already has blocks"
        if not self.enable_prefix_caching:
            return 0
        tokens, bs, h = seq.tokens, self.block_size, None
        for i in range(len(tokens) // bs):
            chunk = tuple(tokens[i * bs:(i + 1) * bs])
            h = block_hash(h, chunk)
            bid = self.cached.get(h)
            if bid is None or self.blocks[bid].token_ids != chunk:
                break
            block = self.blocks[bid]
            if block.ref_count == 0:
                self._take(bid)                   # freed earlier, contents still valid: revive it
            else:
                block.ref_count += 1
            seq.block_table.append(bid)
            seq.block_hashes.append(h)
            self.stats["prefix_hits"] += 1
        seq.num_computed = min(len(seq.block_table) * bs, len(tokens) - 1)
        return seq.num_computed

    def ensure(self, seq: Sequence, num_tokens: int) -> bool:
        """Make slots ``seq.num_computed .. num_tokens-1`` writable: new blocks at the end, private copies of
        shared blocks that will be written. All or nothing: False (and no change) if blocks run out."""
        bs = self.block_size
        first, last = seq.num_computed // bs, (num_tokens - 1) // bs
        shared = [i for i in range(first, min(last + 1, len(seq.block_table)))
                  if self.blocks[seq.block_table[i]].ref_count > 1]
        new = max(0, last + 1 - len(seq.block_table))
        if len(shared) + new > self.num_free:
            return False
        for i in shared:                          # copy-on-write
            src = seq.block_table[i]
            dst = self._take().block_id
            self.pending_copies.append((src, dst))
            self.stats["copied"] += 1
            self._release(src)
            seq.block_table[i] = dst
            seq.block_hashes[i] = None            # the copy is registered again when it is full
        for _ in range(new):
            seq.block_table.append(self._take().block_id)
            seq.block_hashes.append(None)
        return True

    def commit(self, seq: Sequence) -> None:
        """After a step: register the hashes of the blocks that became full, for later prefix hits."""
        if not self.enable_prefix_caching:
            return
        bs, tokens = self.block_size, seq.tokens
        for i in range(min(seq.num_computed // bs, len(seq.block_table))):
            if seq.block_hashes[i] is not None:
                continue
            chunk = tuple(tokens[i * bs:(i + 1) * bs])
            h = block_hash(seq.block_hashes[i - 1] if i else None, chunk)
            seq.block_hashes[i] = h
            block = self.blocks[seq.block_table[i]]
            block.hash, block.token_ids = h, chunk
            self.cached.setdefault(h, block.block_id)

    def fork(self, parent: Sequence, child: Sequence) -> None:
        """``child`` shares all of ``parent``'s blocks (parallel sampling, beam search): refs + 1 each."""
        for bid in parent.block_table:
            self.blocks[bid].ref_count += 1
        child.block_table = list(parent.block_table)
        child.block_hashes = list(parent.block_hashes)
        child.num_computed = parent.num_computed

    def free_seq(self, seq: Sequence) -> None:
        """Give back every block of ``seq`` (finished, aborted or preempted); the last ones are freed first
        so that a prefix, which others are likelier to share, stays cached longest."""
        for bid in reversed(seq.block_table):
            self._release(bid)
        seq.block_table, seq.block_hashes, seq.num_computed = [], [], 0

    def check(self) -> None:
        """Invariants (for tests): free blocks have ref 0, used blocks ref > 0."""
        for b in self.blocks:
            assert (b.block_id in self.free) == (b.ref_count == 0), f"block {b.block_id}: ref {b.ref_count}"
