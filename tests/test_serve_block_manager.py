"""The paged KV cache's block manager, on allocation traces (blocks used, freed, shared, copied on write)."""

from llmlab.serve.block_manager import BlockManager
from llmlab.serve.request import Sequence


def seq(n, start=1):
    return Sequence(list(range(start, start + n)))


def admit(bm, s):
    """What the scheduler does for a new sequence: attach cached prefix blocks, then slots for the rest."""
    bm.allocate_prefix(s)
    assert bm.ensure(s, len(s))
    s.num_computed = len(s)
    bm.commit(s)


def test_blocks_grow_at_exact_block_edges():
    bm = BlockManager(num_blocks=8, block_size=4)
    for n, blocks in [(1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (9, 3)]:   # one short, exact multiple, one over
        s = seq(n)
        admit(bm, s)
        assert len(s.block_table) == blocks, f"{n} tokens need {blocks} blocks of 4"
        bm.free_seq(s)
    assert bm.num_free == 8
    bm.check()


def test_decode_takes_a_new_block_only_when_the_last_is_full():
    bm = BlockManager(num_blocks=8, block_size=4)
    s = seq(3)
    admit(bm, s)
    used = []
    for _ in range(6):                      # tokens 4..9 are appended one at a time
        s.output_ids.append(7)
        assert bm.ensure(s, len(s))
        s.num_computed = len(s)
        used.append(len(s.block_table))
    assert used == [1, 2, 2, 2, 2, 3]


def test_prefix_sharing_refcounts_and_revival():
    bm = BlockManager(num_blocks=8, block_size=4, enable_prefix_caching=True)
    a, b = seq(10), seq(10)                 # same 10 tokens: 2 full blocks shared, the partial third not
    admit(bm, a)
    assert bm.allocate_prefix(b) == 8
    assert b.block_table[:2] == a.block_table[:2]
    assert [bm.blocks[i].ref_count for i in a.block_table] == [2, 2, 1]
    assert bm.ensure(b, len(b))
    assert bm.num_free == 8 - 4             # 2 shared + 2 private partial blocks
    bm.free_seq(a)
    assert [bm.blocks[i].ref_count for i in b.block_table[:2]] == [1, 1]
    bm.free_seq(b)
    assert bm.num_free == 8
    c = seq(9)                              # freed blocks keep their hash: revived without recomputation
    assert bm.allocate_prefix(c) == 8 and bm.stats["prefix_hits"] == 4
    bm.check()


def test_different_prefix_is_not_shared():
    bm = BlockManager(num_blocks=8, block_size=4)
    a, b = seq(8), Sequence([1, 2, 3, 99, 5, 6, 7, 8])
    admit(bm, a)
    assert bm.allocate_prefix(b) == 0, "a block hash must cover every token of the block"
    c = Sequence([9] * 4 + list(range(5, 9)))   # second block equal, first different: the chain hash differs
    assert bm.allocate_prefix(c) == 0


def test_fully_cached_prompt_copies_its_last_block_on_write():
    bm = BlockManager(num_blocks=8, block_size=4)
    a, b = seq(8), seq(8)
    admit(bm, a)
    assert bm.allocate_prefix(b) == 7, "the last token is recomputed for its logits"
    assert bm.ensure(b, 8)
    assert len(bm.pending_copies) == 1
    src, dst = bm.pending_copies[0]
    assert src == a.block_table[1] and dst == b.block_table[1] and src != dst
    assert b.block_table[0] == a.block_table[0]
    bm.check()


def test_fork_shares_everything_and_copies_the_partial_block_on_write():
    bm = BlockManager(num_blocks=8, block_size=4)
    parent, child = seq(6), seq(6)
    admit(bm, parent)
    bm.fork(parent, child)
    assert [bm.blocks[i].ref_count for i in parent.block_table] == [2, 2]
    child.output_ids.append(3)
    assert bm.ensure(child, 7)              # writes slot 6, inside the shared partial block 1
    assert bm.pending_copies == [(parent.block_table[1], child.block_table[1])]
    assert bm.blocks[parent.block_table[1]].ref_count == 1


def test_ensure_is_all_or_nothing_when_blocks_run_out():
    bm = BlockManager(num_blocks=3, block_size=4)
    a, b = seq(8), seq(6, start=50)
    admit(bm, a)
    bm.allocate_prefix(b)
    assert not bm.ensure(b, 6), "b needs 2 blocks, only 1 is free"
    assert b.block_table == [] and bm.num_free == 1
    bm.free_seq(a)
    assert bm.ensure(b, 6) and bm.num_free == 1
