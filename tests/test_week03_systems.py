"""Week 3: memory accounting, dynamic loss scaling, gradient checkpointing.

Formulas are checked against measurements (saved-tensor hooks, live tensor bytes), the loss scaler
against ``torch.amp.GradScaler``, and checkpointed models against the plain model and
``torch.utils.checkpoint.checkpoint_sequential``.
"""

import contextlib

import pytest
import torch
from torch.utils.checkpoint import checkpoint_sequential

from llmlab.systems.amp import DynamicLossScaler
from llmlab.systems.checkpointing import embed, gpt_forward, gpt_forward_segments, head, segment_bounds, sqrt_segments
from llmlab.systems.memory import (PeakMemory, activation_bytes, activation_bytes_per_layer, measure_saved_activations,
                           naive_attention, param_count, training_state_bytes)
from llmlab.models.gpt import GPT, Block, GPTConfig



def tiny(n_layer=4, dropout=0.0, **kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=n_layer, n_head=4, n_embd=32, dropout=dropout, **kw))


# ---------------------------------------------------------------------------------------------
# memory accounting


@pytest.mark.parametrize("cfg", [GPTConfig(), GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
                                 GPTConfig(vocab_size=11, block_size=5, n_layer=3, n_head=2, n_embd=6, bias=False)])
def test_param_count_matches_the_model(cfg):
    with torch.device("meta"):  # shapes only: GPT-2 small without allocating 500 MB
        model = GPT(cfg)
    assert param_count(cfg) == sum(p.numel() for p in model.parameters())  # parameters() yields the tied weight once


def test_gpt2_small_has_124m_parameters():
    # the number Hugging Face reports for "gpt2" (GPT2LMHeadModel.num_parameters())
    assert param_count(GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)) == 124_439_808


def nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


def test_training_state_bytes_fp32_adam():
    model = tiny(n_layer=2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randint(37, (2, 8)), torch.randint(37, (2, 8)))[1].backward()
    opt.step()
    params = list(model.parameters())
    states = [v for s in opt.state.values() for k, v in s.items() if k != "step"]  # step: one scalar per tensor
    got = training_state_bytes(sum(p.numel() for p in params), "fp32")
    assert got == dict(params=nbytes(params), grads=nbytes(p.grad for p in params), optimizer=nbytes(states),
                       total=16 * sum(p.numel() for p in params))


def test_training_state_bytes_mixed_precision():
    model = tiny(n_layer=2).to(torch.bfloat16)
    master = [p.detach().float().requires_grad_() for p in model.parameters()]  # fp32 master weights
    opt = torch.optim.AdamW(master)
    model(torch.randint(37, (2, 8)), torch.randint(37, (2, 8)))[1].backward()
    for m, p in zip(master, model.parameters()):
        m.grad = p.grad.float()
    opt.step()
    n = sum(p.numel() for p in master)
    moments = [v for s in opt.state.values() for k, v in s.items() if k != "step"]
    got = training_state_bytes(n, "mixed")
    assert got["params"] == nbytes(model.parameters()) and got["grads"] == nbytes(p.grad for p in model.parameters())
    assert got["optimizer"] == nbytes(master) + nbytes(moments) and got["total"] == 16 * n
    with pytest.raises(ValueError, match="mode must be one of"):
        training_state_bytes(n, "fp8")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("attention", ["sdpa", "naive"])
@pytest.mark.parametrize("B,T,C,H", [(2, 16, 32, 4), (3, 7, 24, 3)])
def test_activation_bytes_per_layer_is_exact(B, T, C, H, dtype, attention):
    torch.manual_seed(0)
    block = Block(GPTConfig(n_embd=C, n_head=H, block_size=T)).to(dtype)
    x = torch.randn(B, T, C, dtype=dtype, requires_grad=True)
    with naive_attention(block) if attention == "naive" else contextlib.nullcontext():
        _, saved = measure_saved_activations(lambda: block(x), exclude=block.parameters())
    assert saved.bytes == activation_bytes_per_layer(B, T, C, H, x.element_size(), attention), saved.table()


def test_naive_attention_changes_memory_not_outputs():
    model, idx = tiny(), torch.randint(37, (2, 16))
    fused = model(idx)[0]
    with naive_attention(model):
        naive = model(idx)[0]
    torch.testing.assert_close(naive, fused, atol=1e-5, rtol=1e-5)  # float32: two softmax implementations
    assert "forward" not in vars(model.transformer.h[0].attn)  # the patch is undone


def test_activation_bytes_of_the_whole_model():
    model, idx, tgt = tiny(), torch.randint(37, (2, 16)), torch.randint(37, (2, 16))
    _, saved = measure_saved_activations(lambda: model(idx, tgt), exclude=model.parameters())
    assert saved.bytes == activation_bytes(model.config, batch=2, seq=16)


def test_peak_memory_counts_new_storages_only():
    base = torch.ones(1000)  # allocated before: not counted
    with PeakMemory() as mem:
        a = torch.ones(1000)  # +4000
        b = a + 1  # +4000 -> 8000
        del a  # -4000
        b.view(10, 100).add_(1)  # a view, then in place: +0
        base.mul_(2)  # in place on old memory: +0
        c = torch.ones(500)  # +2000 -> 6000
        d = torch.tensor([1.0, 2.0])  # from Python data (what optimizers do for their step counters): +8
    assert (mem.peak, mem.current) == (8000, 6008)
    del b, c, d


# ---------------------------------------------------------------------------------------------
# dynamic loss scaling


def scripted_coefficients(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    cs = [torch.randn(5, generator=g) for _ in range(n)]
    cs[3][1] = cs[4][1] = float("inf")
    cs[7][0] = float("nan")
    for i in range(15, 22):
        cs[i][2] = 1e35  # finite, but inf in fp32 once multiplied by a scale >= 2^12
    return cs


def run_scaler(scaler, cs):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = torch.optim.AdamW([w], lr=1e-2)
    scales, skipped = [], []
    for c in cs:
        opt.zero_grad()
        scaler.scale((w * c).sum()).backward()
        before = w.detach().clone()
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        skipped.append(torch.equal(before, w.detach()))
    return scales, skipped, w.detach()


@pytest.mark.parametrize("growth_interval", [2, 3, 2000])
def test_loss_scaler_matches_grad_scaler(growth_interval):
    cs = scripted_coefficients()
    ref = run_scaler(torch.amp.GradScaler("cpu", growth_interval=growth_interval), cs)
    ours = run_scaler(DynamicLossScaler(growth_interval=growth_interval), cs)
    assert ours[0] == ref[0] and ours[1] == ref[1]
    assert torch.equal(ours[2], ref[2])  # power-of-two scales: unscaling is exact, so are the parameters
    assert sum(ours[1]) >= 5  # the script does exercise skipping


# ---------------------------------------------------------------------------------------------
# gradient checkpointing


def grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_checkpointed_gradients_equal_plain(dropout):
    model, idx, tgt = tiny(dropout=dropout), torch.randint(37, (2, 16)), torch.randint(37, (2, 16))
    torch.manual_seed(1)
    model(idx, tgt)[1].backward()
    plain = grads(model)
    for run in (lambda: gpt_forward(model, idx, tgt, checkpoint_blocks={0, 2}), lambda: gpt_forward_segments(model, idx, tgt)):
        model.zero_grad()
        torch.manual_seed(1)  # same dropout masks; checkpoint restores the RNG state for the recomputation
        run()[1].backward()
        for a, b in zip(grads(model), plain):
            assert torch.equal(a, b)  # the recomputation repeats the same kernels on the same inputs: bit for bit


def test_checkpointed_blocks_keep_only_their_input():
    model, idx, tgt = tiny(), torch.randint(37, (2, 16)), torch.randint(37, (2, 16))
    for k in range(5):
        _, saved = measure_saved_activations(lambda: gpt_forward(model, idx, tgt, range(k)), exclude=model.parameters())
        assert saved.bytes == activation_bytes(model.config, 2, 16, checkpointed=k)


@pytest.mark.parametrize("n,s", [(4, 2), (7, 3), (12, 3), (5, 5), (6, 1)])
def test_segment_bounds_match_checkpoint_sequential(n, s):
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, i):
            super().__init__()
            self.i = i

        def forward(self, x):
            calls.append(self.i)
            return torch.sin(x)  # saves its input, so the backward needs the recomputation

    x = torch.ones(3, requires_grad=True)
    checkpoint_sequential(torch.nn.Sequential(*[Recorder(i) for i in range(n)]), s, x, use_reentrant=False).sum().backward()
    recomputed = calls[n:]  # after the forward: checkpointed segments run again, last segment first
    expected = [i for start, end, ckpt in reversed(segment_bounds(n, s)) if ckpt for i in range(start, end)]
    assert recomputed == expected
    assert sqrt_segments(n) == round(n**0.5)


def test_sqrt_segments_save_what_checkpoint_sequential_saves():
    model, idx = tiny(n_layer=6), torch.randint(37, (2, 16))
    for s in (1, 2, 3, 6):
        _, ours = measure_saved_activations(lambda: gpt_forward_segments(model, idx, n_segments=s), exclude=model.parameters())
        _, ref = measure_saved_activations(
            lambda: head(model, checkpoint_sequential(model.transformer.h, s, embed(model, idx), use_reentrant=False)),
            exclude=model.parameters())
        assert ours.bytes == ref.bytes
