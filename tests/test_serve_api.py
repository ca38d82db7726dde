"""The OpenAI-compatible server, through the official ``openai`` client (sync, async, streaming, chat and
completions) and raw HTTP for the error cases, against a server on a free loopback port that the fixture
starts and stops. The load test checks that good requests get complete answers, bad ones their errors,
cancelled ones free their KV blocks, and that the block count is back to the start afterwards."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmlab.serve.server import build_app, running
from llmlab.serve.tiny import tiny_model_dir

KEY, NAME = "sk-test", "tiny-llama"
NO_EOS = {"ignore_eos": True}           # the random model stops early and at random otherwise


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def server(model_dir):
    app = build_app(model_dir, served_name=NAME, api_key=KEY, num_blocks=128, block_size=8, max_queue=128)
    with running(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def reference(model_dir):
    """Greedy text of transformers' generate: what the server must answer with temperature 0."""
    model, tok = AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)

    def greedy(ids, n):
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                             pad_token_id=1)[0, len(ids):]
        return tok.decode(out, skip_special_tokens=True)
    return tok, greedy


def wait_idle(url, timeout=10.0):
    """The server's /health until nothing is in flight; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        h = httpx.get(url + "/health").json()
        if (h["requests_in_flight"] == 0 and h["kv_blocks_free"] == h["kv_blocks_total"]) or time.monotonic() > deadline:
            return h
        time.sleep(0.05)


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list().data] == [NAME]
    h = httpx.get(server[0] + "/health").json()
    assert h["status"] == "ok" and h["kv_blocks_total"] == 128


def test_completion_greedy_equals_transformers(client, reference):
    tok, greedy = reference
    r = client.completions.create(model=NAME, prompt="To be, or not", max_tokens=12, temperature=0, extra_body=NO_EOS)
    ids = tok.encode("To be, or not", add_special_tokens=False)
    assert r.choices[0].text == greedy(ids, 12)
    assert r.choices[0].finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (len(ids), 12, len(ids) + 12)


def test_chat_uses_the_template_and_streams_the_same_text(client, reference):
    tok, greedy = reference
    msgs = [{"role": "system", "content": "You are a poet."}, {"role": "user", "content": "O Romeo"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False)
    r = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=10, temperature=0, extra_body=NO_EOS)
    assert r.usage.prompt_tokens == len(ids), "the prompt must be the chat template's"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == greedy(ids, 10)
    chunks = list(client.chat.completions.create(model=NAME, messages=msgs, max_tokens=10, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}, extra_body=NO_EOS))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 10


def test_raw_stream_ends_with_done(server):
    body = {"model": NAME, "prompt": "To be", "max_tokens": 4, "stream": True}
    with httpx.stream("POST", server[0] + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]" and all(ln.startswith("data: ") for ln in lines)
    assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] in ("stop", "length")


def test_async_client_concurrent_requests_match_sequential(client, server):
    prompts = ["To be", "O Romeo", "床前明月光", "def add", "12 + 30", "the slings"]
    seq = [client.completions.create(model=NAME, prompt=p, max_tokens=8, temperature=0, extra_body=NO_EOS).choices[0].text
           for p in prompts]

    async def main():
        aclient = openai.AsyncOpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)
        rs = await asyncio.gather(*[aclient.completions.create(model=NAME, prompt=p, max_tokens=8, temperature=0,
                                                               extra_body=NO_EOS) for p in prompts])
        await aclient.close()
        return [r.choices[0].text for r in rs]
    assert asyncio.run(main()) == seq, "batching must not change greedy answers"


def test_stop_seed_n_and_logprobs(client):
    full = client.completions.create(model=NAME, prompt="O Romeo", max_tokens=12, temperature=0, extra_body=NO_EOS)
    text = full.choices[0].text
    stop = text[3:5]                                   # a stop string taken from inside the answer
    r = client.completions.create(model=NAME, prompt="O Romeo", max_tokens=12, temperature=0, stop=[stop],
                                  extra_body=NO_EOS)
    assert r.choices[0].text == text[:text.find(stop)] and r.choices[0].finish_reason == "stop"
    a = client.completions.create(model=NAME, prompt="To be", max_tokens=8, temperature=1.0, seed=7, n=2, extra_body=NO_EOS)
    b = client.completions.create(model=NAME, prompt="To be", max_tokens=8, temperature=1.0, seed=7, n=2, extra_body=NO_EOS)
    assert [c.text for c in a.choices] == [c.text for c in b.choices] and len(a.choices) == 2
    assert a.usage.completion_tokens == 16
    lp = client.completions.create(model=NAME, prompt="To be", max_tokens=5, temperature=0, logprobs=2,
                                   extra_body=NO_EOS).choices[0].logprobs
    assert len(lp.tokens) == 5 and all(len(t) <= 2 for t in lp.top_logprobs)
    assert all(v <= 0 for v in lp.token_logprobs)
    # greedy: the chosen token is the most likely one (a dict keyed by text can merge two byte tokens into "\ufffd")
    assert all(c >= max(t.values()) - 1e-5 for c, t in zip(lp.token_logprobs, lp.top_logprobs))
    chat = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                          temperature=0, logprobs=True, top_logprobs=3, extra_body=NO_EOS)
    assert len(chat.choices[0].logprobs.content) == 3 and len(chat.choices[0].logprobs.content[0].top_logprobs) == 3


@pytest.mark.parametrize("body,status,param", [
    ('{"model": "tiny-llama", "prompt": ', 400, None),                               # malformed JSON
    ('{"model": "gpt-9", "prompt": "hi"}', 404, "model"),
    ('{"model": "tiny-llama", "prompt": "hi", "temperature": 2.5}', 400, "temperature"),
    ('{"model": "tiny-llama", "prompt": "hi", "top_p": 0}', 400, "top_p"),
    ('{"model": "tiny-llama", "prompt": "hi", "max_tokens": 0}', 400, "max_tokens"),
    ('{"model": "tiny-llama", "prompt": "hi", "n": 0}', 400, "n"),
    ('{"model": "tiny-llama", "prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}', 400, "stop"),
    ('{"model": "tiny-llama"}', 400, "prompt"),
    ('{"model": "tiny-llama", "prompt": "hi", "max_tokens": 1000}', 400, "prompt"),   # longer than the context
])
def test_completion_errors(server, body, status, param):
    r = httpx.post(server[0] + "/v1/completions", content=body,
                   headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param


def test_chat_errors_through_the_client(client, server):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=NAME, messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "word " * 400}])
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    bad = openai.OpenAI(base_url=server[0] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert httpx.get(server[0] + "/health").status_code == 200, "/health needs no key"


def test_disconnect_mid_stream_frees_the_blocks(client, server):
    stream = client.completions.create(model=NAME, prompt="To be", max_tokens=200, temperature=0, stream=True,
                                       extra_body=NO_EOS)
    next(iter(stream))
    assert httpx.get(server[0] + "/health").json()["requests_in_flight"] == 1
    stream.close()
    h = wait_idle(server[0])
    assert h["requests_in_flight"] == 0 and h["kv_blocks_free"] == h["kv_blocks_total"]


def test_disconnect_of_a_non_streaming_request_frees_the_blocks(model_dir):
    """No write fails when a non-streaming client hangs up: the server must notice the disconnect itself."""
    app = build_app(model_dir, served_name=NAME, num_blocks=64, block_size=8)
    eng = app.state.engine.engine
    step = eng.step
    eng.step = lambda: (time.sleep(0.02), step())[1]      # 20 ms a step: 200 tokens would take 4 s
    with running(app) as url:
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/completions", timeout=0.5, json={"model": NAME, "prompt": "To be",
                                                                   "max_tokens": 200, **NO_EOS})
        h = wait_idle(url)
        assert time.monotonic() - t0 < 3, "the request ran to the end instead of being cancelled"
        assert eng.num_aborted == 1 and h["kv_blocks_free"] == h["kv_blocks_total"] == 64


def test_load_64_streaming_clients(server, client):
    """48 good streams (checked against the sequential answer), 8 that hang up after one chunk, 8 bad ones."""
    url = server[0]
    prompts = ["To be", "O Romeo", "床前明月光", "whether"]
    expected = {p: client.completions.create(model=NAME, prompt=p, max_tokens=16, temperature=0,
                                             extra_body=NO_EOS).choices[0].text for p in prompts}

    async def one(aclient, i):
        p = prompts[i % 4]
        if i % 8 == 6:                                        # bad: unknown model / bad value
            try:
                await aclient.completions.create(model="nope" if i % 16 == 6 else NAME, prompt=p, max_tokens=16,
                                                 temperature=9)
            except (openai.NotFoundError, openai.BadRequestError) as e:
                return "error", e.status_code
            return "no error", None
        stream = await aclient.completions.create(model=NAME, prompt=p, max_tokens=16 if i % 8 != 7 else 200,
                                                  temperature=0, stream=True, extra_body=NO_EOS)
        text, reason = "", None
        async for chunk in stream:
            text += chunk.choices[0].text
            reason = chunk.choices[0].finish_reason or reason
            if i % 8 == 7:                                    # hang up mid-stream
                await stream.close()
                return "cancelled", None
        return (text == expected[p] and reason == "length"), text

    async def main():
        aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=60)
        out = await asyncio.gather(*[one(aclient, i) for i in range(64)])
        await aclient.close()
        return out

    results = asyncio.run(main())
    good = [r for i, r in enumerate(results) if i % 8 < 6]
    assert all(ok is True for ok, _ in good), [t for ok, t in good if ok is not True][:3]
    assert [r[0] for i, r in enumerate(results) if i % 8 == 6] == ["error"] * 8
    h = wait_idle(url)
    assert h["kv_blocks_free"] == h["kv_blocks_total"], f"KV blocks leaked: {h}"
    assert client.completions.create(model=NAME, prompt="still up?", max_tokens=2).usage.completion_tokens >= 1


def test_bounded_queue_answers_429_not_a_hang(model_dir):
    app = build_app(model_dir, served_name=NAME, num_blocks=64, block_size=8, max_queue=2)

    async def main(url):
        aclient = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)

        async def one():
            try:
                r = await aclient.completions.create(model=NAME, prompt="To be", max_tokens=30, extra_body=NO_EOS)
                return r.usage.completion_tokens
            except openai.RateLimitError as e:
                return e.status_code
        out = await asyncio.wait_for(asyncio.gather(*[one() for _ in range(8)]), 60)
        await aclient.close()
        return out

    with running(app) as url:
        out = asyncio.run(main(url))
        assert 429 in out and 30 in out, out
        assert wait_idle(url)["kv_blocks_free"] == 64


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_another_architecture(tmp_path):
    """``python -m llmlab.serve --model DIR``: a GPT-2 folder this time, as a separate process."""
    path = tiny_model_dir("gpt2", tmp_path / "gpt2")
    port = free_port()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "llmlab.serve", "--model", path, "--served-model-name", "g",
                             "--port", str(port), "--threads", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        r = c.chat.completions.create(model="g", messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                      extra_body=NO_EOS)
        assert r.usage.completion_tokens == 3
    finally:
        proc.terminate()
        proc.wait(10)


def test_hf_backend_gives_the_same_greedy_answers(model_dir, client):
    """--backend hf: plain transformers.generate behind the same API, for comparison."""
    app = build_app(model_dir, served_name=NAME, backend="hf")
    with running(app) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        for p in ("To be", "O Romeo"):
            hf = c.completions.create(model=NAME, prompt=p, max_tokens=10, temperature=0, extra_body=NO_EOS)
            ours = client.completions.create(model=NAME, prompt=p, max_tokens=10, temperature=0, extra_body=NO_EOS)
            assert hf.choices[0].text == ours.choices[0].text and hf.usage.completion_tokens == 10


def test_gpu_tier_says_what_it_skips(capsys):
    from llmlab.serve import gpu_tier

    assert gpu_tier.main(["vllm", "--model", "m", "--draft", "d"]) == 0
    out = capsys.readouterr().out
    assert "vllm serve m" in out and '"num_speculative_tokens": 4' in out and "--enable-prefix-caching" in out
    if not torch.cuda.is_available():
        assert "skipped: no CUDA GPU" in out
    assert gpu_tier.main(["trtllm", "--model", "m"]) == 0 and "trtllm-build" in capsys.readouterr().out
