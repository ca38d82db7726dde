"""QLoRA: NF4 from scratch vs bitsandbytes, the memory budget, and the recipe CLI on tiny Llama/Mistral models."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmlab.finetune import budget as B
from llmlab.finetune import nf4

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # its CPU backend logs a kernels-hub notice on import
torch._dynamo.config.disable = True  # bitsandbytes torch.compiles a CPU helper for odd shapes: slow, not under test
F = pytest.importorskip("bitsandbytes.functional")

ROOT = Path(__file__).resolve().parents[1]
# block edges: exact multiples of 64, one short/over, odd lengths (a padded last nibble), 1 element, 2-D and 3-D
SHAPES = [(64,), (63,), (65,), (1,), (7, 33), (128, 64), (3, 5, 70), (300, 257)]


def _bnb(w, double_quant):
    return F.quantize_4bit(w, blocksize=64, compress_statistics=double_quant, quant_type="nf4")


def test_levels_equal_bitsandbytes_tables():
    # NF4: computed with ndtri in float64 here, tabulated in float32 there: equal to float32 round-off
    torch.testing.assert_close(nf4.nf4_levels(), F.get_4bit_type("nf4", device="cpu"), atol=2e-7, rtol=0)
    assert nf4.nf4_levels()[nf4.NF4_ZERO] == 0 and nf4.nf4_levels()[[0, -1]].tolist() == [-1.0, 1.0]
    assert torch.equal(nf4.dynamic_map(), F.create_dynamic_map())
    assert torch.equal(nf4.fp4_levels(), F.get_4bit_type("fp4", device="cpu").unique())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_nf4_codes_and_values_equal_bitsandbytes(shape, dtype):
    w = (torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 0.02).to(dtype)
    packed, state = _bnb(w, double_quant=False)
    q = nf4.quantize_nf4(w, double_quant=False)
    assert torch.equal(q.packed, packed)  # every 4-bit code, and the nibble order and padding
    assert torch.equal(q.absmax, state.absmax)
    out = nf4.dequantize_nf4(q)
    assert out.dtype == dtype and out.shape == w.shape
    torch.testing.assert_close(out, F.dequantize_4bit(packed, state).reshape(w.shape), atol=0, rtol=1e-6)  # (bnb: 1-D -> (1, n))


@pytest.mark.parametrize("shape", [(64,), (7, 33), (300, 257), (1000, 64)])
def test_double_quant_equals_bitsandbytes(shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 0.02
    packed, state = _bnb(w, double_quant=True)
    q = nf4.quantize_nf4(w, double_quant=True)
    assert torch.equal(q.packed, packed)  # NF4 codes use the exact scales, before they are quantized
    assert torch.equal(q.offset, state.offset) and torch.equal(q.absmax2, state.state2.absmax)
    # bitsandbytes' CPU 8-bit kernel (a binary search) puts ~0.2 % of the scales one code off the nearest one
    diff = (q.absmax.long() - state.absmax.long()).abs()
    # a second-level block whose scales all equal their mean (one 64-block: its scale - offset = 0) divides 0 by 0
    # there: NaN -> code 0; here 0 -> the code of 0.0. Both dequantize to 0 + offset.
    diff[state.state2.absmax.repeat_interleave(256)[: diff.numel()] == 0] = 0
    assert diff.max() <= 1 and (diff > 0).sum() <= 1 + 0.02 * diff.numel()
    state.absmax = q.absmax  # the same stored codes: then dequantization agrees exactly
    torch.testing.assert_close(nf4.dequantize_nf4(q), F.dequantize_4bit(packed, state).reshape(w.shape), atol=0, rtol=1e-6)


def test_nf4_storage_ratio():
    q = nf4.quantize_nf4(torch.randn(4096, 1024))
    assert q.nbytes == 4096 * 1024 // 2 + 4096 * 1024 // 64 + 4 * (4096 * 1024 // 64 // 256) + 4
    assert abs(nf4.nf4_bits_per_param() - 4.127) < 1e-3 and nf4.nf4_bits_per_param(double_quant=False) == 4.5
    assert q.nbytes / (2 * 4096 * 1024) == pytest.approx(0.2579, abs=1e-4)  # vs bf16


def test_budget_param_counts_llama3_8b_and_mistral_7b():
    # the published sizes: 8,030,261,248 (Llama-3-8B) and 7,241,732,096 (Mistral-7B-v0.1) parameters
    assert sum(B.LLAMA3_8B.n_params().values()) == 8_030_261_248
    assert sum(B.MISTRAL_7B.n_params().values()) == 7_241_732_096
    # LoRA r=16 on all 7 linear layers: 32 layers x 16 x (in + out) summed = 41,943,040 (PEFT prints the same)
    lb = B.lora_bytes(B.LLAMA3_8B, r=16)
    assert lb["n_params"] == 32 * 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 2 * (4096 + 14336) + (14336 + 4096))
    assert lb["n_params"] == 41_943_040 and lb["total"] == 16 * lb["n_params"]  # fp32 weight, grad, 2 Adam moments


def test_budget_activations_hand_count():
    s = B.LLAMA3_8B
    per_token = 5 * 4096 + 3 * 1024 + 2 * 4096 + 4 * 14336  # attention + MLP saved tensors (see budget's docstring)
    assert B.block_activation_elements(s) == per_token
    assert B.activation_bytes(s, 2048, 1, checkpointing=False) == 32 * 2048 * per_token * 2
    assert B.activation_bytes(s, 2048, 1) == 32 * 2048 * 4096 * 2 + 2048 * per_token * 2
    assert B.logits_bytes(s, 2048, 2) == 2 * 2048 * 128256 * 10
    assert B.kv_cache_bytes(s, 8192) == 2 * 32 * 1024 * 8192 * 2  # 1 GiB: the GQA saving (4x less than MHA)
    for shape in (B.LLAMA3_8B, B.MISTRAL_7B):  # the recipe's defaults fit a 24 GB card
        assert B.qlora_budget(shape, seq_len=1024)["total"] < 24 * 1e9


def test_weight_bytes_equal_a_measured_4bit_model(tmp_path):
    pytest.importorskip("peft")
    import bitsandbytes as bnb
    import transformers
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    cfg = LlamaConfig(hidden_size=128, intermediate_size=320, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=300, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    bnb_cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=bnb_cfg, device_map="cpu",
                                                 dtype=torch.bfloat16)
    quantized = rest = 0
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            s = m.weight.quant_state
            quantized += sum(t.numel() * t.element_size() for t in
                             (m.weight, s.absmax, s.code, s.offset, s.state2.absmax, s.state2.code))
    rest = sum(p.numel() * p.element_size() for p in model.parameters() if not isinstance(p, bnb.nn.Params4bit))
    want = B.weight_bytes_4bit(B.ModelShape.from_config(cfg), dtype_bytes=2)
    assert (quantized, rest) == (want["nf4"], want["unquantized"])  # byte for byte


@pytest.mark.parametrize("in_features", [32, 96, 352, 128])
def test_linear4bit_on_cpu_after_the_fix(in_features):
    # without llmlab.finetune.bnb_cpu, bitsandbytes 0.50's CPU kernel fails the last check for 32, 96 and 352
    import bitsandbytes as bnb

    from llmlab.finetune.bnb_cpu import fix_cpu_4bit

    torch.manual_seed(in_features)
    lin = torch.nn.Linear(in_features, 48, bias=False)
    q = bnb.nn.Linear4bit(in_features, 48, bias=False, compute_dtype=torch.float32, quant_type="nf4",
                          compress_statistics=True)
    q.weight = bnb.nn.Params4bit(lin.weight.data.clone(), requires_grad=False, quant_type="nf4",
                                 compress_statistics=True).to("cpu")  # quantized on .to()
    holder = fix_cpu_4bit(torch.nn.Sequential(q)).eval()
    x = torch.randn(5, in_features)
    state = q.weight.quant_state
    ref = torch.nn.functional.linear(x, F.dequantize_4bit(q.weight.data, state).reshape(48, in_features))
    with torch.no_grad():
        torch.testing.assert_close(holder(x), ref, atol=1e-5, rtol=1e-5)  # eval, no grad: no repacking either
    # and the dequantized weight is the NF4 of the weight (up to bitsandbytes' rare off-by-one 8-bit scale codes)
    mine = nf4.quantize_nf4(lin.weight.data)
    state.absmax = mine.absmax
    torch.testing.assert_close(F.dequantize_4bit(q.weight.data, state).reshape(48, in_features),
                               nf4.dequantize_nf4(mine), atol=0, rtol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_recipe_cli_trains_an_adapter_that_reloads(arch, tmp_path):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from llmlab.finetune.recipe import make_tiny

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cli = [sys.executable, "-m", "llmlab.finetune.recipe"]
    model_dir, out = tmp_path / arch, tmp_path / "adapter"
    make_tiny(arch, model_dir)  # in-process (the CLI's --make-tiny calls the same function): saves an interpreter start
    r = subprocess.run(cli + ["--model", str(model_dir), "--output", str(out), "--max-steps", "3", "--grad-accum", "2",
                              "--n-per-task", "2", "--seq-len", "128", "--threads", "1", "--lr", "1e-2"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "QLoRA memory budget" in r.stdout.splitlines()[0]  # the budget comes first
    log = json.loads((out / "train_log.json").read_text())
    assert len(log["loss"]) == 3 and all(x == x for x in log["loss"])
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    assert type(base).__name__ == {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}[arch]
    model = peft.PeftModel.from_pretrained(base, out)
    b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert len(b) == 2 * 7 and all(p.abs().sum() > 0 for p in b)  # B starts at 0: trained, saved and reloaded
