"""llmlab.finetune.compare: the measuring pieces against independent references, and one tiny end-to-end run.

(The step's peak memory is Week 3's llmlab.systems.memory.PeakMemory, tested with that package.)"""

import pytest
import torch

from llmlab import tasks, zoo
from llmlab.finetune.compare import (IGNORE, ChatBatches, CompareConfig, count_parameters, encode_example,
                                     resident_bytes, results_table, run_method)

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def llama_path(tmp_path_factory):
    cache = tmp_path_factory.mktemp("llmlab_cache")
    return zoo.pretrained("llama-base", tier="fast", cache=cache, progress=False, log=lambda *a: None)


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=50, tie_word_embeddings=True)
    return transformers.LlamaForCausalLM(cfg)


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["gate_proj", "up_proj", "down_proj"]])
def test_count_parameters_matches_peft(targets):
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    assert count_parameters(model) == model.get_nb_trainable_parameters()  # tied lm_head counted once


def test_resident_bytes_weights_once_and_adamw_moments():
    model = tiny_llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(50, (2, 5)), labels=torch.randint(50, (2, 5))).loss.backward()
    opt.step()
    n = sum(p.numel() for p in model.parameters())  # the tied embedding once
    got = resident_bytes(model, opt)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert got["weights"] == 4 * n + buffers
    assert got["optimizer"] == 2 * 4 * n + 4 * len(list(model.parameters()))  # exp_avg, exp_avg_sq; a step scalar


def test_encode_chat_masks_the_prompt(llama_path):
    tok = transformers.AutoTokenizer.from_pretrained(llama_path)
    ex = tasks.generate("food", "train", n=1, seed=3)[0]
    ids, labels = encode_example(tok, ex)
    kept = [t for t in labels if t != IGNORE]
    assert len(ids) == len(labels) and labels[0] == IGNORE
    assert tok.decode(kept) == ex.response + "<|end|>"  # exactly the assistant's answer and the end of its turn
    assert encode_example(tok, ex, max_len=len(ids) - 1) is None  # too long: dropped, not cut mid-answer
    x, y = ChatBatches([(ids, labels), (ids[:5], labels[:5])], 2, tok.pad_token_id).fixed()[0]
    assert x.shape == y.shape == (2, len(ids) - 1) and (y[1, 4:] == IGNORE).all()  # padding is never scored


def test_three_methods_same_data_and_measured(llama_path):
    train, val = tasks.generate("food", "train", n=16), tasks.generate("food", "validation", n=4)
    cfg = CompareConfig(steps=3, batch_size=4, warmup_steps=1, r=4, alpha=8, max_new_tokens=4, progress=False)
    res = {m: run_method(m, llama_path, train, val, cfg) for m in ("full", "lora", "qlora")}
    assert res["full"].trainable == res["full"].total and res["lora"].trainable == res["qlora"].trainable
    assert res["lora"].trainable < res["full"].trainable / 4
    assert res["qlora"].weights_bytes < res["lora"].weights_bytes  # 4-bit linear layers
    assert res["lora"].optimizer_bytes < res["full"].optimizer_bytes / 4
    for r in res.values():
        assert r.step_peak_bytes > 0 and r.step_s > 0 and 0 <= r.pass_rate <= 1 and len(r.train_losses) == 3
    assert res["lora"].val_loss_before == pytest.approx(res["full"].val_loss_before, abs=1e-5)  # the same start (B = 0)
    # QLoRA starts from the NF4-rounded base: close to it, not equal (1e-3 here; 0.05 would be a broken quantizer)
    assert 0 < abs(res["qlora"].val_loss_before - res["full"].val_loss_before) < 0.05
    rows = results_table(list(res.values()))
    assert [r["method"] for r in rows] == ["full", "lora", "qlora"] and rows[0]["peak vs full"] == 1.0
