"""llmlab.systems.profiling: FLOPs per token against PyTorch's FLOP counter, the op table against key_averages."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from llmlab.models.gpt import GPT, GPTConfig
from llmlab.systems.profiling import CATEGORIES, flops_per_token, mfu, op_category, op_table, profile_steps, time_by_category


@pytest.mark.parametrize("cfg,T", [(GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32), 32),
                                   (GPTConfig(vocab_size=101, block_size=48, n_layer=3, n_head=4, n_embd=48, bias=False), 20)])
def test_flops_per_token_matches_flop_counter(cfg, T):
    model, B = GPT(cfg), 3
    x = torch.randint(0, cfg.vocab_size, (B, T))
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc:  # MATH: attention as countable bmm's
        model(x, x)[1].backward()
    assert flops_per_token(cfg, T) == fc.get_total_flops() / (B * T)
    assert flops_per_token(cfg, T, backward=False) * 3 == flops_per_token(cfg, T)
    assert mfu(1000.0, flops_per_token(cfg, T), 1e12) == pytest.approx(1000.0 * flops_per_token(cfg, T) / 1e12)


def test_op_table_and_categories(capfd):
    model = GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16))
    x = torch.randint(0, 65, (2, 16))
    prof = profile_steps(lambda: model(x, x)[1].backward(), steps=1, warmup=1)
    rows = op_table(prof, k=5)
    ref = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:5]
    assert [r["self_us"] for r in rows] == [e.self_cpu_time_total for e in ref]
    by_cat = time_by_category(prof)
    assert set(by_cat) == set(CATEGORIES) and by_cat["matmul"] > 0
    assert sum(by_cat.values()) == pytest.approx(sum(e.self_cpu_time_total for e in prof.key_averages()))
    assert [op_category(n) for n in ("aten::mm", "aten::t", "aten::native_layer_norm", "forward", "aten::gelu")] == \
        ["matmul", "memory/copy", "normalization", "framework", "elementwise"]
    assert capfd.readouterr().err == ""  # Kineto's C++ log lines were silenced
