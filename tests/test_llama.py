"""llmlab.models.llama: the course Llama against transformers' LlamaForCausalLM, its cache, masks, heads and generate.

Tolerance: both sides run the same float32 operations in the same order, so logits agree to ~1e-7 here; 1e-5 (the
issue's bound) leaves room for another BLAS or attention kernel. The cache compares two computations of the same
numbers in different batch shapes: 1e-5 again.
"""

import math

import pytest
import torch

from llmlab.models.llama import (
    KVCache, LlamaConfig, LlamaForCausalLM, LlamaForScore, LlamaModel, RotaryEmbedding, apply_rotary,
    build_attention_mask, from_hf_llama, sample_next_token, to_hf_llama,
)

TOL = 1e-5
V = 61


def make(seed=0, **kw):
    """A tiny model with noise on every weight, so that no unit RMSNorm weight hides a mistake."""
    cfg = LlamaConfig(**{**dict(vocab_size=V, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64), **kw})
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.fixture(autouse=True)
def _quiet_transformers():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()


def ids(B=3, T=13, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kv_heads,tied,theta", [(4, True, 1e4), (2, False, 5e5), (1, True, 1e4)])
def test_logits_equal_transformers(kv_heads, tied, theta):
    # MHA, GQA and MQA; tied and untied embeddings; Llama 2's and Llama 3's rope_theta
    model = make(num_key_value_heads=kv_heads, tie_word_embeddings=tied, rope_theta=theta)
    hf = to_hf_llama(model)
    assert list(hf.state_dict()) == list(model.state_dict())  # the same names, in the same order
    assert (hf.lm_head.weight is hf.model.embed_tokens.weight) == tied
    x = ids()
    with torch.no_grad():
        assert (model(x).logits - hf(x).logits).abs().max() < TOL
        back = from_hf_llama(hf)
        assert (back(x).logits - model(x).logits).abs().max() < TOL
    assert back.config == model.config


def test_save_pretrained_reloads_with_auto_class(tmp_path):
    from transformers import AutoModelForCausalLM

    model = make()
    to_hf_llama(model).save_pretrained(tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(hf).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        assert (hf(ids()).logits - model(ids()).logits).abs().max() < TOL


def test_padding_left_and_right_match_transformers():
    model = make()
    hf = to_hf_llama(model)
    x = ids()
    mask = torch.ones_like(x)
    mask[0, :4] = 0  # left padding
    mask[1, -5:] = 0  # right padding
    with torch.no_grad():
        ours, theirs = model(x, attention_mask=mask).logits, hf(x, attention_mask=mask).logits
    assert torch.isfinite(ours).all()  # fully masked (left-pad) query rows must not produce NaN
    assert ((ours - theirs).abs() * mask[..., None]).max() < TOL  # padding positions are meaningless: not compared


def test_right_padding_does_not_change_real_tokens():
    model = make()
    x = ids(B=1, T=10)
    padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 3)], dim=1).long()
    with torch.no_grad():
        assert (model(padded, attention_mask=mask).logits[:, :10] - model(x).logits).abs().max() < TOL


def test_left_padding_with_position_ids_equals_unpadded():
    model = make()
    x = ids(B=1, T=9)
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), x], dim=1)
    mask = (torch.arange(13) >= 4).long()[None]
    pos = (mask.cumsum(-1) - 1).clamp_min(0)  # the first real token is position 0
    with torch.no_grad():
        out = model(padded, attention_mask=mask, position_ids=pos).logits[:, 4:]
        assert (out - model(x).logits).abs().max() < TOL


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_kv_cache_incremental_equals_full_forward(impl):
    model = make(attn_implementation=impl)
    x = ids(T=12)
    with torch.no_grad():
        full = model(x).logits
        cache = KVCache()
        steps = [model(x[:, :5], past_key_values=cache, use_cache=True).logits]  # prefill 5, then 1 at a time
        steps += [model(x[:, t:t + 1], past_key_values=cache).logits for t in range(5, 12)]
    assert cache.get_seq_length() == 12 and len(cache) == 2
    assert cache.layers[0][0].shape == (3, 2, 12, 12)  # (B, K, S, D): 2 K/V heads are cached, not 4
    assert (torch.cat(steps, dim=1) - full).abs().max() < TOL


def test_legacy_tuple_cache_and_crop():
    model = make()
    x = ids(T=10)
    with torch.no_grad():
        full = model(x).logits
        past = model(x[:, :6], use_cache=True).past_key_values.to_legacy()  # tuple of (k, v) per layer
        out = model(x[:, 6:], past_key_values=past)
        assert isinstance(out.past_key_values, tuple)  # tuples in, tuples out (as transformers' legacy format)
        assert (out.logits - full[:, 6:]).abs().max() < TOL
        cache = KVCache.from_legacy(out.past_key_values)
        cache.crop(7)  # roll back to 7 positions, then continue from token 7
        assert (model(x[:, 7:], past_key_values=cache).logits - full[:, 7:]).abs().max() < TOL


def test_cache_with_left_padding_matches_full_forward():
    model = make()
    x = ids(B=2, T=10)
    mask = torch.ones_like(x)
    mask[0, :3] = 0
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        full = model(x, attention_mask=mask, position_ids=pos).logits
        cache = KVCache()
        a = model(x[:, :6], attention_mask=mask[:, :6], position_ids=pos[:, :6], past_key_values=cache).logits
        b = model(x[:, 6:], attention_mask=mask, position_ids=pos[:, 6:], past_key_values=cache).logits
    assert ((torch.cat([a, b], 1) - full).abs() * mask[..., None]).max() < TOL


def test_causal_mask_is_bottom_right_aligned():
    # 2 new queries after 3 cached keys: query 0 is position 3 (sees keys 0-3), query 1 is position 4 (sees 0-4)
    m = build_attention_mask(torch.tensor([[0, 1, 1, 1, 1]]), T=2, S=5)
    assert m[0, 0].tolist() == [[False, True, True, True, False], [False, True, True, True, True]]
    assert build_attention_mask(None, 2, 5) is None  # no padding: the attention uses its own causal path


def test_eager_equals_sdpa_and_returns_attention_probabilities():
    model = make()
    hf = to_hf_llama(model)
    hf.config._attn_implementation = "eager"
    x = ids()
    with torch.no_grad():
        sdpa = model(x).logits
        out = model(x, output_attentions=True)  # switches this call to the eager path
        theirs = hf(x, output_attentions=True)
    assert (out.logits - sdpa).abs().max() < TOL
    a = out.attentions[1]
    assert a.shape == (3, 4, 13, 13)
    assert torch.allclose(a.sum(-1), torch.ones(3, 4, 13), atol=1e-6)  # rows are distributions
    assert a.triu(diagonal=1).abs().max() == 0  # causal: nothing above the diagonal
    assert (a - theirs.attentions[1]).abs().max() < 1e-6  # probabilities in [0, 1]: absolute float32 round-off


def test_inputs_embeds_and_hidden_states():
    model = make()
    hf = to_hf_llama(model)
    x = ids()
    with torch.no_grad():
        out = model(inputs_embeds=model.model.embed_tokens(x), output_hidden_states=True)
        theirs = hf(x, output_hidden_states=True)
    assert (out.logits - model(x).logits).abs().max() < TOL
    assert len(out.hidden_states) == 3  # embeddings + one per layer (the last after the final norm)
    for ours, hf_h in zip(out.hidden_states, theirs.hidden_states):
        assert (ours - hf_h).abs().max() < TOL
    with pytest.raises(ValueError, match="exactly one"):
        model(x, inputs_embeds=model.model.embed_tokens(x))


def test_rope_scores_depend_on_relative_position_only():
    rope = RotaryEmbedding(16)
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)

    def score(i, j):
        cq, sq = rope(torch.tensor([[i]]))
        ck, sk = rope(torch.tensor([[j]]))
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum().item()

    assert score(7, 3) == pytest.approx(score(24, 20), abs=1e-5)  # a rotation by 4 positions either way
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


def test_labels_loss_shifts_and_ignores_minus_100():
    model = make()
    x = ids()
    out = model(x, labels=x)
    ref = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V), x[:, 1:].reshape(-1))
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert out.loss.item() == pytest.approx(math.log(V), rel=0.2)  # near-uniform at init
    masked = x.clone()
    masked[:, :6] = -100  # a "prompt" that is not scored
    ref = torch.nn.functional.cross_entropy(out.logits[:, 5:-1].reshape(-1, V), x[:, 6:].reshape(-1))
    assert model(x, labels=masked).loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert to_hf_llama(model)(x, labels=masked).loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_greedy_generate_equals_transformers():
    model = make()
    hf = to_hf_llama(model)
    prompts = ids(B=2, T=6)
    mask = torch.ones_like(prompts)
    mask[0, :2] = 0  # left padding, as generation wants it
    ours = model.generate(prompts, max_new_tokens=12, attention_mask=mask)
    theirs = hf.generate(prompts, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours, model.generate(prompts, 12, attention_mask=mask, use_cache=False))
    assert torch.equal(ours[0, 2:], model.generate(prompts[:1, 2:], 12)[0])  # padding changed nothing


def test_generate_stops_on_eos_and_pads_finished_rows():
    model = make()
    prompts = ids(B=2, T=5)
    free = model.generate(prompts, max_new_tokens=10)
    eos = int(free[0, 7])  # the token row 0 writes third: make it the end-of-sequence token
    out = model.generate(prompts, max_new_tokens=10, eos_token_id=[eos, V + 5], pad_token_id=V - 1)
    first = (free[0, 5:] == eos).nonzero()[0].item()
    assert out[0, 5 + first].item() == eos
    assert (out[0, 6 + first:] == V - 1).all()  # padding after the stop
    if (free[1, 5:] != eos).all():  # row 1 never wrote eos: it ran to the end, unchanged
        assert torch.equal(out[1], free[1])


def test_sampling_is_seeded_and_respects_top_k_and_top_p():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]]).repeat(2000, 1)
    g = lambda: torch.Generator().manual_seed(0)
    assert torch.equal(sample_next_token(logits, 1.0, generator=g()), sample_next_token(logits, 1.0, generator=g()))
    assert set(sample_next_token(logits, 1.0, top_k=2, generator=g()).tolist()) == {0, 1}
    # probabilities 0.64, 0.23, 0.09, ...: top_p 0.8 keeps the first two (0.64 < 0.8 <= 0.87), top_p 0.5 only one
    assert set(sample_next_token(logits, 1.0, top_p=0.8, generator=g()).tolist()) == {0, 1}
    assert set(sample_next_token(logits, 1.0, top_p=0.5, generator=g()).tolist()) == {0}
    assert sample_next_token(logits[:1], 0.0).item() == 0  # temperature 0: greedy


def test_score_head_matches_transformers_sequence_classification():
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, pad_token_id=0)
    model = LlamaForScore(cfg).eval()
    hcfg = cfg.to_hf()
    hcfg.num_labels = 1
    hf = LlamaForSequenceClassification(hcfg).eval()
    hf.load_state_dict(model.state_dict(), strict=True)  # model.* + score.weight: the same names
    x = ids(B=3, T=9) % (V - 1) + 1
    x[1, 5:] = 0  # right padding: the score is read at the last real token
    mask = (x != 0).long()
    with torch.no_grad():
        out = model(x, attention_mask=mask)
        assert out.logits.shape == (3, 9, 1) and out.scores.shape == (3, 1)  # per token (value) and per sequence
        assert (out.scores - hf(x, attention_mask=mask).logits).abs().max() < TOL
        assert (out.scores[1] - out.logits[1, 4]).abs().max() == 0


def test_base_model_returns_hidden_states_and_config_checks():
    model = LlamaModel(LlamaConfig(vocab_size=V, hidden_size=32, num_attention_heads=4, num_key_value_heads=1))
    assert model(ids()).last_hidden_state.shape == (3, 13, 32)
    with pytest.raises(ValueError, match="multiple"):
        LlamaConfig(num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="attn_implementation"):
        LlamaConfig(attn_implementation="flash")
    assert LlamaConfig.from_hf(LlamaConfig(rope_theta=5e5).to_hf()).rope_theta == 5e5


def test_peft_lora_targets_are_llama_3_names():
    peft = pytest.importorskip("peft")
    model = make()
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # Llama-3-8B's
    x = ids()
    with torch.no_grad():
        before = model(x).logits
    lora = peft.inject_adapter_in_model(peft.LoraConfig(r=4, target_modules=targets), model)
    wrapped = {n.rsplit(".", 1)[-1] for n, m in lora.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == set(targets)
    with torch.no_grad():
        assert (lora(x).logits - before).abs().max() == 0  # B starts at zero: LoRA changes nothing yet
