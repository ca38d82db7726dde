"""llmlab.models.gpt: the GPT's shapes and loss, weight tying, generation, and its GPT-2 twin in transformers."""

import math

import pytest
import torch

from llmlab.models.gpt import GPT, GPTConfig, from_hf_gpt2, to_hf_gpt2

CFG = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=4, n_embd=32)


@pytest.fixture(autouse=True)
def _quiet_transformers():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()  # a 50-token vocab has no room for GPT-2's bos/eos id: it says so


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(CFG).eval()


@pytest.fixture
def jiggled(model):
    """The model with noise on every weight: no zero bias or unit LayerNorm left for a mistake to hide behind."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture
def idx():
    return torch.randint(0, CFG.vocab_size, (3, CFG.block_size), generator=torch.Generator().manual_seed(2))


def test_forward_shapes(model, idx):
    logits, loss = model(idx)
    assert logits.shape == (3, CFG.block_size, CFG.vocab_size)
    assert loss is None
    _, loss = model(idx, idx)
    assert loss.shape == ()
    with pytest.raises(ValueError):
        model(torch.zeros(1, CFG.block_size + 1, dtype=torch.long))


def test_loss_at_init_is_log_vocab(model, idx):
    # std-0.02 weights give near-uniform predictions: cross-entropy ~ ln(V) = 3.91, within a few percent
    _, loss = model(idx, torch.roll(idx, -1, dims=1))
    assert loss.item() == pytest.approx(math.log(CFG.vocab_size), rel=0.03)


def test_weight_tying(model, idx):
    assert model.lm_head.weight is model.transformer.wte.weight
    n_tensors = sum(p.numel() for p in model.parameters())
    assert model.num_params(non_embedding=False) == n_tensors  # the shared matrix counted once
    model.train()
    model(idx, idx)[1].backward()
    assert model.transformer.wte.weight.grad is model.lm_head.weight.grad  # one tensor, one gradient


def test_generate_length_and_cropping(model):
    prompt = torch.zeros(2, 3, dtype=torch.long)
    out = model.generate(prompt, 2 * CFG.block_size, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3 + 2 * CFG.block_size)  # longer than block_size: the context was cropped
    assert torch.equal(out[:, :3], prompt)
    assert int(out.max()) < CFG.vocab_size


def test_top_k_1_is_greedy(jiggled):
    prompt = torch.tensor([[1, 2, 3]])
    greedy = jiggled.generate(prompt, 12, temperature=0)  # 15 tokens: within block_size
    top1 = jiggled.generate(prompt, 12, temperature=0.8, top_k=1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(greedy, top1)
    # and greedy means: every new token is the argmax of the logits given everything before it
    logits = jiggled(greedy[:, :-1])[0]
    assert torch.equal(logits[0, 2:].argmax(-1), greedy[0, 3:])


def test_hf_gpt2_logits_match(jiggled, idx):
    hf = to_hf_gpt2(jiggled)
    assert type(hf).__name__ == "GPT2LMHeadModel"
    with torch.no_grad():
        ours, theirs = jiggled(idx)[0], hf(idx).logits
    # float32: the same sums in a different order (Conv1D addmm vs Linear) differ by ~1e-7 relative;
    # a real mistake (exact instead of tanh GELU, another LayerNorm eps) is >= 3e-5
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)
    # HF's own generate loop (KV cache) picks the same tokens; explicit mask: id 0 is not padding here
    prompt = idx[:, :4]
    hf_gen = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=CFG.block_size - 4,
                         do_sample=False)
    assert torch.equal(hf_gen, jiggled.generate(prompt, CFG.block_size - 4, temperature=0))


def test_hf_gpt2_config_matches_parameter_count(model):
    hf = to_hf_gpt2(model)
    assert hf.config.n_positions == CFG.block_size
    assert hf.config.activation_function == "gelu_new"  # GPT-2's tanh GELU, as nn.GELU(approximate="tanh")
    assert hf.lm_head.weight is hf.transformer.wte.weight
    assert sum(p.numel() for p in hf.parameters()) == sum(p.numel() for p in model.parameters())


def test_hf_round_trip_is_exact(jiggled, idx):
    back = from_hf_gpt2(to_hf_gpt2(jiggled))
    assert back.config == GPTConfig(**{**vars(CFG), "dropout": 0.0})
    assert back.lm_head.weight is back.transformer.wte.weight
    for (name, a), (_, b) in zip(jiggled.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name  # only copies and transposes: bit-exact
    torch.testing.assert_close(back.eval()(idx)[0], jiggled(idx)[0], atol=0, rtol=0)


def test_hf_gpt2_rejects_bias_free_model():
    with pytest.raises(ValueError):
        to_hf_gpt2(GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8, bias=False)))


# ---------------------------------------------------------------------------------------------
# the extension points later weeks use (KV cache, padding, inputs_embeds, hidden states, kernels)


def test_kv_cache_gives_the_same_logits(jiggled, idx):
    full = jiggled(idx).logits  # (3, 16, V)
    first = jiggled(idx[:, :10], use_cache=True)
    rest = jiggled(idx[:, 10:], past_key_values=first.past_key_values, use_cache=True)
    assert len(rest.past_key_values) == CFG.n_layer and rest.past_key_values[0][0].shape == (3, 4, 16, 8)
    # the same arithmetic on fewer queries: float32 round-off only
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), full, atol=1e-5, rtol=1e-5)


def test_left_padding_is_ignored(jiggled, idx):
    # row 0 padded on the left with 4 junk tokens: its last logits equal those of the unpadded row
    padded = torch.cat([torch.full((1, 4), 7), idx[:1, :12]], dim=1)
    mask = torch.tensor([[0] * 4 + [1] * 12])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)  # positions count real tokens only, as transformers does
    out = jiggled(padded, attention_mask=mask, position_ids=pos).logits[:, 4:]
    torch.testing.assert_close(out, jiggled(idx[:1, :12]).logits, atol=1e-5, rtol=1e-5)


def test_inputs_embeds_and_hidden_states(jiggled, idx):
    out = jiggled(inputs_embeds=jiggled.transformer.wte(idx), output_hidden_states=True)
    assert torch.equal(out.logits, jiggled(idx).logits)
    assert len(out.hidden_states) == CFG.n_layer + 1 and out.hidden_states[0].shape == (3, 16, 32)
    assert torch.equal(jiggled.head(out.hidden_states[-1])[0], out.logits)  # the last one is after ln_f


def test_eager_and_sdpa_kernels_agree(jiggled, idx):
    from llmlab.models.gpt import attention_implementation

    with attention_implementation(jiggled, "eager"):
        assert all(m.attn_implementation == "eager" for m in jiggled.modules() if hasattr(m, "attn_implementation"))
        eager = jiggled(idx).logits
    torch.testing.assert_close(eager, jiggled(idx).logits, atol=1e-5, rtol=1e-5)  # two summation orders
    assert jiggled.transformer.h[0].attn.attn_implementation == "sdpa"  # restored
