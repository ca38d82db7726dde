"""Week 3: ZeRO-1 from scratch (llmlab.systems.zero) against single-process torch.optim.AdamW, and the
per-rank memory formulas against llmlab.systems.memory and DeepSpeed's estimators.

Ranks are forked gloo processes (llmlab.systems.distributed.run_on_ranks), one thread each.
"""

import pytest
import torch

from llmlab.systems.distributed import run_on_ranks
from llmlab.systems.memory import training_state_bytes
from llmlab.models.gpt import GPT, GPTConfig
from llmlab.systems.zero import ZeroAdamW, flatten_padded, reachable_tensor_bytes, shard_size, unflatten_into, zero_state_bytes

# The ranks run with one thread each, and so does the single-process reference (conftest's one_thread
# fixture): a matmul's summation order depends on how many threads split it, and exact equality is tested below.

CFG = GPTConfig(vocab_size=22, block_size=8, n_layer=2, n_head=2, n_embd=10)
OPT = dict(lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)


def batches(seed, world_size, steps, micro=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(CFG.vocab_size, (steps, world_size, micro, CFG.block_size + 1), generator=g)


def zero_run(rank, world_size, seed, steps):
    torch.manual_seed(seed)
    model = GPT(CFG)
    opt = ZeroAdamW(model.parameters(), rank, world_size, **OPT)
    for xy in batches(seed, world_size, steps)[:, rank]:
        opt.zero_grad()
        model(xy[:, :-1], xy[:, 1:].contiguous())[1].backward()
        opt.step()
    return [p.detach() for p in model.parameters()], reachable_tensor_bytes(opt, exclude=list(model.parameters()))


def single_process(seed, world_size, steps):
    """The trusted reference: torch.optim.AdamW, the gradient = mean of the ranks' micro-batch gradients."""
    torch.manual_seed(seed)
    model = GPT(CFG)
    opt = torch.optim.AdamW(model.parameters(), **OPT)
    for xy in batches(seed, world_size, steps):
        grads = []
        for r in range(world_size):
            model.zero_grad()
            model(xy[r, :, :-1], xy[r, :, 1:].contiguous())[1].backward()
            grads.append([p.grad.clone() for p in model.parameters()])
        for i, p in enumerate(model.parameters()):
            p.grad = sum(g[i] for g in grads[1:]).add(grads[0][i]) / world_size  # g0 + g1 (+ ...), then / N
        opt.step()
    return [p.detach() for p in model.parameters()]


def test_zero1_matches_single_process_exactly_on_two_ranks():
    (p0, _), (p1, _) = run_on_ranks(zero_run, 2, 0, 3, echo=False)
    ref = single_process(0, 2, 3)
    # g0 + g1 is one float addition (commutative, exact same result); / 2 is exact; AdamW is elementwise
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(p0, p1, ref))


def test_zero1_three_ranks_with_padding():
    numel = sum(p.numel() for p in GPT(CFG).parameters())
    assert numel % 3 != 0  # the flat buffer needs padding: the test covers it
    outs = run_on_ranks(zero_run, 3, 1, 3, echo=False)
    ref = single_process(1, 3, 3)
    for params, _ in outs:
        for a, b in zip(params, ref):
            # gloo sums the three gradients in another order than g0 + g1 + g2, and / 3 rounds: ~1 ulp per
            # element. Adam's m / sqrt(v) turns a relative gradient error e into ~lr * e per step; e is large
            # only where the three gradients nearly cancel. Measured: 2.2e-6 after 3 steps at lr = 1e-2.
            torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


def test_zero1_keeps_a_shard_of_the_optimizer_state():
    numel = sum(p.numel() for p in GPT(CFG).parameters())
    (_, b0), (_, b1) = run_on_ranks(zero_run, 2, 0, 1, echo=False)
    shard = shard_size(numel, 2)
    # fp32 master shard + m + v = 12 bytes per shard element, + 4 bytes for AdamW's step tensor
    assert b0 == b1 == 12 * shard + 4
    assert b0 < training_state_bytes(numel, "fp32")["optimizer"]  # unsharded AdamW: m and v, 8 bytes each


def test_flatten_unflatten_round_trip():
    torch.manual_seed(0)
    ts = [torch.randn(3, 5), torch.randn(7)]
    flat = flatten_padded(ts, 4)
    assert flat.numel() == 24 and flat[22:].eq(0).all()  # 22 elements padded to 4 * 6
    out = [torch.empty_like(t) for t in ts]
    unflatten_into(flat, out)
    assert all(torch.equal(a, b) for a, b in zip(ts, out))


@pytest.mark.parametrize("mode", ["fp32", "mixed"])
def test_stage0_is_plain_data_parallel(mode):
    assert zero_state_bytes(1000, 8, 0, mode) == training_state_bytes(1000, mode)  # nothing sharded


def test_zero_paper_example():
    # ZeRO paper, figure 1: Psi = 7.5B, N = 64, K = 12: 120 GB, 31.4 GB, 16.6 GB, 1.9 GB per device
    expected = {0: 120e9, 1: 31.4e9, 2: 16.6e9, 3: 1.9e9}
    for stage, gb in expected.items():
        got = zero_state_bytes(7_500_000_000, 64, stage)["total"]
        assert abs(got - gb) <= 0.05e9  # the paper rounds to 0.1 GB (1.875 GB is printed as 1.9)


def test_formulas_against_deepspeed_estimators():
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs
    psi, n, largest = 1_200_000, 4, 50_000
    _, ds2 = estimate_zero2_model_states_mem_needs(psi, num_gpus_per_node=n, cpu_offload=False)
    # DeepSpeed also counts an fp32 copy of the gradient shard (4 bytes / parameter / N)
    assert ds2 == zero_state_bytes(psi, n, 2)["total"] + 4 * psi // n
    _, ds3, _ = estimate_zero3_model_states_mem_needs(psi, largest, num_gpus_per_node=n, cpu_offload=False)
    # ... and for stage 3 the 16-bit parameters and gradients of the largest layer, gathered (2 + 2 bytes)
    assert ds3 == zero_state_bytes(psi, n, 3)["total"] + 2 * psi // n + 4 * largest


def test_bad_arguments():
    with pytest.raises(ValueError):
        zero_state_bytes(10, 2, 4)
    with pytest.raises(ValueError):
        zero_state_bytes(10, 2, 1, "fp8")


def test_zero_ds_demo_config():
    from llmlab.systems.zero_ds_demo import CONFIGS, ds_config
    cfg = ds_config(CONFIGS["stage 2 + offload"], micro_batch=4, world_size=2, lr=1e-3)
    assert cfg["train_batch_size"] == 8  # micro-batch x ranks (no accumulation): DeepSpeed checks this product
    assert cfg["optimizer"]["params"]["torch_adam"]  # PyTorch's AdamW: no compiled fused/CPU Adam op
    assert cfg["zero_force_ds_cpu_optimizer"] is False  # offloading would otherwise insist on DeepSpeed's CPU Adam
    assert "zero_force_ds_cpu_optimizer" not in ds_config(CONFIGS["stage 3"], 4, 2, 1e-3)
