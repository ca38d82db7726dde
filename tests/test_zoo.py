"""llmlab.zoo: FAST-tier checkpoints load with the Auto classes and agree with the course model."""

import json
import math
import threading
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmlab import zoo
from llmlab.tokenization.char import CharTokenizer
from llmlab.data import load_text

NAMES = [n for n in zoo.available() if zoo.MODELS[n].arch == "gpt2"]  # the GPTs; llama-base: tests at the end
# float32: the course GPT and HF's GPT-2 sum in different orders (GPT-2's Conv1D is a fused addmm, the
# attention kernels differ): ~1e-6 relative per layer, ~1e-6..1e-5 absolute on these logits; 1e-4 is the
# tolerance the zoo promises, ten times what round-off produces, far below any real mismatch (~1e-1)
ATOL = 1e-4


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("llmlab_cache")


@pytest.fixture(scope="module")
def paths(cache):
    return {name: zoo.pretrained(name, tier="fast", cache=cache, progress=False, log=quiet) for name in NAMES}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_catalogue():
    assert {"shakespeare-char", "shakespeare-bpe", "tang-poetry"} <= set(NAMES)
    with pytest.raises(zoo.ZooError, match="did you mean 'tang-poetry'"):
        zoo.pretrained("tang-poem", tier="fast")
    with pytest.raises(zoo.ZooError, match="tier must be one of"):
        zoo.pretrained("tang-poetry", tier="tpu")


@pytest.mark.parametrize("name", NAMES)
def test_auto_classes_load_and_logits_match(paths, cache, name):
    path = paths[name]
    assert path == zoo.zoo_dir(cache) / f"{name}-fast"
    hf = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    model, tok2 = zoo.load(name, tier="fast", cache=cache)
    assert type(tok2) is type(tok) and len(tok) == hf.config.vocab_size == model.config.vocab_size
    text = {"tang-poetry": "靜夜思\n李白\n床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。\n"}.get(
        name, "ROMEO:\nBut, soft! what light through yonder window breaks?\n")
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"][: model.config.block_size]])
    rand = torch.randint(len(tok), (3, model.config.block_size))  # every id, the special tokens too
    with torch.no_grad():
        for x in (ids, rand):
            torch.testing.assert_close(model(x)[0], hf(x).logits, atol=ATOL, rtol=0)
    meta = zoo.info(path)
    assert meta["hf_max_abs_logit_diff"] <= ATOL  # the trained model itself, before saving, vs the reloaded one
    # special tokens are known to the config, so generate() stops and pads with our ids, not GPT-2's 50256
    assert hf.config.eos_token_id == hf.generation_config.eos_token_id == tok.eos_token_id
    assert hf.config.pad_token_id == tok.pad_token_id
    out = hf.generate(ids[:, :8], max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 13) and int(out.max()) < len(tok)


@pytest.mark.parametrize("name", NAMES)
def test_metrics_recorded(paths, name):
    meta = zoo.info(paths[name])
    assert meta["name"] == name and meta["tier"] == "fast"
    assert meta["val_ppl"] == pytest.approx(math.exp(meta["val_loss"]))
    assert meta["val_loss"] < math.log(meta["vocab_size"])  # even 30 steps beat a uniform guess
    assert meta["val_bits_per_byte"] <= meta["val_bits_per_char"]  # >= 1 UTF-8 byte per character
    stored = load_file(paths[name] / "model.safetensors")
    assert "lm_head.weight" not in stored  # tied to wte: stored once
    assert meta["n_params"] == sum(t.numel() for t in stored.values())
    assert (paths[name] / "metrics.csv").read_text().startswith("step,")


@pytest.mark.parametrize("name", ["shakespeare-char", "tang-poetry"])
def test_char_tokenizer_ids_equal_course_chartokenizer(paths, name):
    tok = AutoTokenizer.from_pretrained(paths[name])
    if name == "shakespeare-char":
        ref = CharTokenizer.from_text(load_text("tinyshakespeare"))  # the Week 1 tokenizer, built independently
        text = load_text("tinyshakespeare")[-3000:]
    else:
        ref = CharTokenizer.from_text(zoo.clean_tang(load_text("quantangshi")))
        text = "春曉\n孟浩然\n春眠不覺曉，處處聞啼鳥。\n夜來風雨聲，花落知多少。\n"
    assert zoo.char_tokenizer(paths[name]).chars == ref.chars
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == ref.encode(text)
    assert tok.decode(ids) == text
    V = ref.vocab_size
    assert (tok.eos_token_id, tok.pad_token_id, tok.unk_token_id) == (V, V + 1, V + 2)  # after the characters
    # specials are single tokens; a character outside the vocabulary becomes <|unk|>
    assert tok(f"a{tok.eos_token}", add_special_tokens=False)["input_ids"][-1] == V
    assert tok("🤗", add_special_tokens=False)["input_ids"] == [V + 2]


def test_bpe_tokenizer_round_trip(paths):
    tok = AutoTokenizer.from_pretrained(paths["shakespeare-bpe"])
    for text in ("KING RICHARD III:\nNow is the winter of our discontent", "naïve café 🤗 世界\r\n\ttabs  "):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text  # byte-level: any string, unseen bytes included
    assert tok.eos_token == zoo.EOS and tok.eos_token_id == 0


def test_deterministic(paths, tmp_path):
    """Two builds from scratch give bit-identical weights and the same tokenizer."""
    again = zoo.pretrained("shakespeare-char", tier="fast", cache=tmp_path, progress=False, log=quiet)
    a, b = load_file(paths["shakespeare-char"] / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (again / "tokenizer.json").read_text() == (paths["shakespeare-char"] / "tokenizer.json").read_text()


def test_cached_call_does_not_retrain(paths, cache, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the model was trained again although it is cached")

    monkeypatch.setattr(zoo, "build", no_training)
    before = (paths["tang-poetry"] / "model.safetensors").stat().st_mtime_ns
    assert zoo.pretrained("tang-poetry", tier="fast", cache=cache) == paths["tang-poetry"]
    assert (paths["tang-poetry"] / "model.safetensors").stat().st_mtime_ns == before
    leftovers = [p.name for p in zoo.zoo_dir(cache).iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert not leftovers


def fake_build(calls, delay=0.3):
    def build(name, tier, out_dir, **kwargs):
        calls.append(name)
        time.sleep(delay)  # long enough for the other caller to arrive while we build
        for f in zoo.REQUIRED_FILES:
            (out_dir / f).write_text(json.dumps({"name": name}))
        return {"val_loss": 1.0, "val_ppl": math.e, "val_bits_per_char": 1.0, "train_wall_s": 0, "train_cpu_s": 0}
    return build


def test_concurrent_callers_train_once(tmp_path, monkeypatch):
    calls, results = [], []
    monkeypatch.setattr(zoo, "build", fake_build(calls))
    threads = [threading.Thread(target=lambda: results.append(zoo.pretrained("shakespeare-char", tier="fast",
                                                                             cache=tmp_path, log=quiet)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["shakespeare-char"]  # the others waited on the lock, then found the folder
    assert len(set(results)) == 1 and zoo._complete(results[0])
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir() if not p.name.endswith(".lock")) == ["shakespeare-char-fast"]


def test_failed_build_leaves_nothing_and_incomplete_folder_is_reported(tmp_path, monkeypatch):
    def crash(name, tier, out_dir, **kwargs):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(zoo, "build", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        zoo.pretrained("tang-poetry", tier="fast", cache=tmp_path, log=quiet)
    assert [p.name for p in (tmp_path / "zoo").iterdir() if not p.name.endswith(".lock")] == []  # no half folder
    broken = tmp_path / "zoo" / "tang-poetry-fast"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(zoo.ZooError, match="incomplete .*missing model.safetensors.*force=True"):
        zoo.pretrained("tang-poetry", tier="fast", cache=tmp_path, log=quiet)
    calls = []
    monkeypatch.setattr(zoo, "build", fake_build(calls, delay=0))
    assert zoo.pretrained("tang-poetry", tier="fast", cache=tmp_path, force=True, log=quiet) == broken
    assert calls == ["tang-poetry"] and zoo._complete(broken)


# ---------------------------------------------------------------------------------------------
# llama-base: the Llama architecture, both corpora, a chat-ready tokenizer


@pytest.fixture(scope="module")
def llama_path(cache):
    return zoo.pretrained("llama-base", tier="fast", cache=cache, progress=False, log=quiet)


def test_llama_base_loads_with_auto_classes_and_matches_course_model(llama_path, cache):
    hf = AutoModelForCausalLM.from_pretrained(llama_path).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    model, tok = zoo.load("llama-base", tier="fast", cache=cache)
    text = "ROMEO:\nBut, soft! what light\n春眠不覺曉，處處聞啼鳥。"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    rand = torch.randint(len(tok), (2, 16))  # every id, the special tokens too
    with torch.no_grad():
        for x in (torch.tensor([ids]), rand):
            # the same float32 operations in the same order on both sides: equal to round-off (~1e-7)
            torch.testing.assert_close(model(x).logits, hf(x).logits, atol=1e-5, rtol=0)
    meta = zoo.info(llama_path)
    assert meta["arch"] == "llama" and meta["val_loss"] < math.log(meta["vocab_size"])
    assert set(meta["val_loss_by_corpus"]) == {"en", "zh"}
    assert "lm_head.weight" not in load_file(llama_path / "model.safetensors")  # tied embeddings


def test_llama_base_tokenizer_keeps_chinese_characters_apart(llama_path):
    tok = AutoTokenizer.from_pretrained(llama_path)
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    verse = "春眠不覺曉，處處聞啼鳥。"
    assert enc(verse) == [i for ch in verse for i in enc(ch)]  # no token spans two characters
    assert tok.decode(tok("naïve café 🤗\r\n\ttabs", add_special_tokens=False)["input_ids"]) == "naïve café 🤗\r\n\ttabs"


def test_llama_base_chat_template_and_special_tokens(llama_path):
    tok = AutoTokenizer.from_pretrained(llama_path)
    hf = AutoModelForCausalLM.from_pretrained(llama_path)
    specials = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    assert tok.convert_tokens_to_ids(specials) == list(range(6))
    assert "chat_template" in json.loads((llama_path / "tokenizer_config.json").read_text())
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "寫一首詩"},
            {"role": "assistant", "content": "床前明月光"}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == "<|system|>\nBe brief.<|end|>\n<|user|>\n寫一首詩<|end|>\n<|assistant|>\n床前明月光<|end|>\n"
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n")
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    answer = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(answer) == "床前明月光<|end|>"  # the SFT label mask: the reply and its end-of-turn token
    end = tok.convert_tokens_to_ids("<|end|>")
    assert end in hf.generation_config.eos_token_id and tok.eos_token_id in hf.generation_config.eos_token_id


def test_llama_base_template_renders_the_course_tasks(llama_path):
    from llmlab import tasks

    tok = AutoTokenizer.from_pretrained(llama_path)
    for row in tasks.chat_dataset("validation", n_per_task=1, tasks=["food", "arithmetic"]):
        text = tok.apply_chat_template(row["messages"], tokenize=False)
        assert text.startswith("<|system|>\n" + tasks.SYSTEM_PROMPT + "<|end|>\n<|user|>\n")
        assert text.endswith("<|assistant|>\n" + row["messages"][-1]["content"] + "<|end|>\n")


def test_llama_draft_is_smaller_with_the_base_tokenizer(llama_path, cache):
    """Week 6's draft model: trained like llama-base (same Trainer, corpora, seed), smaller, the same token ids."""
    path = zoo.pretrained("llama-draft", tier="fast", cache=cache, progress=False, log=quiet)
    assert (path / "tokenizer.json").read_bytes() == (llama_path / "tokenizer.json").read_bytes()
    meta, base = zoo.info(path), zoo.info(llama_path)
    assert meta["n_params"] < base["n_params"] / 2 and meta["vocab_size"] == base["vocab_size"]
    assert meta["train_tokens"] == base["train_tokens"], "the same training data"
    assert meta["val_loss"] < math.log(meta["vocab_size"]), "it learned something"


# ---------------------------------------------------------------------------------------------
# llama-chat: llama-base after LoRA-SFT on the course tasks (llmlab.finetune.chat_model), merged


@pytest.fixture(scope="module")
def chat_path(cache, llama_path):
    return zoo.pretrained("llama-chat", tier="fast", cache=cache, progress=False, log=quiet)


def test_llama_chat_is_built_from_the_cached_base(chat_path, llama_path):
    meta = zoo.info(chat_path)
    assert meta["base"] == "llama-base" and meta["base_path"] == str(llama_path)  # the same cache's base, reused
    assert meta["arch"] == "llama" and meta["tier"] == "fast"
    hf = AutoModelForCausalLM.from_pretrained(chat_path)
    assert type(hf).__name__ == "LlamaForCausalLM" and not any("lora" in k for k in hf.state_dict())  # merged


def test_llama_chat_template_generation_prompt_and_stop_tokens(chat_path):
    tok = AutoTokenizer.from_pretrained(chat_path)
    hf = AutoModelForCausalLM.from_pretrained(chat_path)
    msgs = [{"role": "user", "content": "牛角包是什么形状的？"}]
    ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert tok.decode(ids) == "<|user|>\n牛角包是什么形状的？<|end|>\n<|assistant|>\n"
    assert tok.convert_tokens_to_ids("<|end|>") in hf.generation_config.eos_token_id
    assert tok.eos_token_id in hf.generation_config.eos_token_id


def test_llama_chat_records_pass_rates_per_task_before_and_after(chat_path):
    from llmlab import tasks

    meta = zoo.info(chat_path)
    for key in ("pass_rate_before", "pass_rate_after", "score_before", "score_after"):
        assert set(meta[key]) == set(tasks.TASKS), key  # one rate per task family
        assert all(0.0 <= v <= 1.0 for v in meta[key].values())
    assert meta["merge_max_abs_logit_diff"] < 1e-4 and meta["hf_max_abs_logit_diff"] < 1e-5
    lines = (chat_path / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == sum(meta["n_eval"].values())
    assert (chat_path / "metrics.csv").read_text().count("\n") == meta["sft"]["max_steps"] + 1  # header + a row a step


def test_llama_chat_adapter_reloads_onto_the_base_and_merges_to_the_published_model(chat_path, llama_path):
    from peft import PeftModel

    base = AutoModelForCausalLM.from_pretrained(llama_path)
    merged = PeftModel.from_pretrained(base, chat_path / "adapter").merge_and_unload().eval()
    hf = AutoModelForCausalLM.from_pretrained(chat_path).eval()
    x = torch.randint(0, hf.config.vocab_size, (2, 24))
    with torch.no_grad():  # the same merge of the same float32 weights: equal to round-off
        torch.testing.assert_close(merged(x).logits, hf(x).logits, atol=1e-5, rtol=0)
