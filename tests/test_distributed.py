"""llmlab.systems.distributed: forked gloo ranks that never leak env vars, hang, or write to stderr."""

import os

import pytest
import torch
import torch.distributed as dist

from llmlab.systems.distributed import RankError, run_on_ranks, scrubbed_env


def _all_reduce(rank, world_size, offset):
    t = torch.full((3,), float(rank) + offset)
    dist.all_reduce(t)
    print("reduced", t.tolist())
    return t


def test_results_come_back_by_rank(capsys):
    out = run_on_ranks(_all_reduce, 2, 1.0)
    assert [t.tolist() for t in out] == [[3.0] * 3] * 2  # (0+1) + (1+1) on both ranks
    captured = capsys.readouterr()
    assert "[rank 0] reduced" in captured.out and "[rank 1] reduced" in captured.out
    assert captured.err == ""  # a child's output must never reach stderr (nbgrader gives 0)


def _fail_on_rank_1(rank, world_size):
    if rank == 1:
        raise ValueError("boom on rank 1")
    dist.barrier()  # rank 0 would wait here forever: the launcher must not


def test_a_failing_rank_raises_quickly_with_its_traceback():
    with pytest.raises(RankError, match="boom on rank 1") as info:
        run_on_ranks(_fail_on_rank_1, 2, timeout=60)
    assert str(info.value).splitlines()[0] == "rank 1 raised ValueError: boom on rank 1"  # the headline first
    assert info.value.exc_type == "ValueError"


def test_no_distributed_variables_leak(monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "1")  # a stale value from an earlier cell
    run_on_ranks(_all_reduce, 2, 0.0)
    assert os.environ["MASTER_PORT"] == "1" and "RANK" not in os.environ  # restored, nothing added
    with scrubbed_env():
        assert "MASTER_PORT" not in os.environ
    assert not dist.is_initialized()  # the parent never joined a group
