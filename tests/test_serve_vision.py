"""The vision endpoint: OpenAI image content parts through the official ``openai`` client, against a tiny random
LLaVA served on a free loopback port; greedy answers must equal ``transformers``' generate on the same pixels and
a prompt built independently (the chat template with N <image> tokens)."""

import httpx
import numpy as np
import openai
import pytest
import torch
from transformers import AutoTokenizer, LlavaForConditionalGeneration

from llmlab.serve.server import build_app, running
from llmlab.serve.tiny import tiny_model_dir, tiny_vlm_dir
from llmlab.serve.vision_backend import decode_image_url, encode_image
from llmlab.vision.images import to_tensor


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    return tiny_vlm_dir(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="module")
def client(vlm_dir):
    with running(build_app(vlm_dir, served_name="tiny-vlm")) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=60), url


def _image(seed, size=16):
    return np.random.default_rng(seed).random((size, size, 3)).astype(np.float32)


def _parts(img, text):
    return [{"type": "image_url", "image_url": {"url": encode_image(img)}}, {"type": "text", "text": text}]


def _reference(vlm_dir, img, text, n):
    model, tok = LlavaForConditionalGeneration.from_pretrained(vlm_dir).eval(), AutoTokenizer.from_pretrained(vlm_dir)
    q = (np.clip(img, 0, 1) * 255).round() / 255  # the PNG holds 8-bit pixels
    N = model.config.image_seq_length
    prompt = tok.apply_chat_template([{"role": "user", "content": "<image>\n" + text}], tokenize=False,
                                     add_generation_prompt=True).replace("<image>", "<image>" * N)
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(ids, pixel_values=to_tensor(q), max_new_tokens=n, do_sample=False, min_new_tokens=n,
                         eos_token_id=None, pad_token_id=1)[0, ids.shape[1]:]
    return tok.decode(out, skip_special_tokens=True)


def test_data_url_roundtrip():
    img = _image(0, 7)
    back = decode_image_url(encode_image(img))
    assert back.shape == (7, 7, 3) and np.abs(back - img).max() <= 0.5 / 255 + 1e-6  # 8-bit rounding only


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_answer_equals_transformers(client, vlm_dir, seed):
    c, _ = client
    img = _image(seed, 16 + 8 * seed)  # 16, 24, 32 pixels: the server resizes to the tower's 16
    r = c.chat.completions.create(model="tiny-vlm", messages=[{"role": "user", "content": _parts(img, "what is it?")}],
                                  temperature=0, max_tokens=6, extra_body={"ignore_eos": True})
    assert r.usage.prompt_tokens > 16, "the 16 image tokens are part of the prompt"
    if seed == 0:  # no resize: the reference sees the same pixels
        assert r.choices[0].message.content == _reference(vlm_dir, img, "what is it?", 6)
    else:
        assert r.usage.completion_tokens == 6


def test_stream_and_n(client):
    c, _ = client
    msgs = [{"role": "user", "content": _parts(_image(3), "colour?")}]
    whole = c.chat.completions.create(model="tiny-vlm", messages=msgs, temperature=0, max_tokens=5,
                                      extra_body={"ignore_eos": True}).choices[0].message.content
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="tiny-vlm", messages=msgs, temperature=0, max_tokens=5, stream=True, extra_body={"ignore_eos": True})
        if ch.choices)
    assert streamed == whole
    two = c.chat.completions.create(model="tiny-vlm", messages=msgs, temperature=0, max_tokens=5, n=2,
                                    extra_body={"ignore_eos": True})
    assert [ch.message.content for ch in two.choices] == [whole, whole]  # n = 2 reuses the image's handle


@pytest.mark.parametrize("part, why", [
    ({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}, "data: URLs"),
    ({"type": "image_url", "image_url": {"url": "data:image/png;base64,!!notbase64"}}, "decoded"),
    ({"type": "text", "text": "look: <image>"}, "image_url content parts"),
])
def test_bad_images_are_400(client, part, why):
    _, url = client
    r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny-vlm", "messages": [
        {"role": "user", "content": [part]}]}, timeout=30)
    assert r.status_code == 400 and why in r.json()["error"]["message"], r.text


def test_text_only_model_joins_text_parts_and_refuses_images(tmp_path):
    with running(build_app(tiny_model_dir("llama", tmp_path), served_name="t")) as url:
        ok = httpx.post(url + "/v1/chat/completions", json={"model": "t", "max_tokens": 2, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "To be"}, {"type": "text", "text": ", or"}]}]})
        bad = httpx.post(url + "/v1/chat/completions", json={"model": "t", "messages": [
            {"role": "user", "content": _parts(_image(0), "hi")}]})
    assert ok.status_code == 200, ok.text
    assert bad.status_code == 400 and "does not accept images" in bad.json()["error"]["message"]
