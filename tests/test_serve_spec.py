"""Speculative decoding in the batched engine and the server, OpenAI's presence/frequency penalties, and
sliding-window attention (Mistral) on the paged cache."""

import httpx
import openai
import pytest
import torch
import transformers as tf

from llmlab.serve import LLMEngine, SamplingParams
from llmlab.serve.sampler import apply_presence_frequency, process
from llmlab.serve.server import build_app, running
from llmlab.serve.tiny import ARCHS, tiny_model, tiny_model_dir

tf.logging.set_verbosity_error()
V = 97
GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)


def prompts(seed=1, lengths=(3, 4, 8, 9, 1, 17)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(6, V, (n,), generator=g).tolist() for n in lengths]


def hf_greedy(model, ps, n):
    return [model.generate(torch.tensor([p]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                           pad_token_id=1)[0, len(p):].tolist() for p in ps]


# -- speculative decoding in the engine -----------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_speculative_engine_greedy_equals_plain_greedy(arch):
    model, ps = tiny_model(arch, V), prompts()
    ref = hf_greedy(model, ps, 12)
    poor = tiny_model(arch, V, seed=1, num_hidden_layers=1)        # a different random model: proposals rejected
    # a perfect draft (the target itself), a poor one; a roomy cache, and one small enough to preempt and chunk
    for draft, blocks, budget in ((model, 64, 512), (poor, 64, 512), (model, 12, 8), (poor, 12, 8)):
        eng = LLMEngine(model, None, num_blocks=blocks, block_size=4, max_num_batched_tokens=budget,
                        draft_model=draft, num_speculative_tokens=3)
        got = [o.token_ids for o in eng.generate(ps, GREEDY)]
        assert got == ref, f"{arch}, {blocks} blocks: speculative engine != transformers.generate"
        assert eng.block_manager.num_free == blocks, "KV blocks leaked"
        if draft is model:       # p == q: every proposal accepted, up to 4 tokens per step
            assert eng.spec.stats.acceptance_rate == 1.0
            if blocks == 64:
                assert eng.num_steps == 4, "1 prefill step + 3 rounds of 4 tokens for 12 tokens"


def test_speculative_engine_stops_inside_a_round():
    model = tiny_model("llama", V)
    p = prompts()[2]
    ref = hf_greedy(model, [p], 12)[0]
    stop_tok = ref[5]                                     # a stop token in the middle of an accepted run
    first = ref.index(stop_tok)
    eng = LLMEngine(model, None, num_blocks=32, block_size=4, draft_model=model, num_speculative_tokens=4)
    out = eng.generate([p], SamplingParams(max_tokens=12, temperature=0, ignore_eos=True,
                                           stop_token_ids=(stop_tok,)))[0]
    assert out.token_ids == ref[:first + 1] and out.finish_reason == "stop"
    out = eng.generate([p], SamplingParams(max_tokens=7, temperature=0, ignore_eos=True))[0]
    assert out.token_ids == ref[:7] and out.finish_reason == "length", "max_tokens is exact, mid-round too"
    assert eng.block_manager.num_free == 32


def test_speculative_engine_samples_from_the_target():
    """The 2nd generated token (the first of a speculative round: the 1st comes from the prefill), over many seeds, must follow the target's marginal, not the draft's (V = 8:
    the marginal sum_a p(a) p(b | a) is computed exactly)."""
    target, draft = tiny_model("llama", 8, seed=0), tiny_model("llama", 8, seed=3, num_hidden_layers=1)
    prompt = [3, 5]
    with torch.no_grad():
        p1 = target(torch.tensor([prompt])).logits[0, -1].softmax(-1)
        p2 = torch.stack([target(torch.tensor([prompt + [a]])).logits[0, -1].softmax(-1) for a in range(8)])
    want = p1 @ p2
    N = 1200
    eng = LLMEngine(target, None, num_blocks=256, block_size=4, draft_model=draft, num_speculative_tokens=2)
    outs = eng.generate([prompt] * N, [SamplingParams(max_tokens=3, temperature=1.0, seed=s, ignore_eos=True)
                                       for s in range(N)])
    counts = torch.bincount(torch.tensor([o.token_ids[1] for o in outs]), minlength=8).float()
    assert eng.spec.stats.proposed > 0 and 0 < eng.spec.stats.acceptance_rate < 1
    # 4 standard deviations of a proportion from N draws: at most 4 * sqrt(0.25 / 1200) = 0.058
    torch.testing.assert_close(counts / N, want, atol=0.058, rtol=0)


# -- presence / frequency penalties ---------------------------------------------------------------------------
def test_presence_and_frequency_penalties_follow_openai():
    logits, out = torch.randn(10, generator=torch.Generator().manual_seed(0)), [2, 2, 2, 7]
    counts = torch.zeros(10)
    counts[2], counts[7] = 3, 1
    want = logits - 0.5 * (counts > 0).float() - 0.25 * counts        # OpenAI's formula, written out
    torch.testing.assert_close(apply_presence_frequency(logits, out, 0.5, 0.25), want)
    got = process(logits, SamplingParams(temperature=0, presence_penalty=0.5, frequency_penalty=0.25),
                  token_ids=[9, 9] + out, output_ids=out)       # the prompt's 9s are not penalized
    torch.testing.assert_close(got, want)
    assert torch.equal(apply_presence_frequency(logits, [], 2.0, 2.0), logits)


def test_frequency_penalty_stops_greedy_repetition():
    model = tiny_model("llama", V)
    p = prompts()[3]
    plain = LLMEngine(model, None, num_blocks=64, block_size=4).generate([p], GREEDY)[0].token_ids
    pen = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True, presence_penalty=2.0, frequency_penalty=2.0)
    got = LLMEngine(model, None, num_blocks=64, block_size=4).generate([p], pen)[0].token_ids
    # the reference: greedy decoding with the penalty applied by hand, one full forward pass per token
    ids, ref = list(p), []
    with torch.no_grad():
        for _ in range(12):
            logits = model(torch.tensor([ids])).logits[0, -1]
            ref.append(int(apply_presence_frequency(logits, ref, 2.0, 2.0).argmax()))
            ids.append(ref[-1])
    assert got == ref and got != plain


def test_penalties_equal_in_the_engine_and_the_hf_backend():
    from llmlab.serve.hf_backend import HFGenerateEngine
    from llmlab.serve.tiny import tiny_tokenizer

    model, p = tiny_model("qwen2", 320), [10, 20, 30, 40, 50]
    params = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True, presence_penalty=1.5, frequency_penalty=0.7)
    ours = LLMEngine(model, None, num_blocks=32, block_size=4).generate([p], params)[0].token_ids
    hf = HFGenerateEngine(model, tiny_tokenizer())
    hf.add_request(p, params)
    assert hf.step()[0].new_token_ids == ours


# -- sliding-window attention (Mistral) -----------------------------------------------------------------------
# Mistral: every layer windowed; Qwen2: a windowed layer after a full one (one mask per layer type)
@pytest.mark.parametrize("arch,layer_types", [("mistral", None), ("qwen2", ["full_attention", "sliding_attention"])])
def test_sliding_window_equals_transformers(arch, layer_types):
    extra = {"layer_types": layer_types} if layer_types else {}
    model = tiny_model(arch, V, sliding_window=5, **extra)     # a window far smaller than the sequences
    ps = prompts(4, (3, 9, 17))
    ref = hf_greedy(model, ps, 12)
    full = hf_greedy(tiny_model(arch, V), ps, 12)
    assert ref != full, "the window must change the output, or this test proves nothing"
    for blocks, budget in ((64, 512), (14, 8)):
        eng = LLMEngine(model, None, num_blocks=blocks, block_size=4, max_num_batched_tokens=budget)
        assert [o.token_ids for o in eng.generate(ps, GREEDY)] == ref, f"{blocks} blocks, budget {budget}"


# -- the server ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("spec")
    target = tiny_model_dir("llama", root / "target")
    draft = tiny_model_dir("llama", root / "draft", seed=1, num_hidden_layers=1)   # a smaller random model
    app = build_app(target, served_name="t", num_blocks=64, block_size=8, draft=draft, num_speculative_tokens=3)
    plain = build_app(target, served_name="t", num_blocks=64, block_size=8)
    with running(app) as url, running(plain) as plain_url:
        yield url, plain_url


def test_server_speculative_greedy_equals_plain_and_reports_acceptance(spec_server):
    url, plain_url = spec_server
    spec, plain = (openai.OpenAI(base_url=u + "/v1", api_key="x", max_retries=0) for u in spec_server)
    kw = dict(model="t", prompt="To be, or not", max_tokens=20, temperature=0, extra_body={"ignore_eos": True})
    a, b = spec.completions.create(**kw), plain.completions.create(**kw)
    assert a.choices[0].text == b.choices[0].text
    s = a.usage.model_extra["speculative"]
    assert s["draft_tokens"] > 0 and 0 <= s["accepted_tokens"] <= s["draft_tokens"]
    assert s["acceptance_rate"] == s["accepted_tokens"] / s["draft_tokens"]
    assert "speculative" in httpx.get(url + "/health").json()
    streamed = "".join(c.choices[0].text for c in spec.completions.create(**kw, stream=True) if c.choices)
    assert streamed == b.choices[0].text
    stop = b.choices[0].text[8:10]                 # a stop string in the middle of the answer, maybe mid-round
    a, b = spec.completions.create(**kw, stop=[stop]), plain.completions.create(**kw, stop=[stop])
    assert a.choices[0].text == b.choices[0].text and a.choices[0].finish_reason == "stop"


def test_server_accepts_presence_and_frequency_penalties(spec_server):
    client = openai.OpenAI(base_url=spec_server[1] + "/v1", api_key="x", max_retries=0)
    kw = dict(model="t", prompt="O Romeo", max_tokens=16, temperature=0, extra_body={"ignore_eos": True})
    plain = client.completions.create(**kw).choices[0].text
    pen = client.completions.create(**kw, presence_penalty=2.0, frequency_penalty=2.0).choices[0].text
    assert pen != plain, "the penalties must reach the sampler"
    r = httpx.post(spec_server[1] + "/v1/completions", json={"model": "t", "prompt": "O", "frequency_penalty": 2.5})
    assert r.status_code == 400 and r.json()["error"]["param"] == "frequency_penalty"
