"""llmlab.finetune.lora against PEFT's LoRA (the independent reference), on tiny seeded models."""

import copy
import math
import warnings

import pytest
import torch
import torch.nn as nn

from llmlab.finetune import (LLAMA3_8B, LLAMA_TARGETS, LoRALinear, count_trainable, inject_lora, linear_shapes,
                             llama_linear_shapes, llama_param_count, lora_modules, lora_param_count, lora_state_dict,
                             merge_and_unload, merge_lora, unmerge_lora)

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers' renamed checkpointing methods


def tiny_llama(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=50, **kw)
    return transformers.LlamaForCausalLM(cfg).eval()


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=16, vocab_size=40)
    return transformers.GPT2LMHeadModel(cfg).eval()


def peft_model(model, targets, r=4, alpha=8, dropout=0.0, **kw):
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, **kw)
    return peft.get_peft_model(copy.deepcopy(model), cfg)


def copy_from_peft(mine, theirs, seed=1):
    """Random A and B in PEFT's layers (B = 0 would hide every mistake), copied into ours."""
    g = torch.Generator().manual_seed(seed)
    for name, m in lora_modules(mine).items():
        ref = theirs.base_model.model.get_submodule(name)
        with torch.no_grad():
            for ours, their in ((m.lora_A, ref.lora_A["default"]), (m.lora_B, ref.lora_B["default"])):
                their.weight.copy_(torch.randn(their.weight.shape, generator=g) * 0.2)
                ours.weight.copy_(their.weight)


def test_starts_exactly_at_the_base_layer():
    torch.manual_seed(0)
    base = nn.Linear(24, 10)
    x = torch.randn(3, 5, 24)
    lora = LoRALinear(copy.deepcopy(base), r=4, alpha=8)
    assert torch.equal(lora(x), base(x))  # B = 0: exactly, not approximately
    bound = 1 / math.sqrt(24)  # kaiming_uniform_(a=sqrt(5)) on (r, in): U(-1/sqrt(in), 1/sqrt(in))
    assert lora.lora_A.weight.abs().max() <= bound and lora.lora_A.weight.std() > bound / 4
    assert lora.scaling == 2.0 and not any(p.requires_grad for p in lora.base_layer.parameters())


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_layer_matches_peft_outputs_and_gradients(dropout):
    model = tiny_llama()
    ref = peft_model(model, ["q_proj"], r=4, alpha=8, dropout=dropout).train()
    inject_lora(model, ["q_proj"], r=4, alpha=8, dropout=dropout)
    copy_from_peft(model, ref)
    name = "model.layers.0.self_attn.q_proj"
    ours, theirs = model.get_submodule(name).train(), ref.base_model.model.get_submodule(name)
    x = torch.randn(2, 7, 32)
    torch.manual_seed(5)  # the same dropout mask: both draw it once, on x
    y = ours(x)
    torch.manual_seed(5)
    y_ref = theirs(x)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-5)  # float32, two small matmuls
    y.square().sum().backward()
    y_ref.square().sum().backward()
    torch.testing.assert_close(ours.lora_A.weight.grad, theirs.lora_A["default"].weight.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.lora_B.weight.grad, theirs.lora_B["default"].weight.grad, atol=1e-5, rtol=1e-5)
    assert ours.base_layer.weight.grad is None


def test_dropout_only_on_the_lora_path():
    lora = LoRALinear(nn.Linear(16, 8), r=2, alpha=2, dropout=0.9).train()
    x = torch.randn(4, 16)
    assert torch.equal(lora(x), lora.base_layer(x))  # B = 0: dropout never touched the base path
    nn.init.normal_(lora.lora_B.weight)
    assert not torch.allclose(lora(x), lora.eval()(x))  # with B != 0, training mode drops LoRA inputs


def test_gpt2_conv1d_matches_peft_fan_in_fan_out():
    model = tiny_gpt2()
    targets = ["c_attn", "c_proj", "c_fc"]
    ref = peft_model(model, targets, fan_in_fan_out=True)
    inject_lora(model, targets, r=4, alpha=8)
    copy_from_peft(model, ref)
    ids = torch.randint(40, (2, 9))
    torch.testing.assert_close(model(ids).logits, ref(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    merge_lora(model)  # Conv1D stores W as (in, out): the update must be transposed
    torch.testing.assert_close(model(ids).logits, ref(input_ids=ids).logits, atol=1e-5, rtol=1e-5)


def test_merge_then_unmerge_is_exact_up_to_round_off():
    model = tiny_llama()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    inject_lora(model, LLAMA_TARGETS, r=4, alpha=16)
    for m in lora_modules(model).values():
        nn.init.normal_(m.lora_B.weight, std=0.1)
    ids = torch.randint(50, (2, 6))
    before = model(ids).logits
    merge_lora(model)
    torch.testing.assert_close(model(ids).logits, before, atol=1e-5, rtol=1e-5)  # one fused matmul vs two
    unmerge_lora(model)
    for n, p in model.named_parameters():
        if ".base_layer." in n:  # W + dW - dW: float32 round-off of |dW| ~ 0.1, ~1e-8
            torch.testing.assert_close(p, w0[n.replace(".base_layer", "")], atol=1e-6, rtol=0)


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], r"model\.layers\.1\.(self_attn\.o_proj|mlp\.\w+_proj)",
                                     list(LLAMA_TARGETS)])
def test_injection_by_name_and_counts_match_peft(targets):
    model = tiny_llama()
    ref = peft_model(model, targets)
    names = inject_lora(model, targets, r=4, alpha=8)
    assert set(names) == set(ref.targeted_module_names)
    assert count_trainable(model) == ref.get_nb_trainable_parameters()
    shapes = linear_shapes(tiny_llama())
    assert lora_param_count(shapes, 4, targets) == count_trainable(model)[0]


def test_injecting_twice_wraps_only_new_layers():
    model = tiny_llama()
    first = inject_lora(model, ["q_proj"], r=2)
    second = inject_lora(model, r".*_proj.*", r=2)  # also matches q_proj.base_layer, .lora_A: must be skipped
    assert not set(first) & set(second) and len(lora_modules(model)) == 2 * 7
    assert all(not isinstance(m.base_layer, LoRALinear) for m in lora_modules(model).values())


def test_injection_errors_name_the_problem():
    with pytest.raises(ValueError, match="matched no module"):
        inject_lora(tiny_llama(), ["query"])
    with pytest.raises(TypeError, match="Embedding"):
        inject_lora(tiny_llama(), ["embed_tokens"])


def test_whole_model_equals_peft_and_merge_and_unload():
    model = tiny_llama(seed=3)
    ref = peft_model(model, list(LLAMA_TARGETS), r=8, alpha=16)
    inject_lora(model, LLAMA_TARGETS, r=8, alpha=16)
    copy_from_peft(model, ref)
    ids = torch.randint(50, (3, 11))
    torch.testing.assert_close(model(ids).logits, ref(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    assert set(lora_state_dict(model)) == {k.replace(".default", "") for k, _ in ref.named_parameters() if "lora_" in k}
    plain, ref_plain = merge_and_unload(model), ref.merge_and_unload()
    assert not lora_modules(plain)
    torch.testing.assert_close(plain(ids).logits, ref_plain(ids).logits, atol=1e-5, rtol=1e-5)


def test_llama3_8b_rank_math_from_shapes_equals_peft_on_a_meta_model():
    cfg = transformers.LlamaConfig(**LLAMA3_8B)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.LlamaForCausalLM(cfg)  # shapes only: no memory, no weights
        ref = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=list(LLAMA_TARGETS)))
    trainable, total = ref.get_nb_trainable_parameters()
    assert llama_param_count(**LLAMA3_8B) == total - trainable == 8_030_261_248
    assert lora_param_count(llama_linear_shapes(**LLAMA3_8B), 8, LLAMA_TARGETS) == trainable == 20_971_520
