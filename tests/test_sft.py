"""llmlab.finetune.sft / sft_trl / chat_eval: the label mask, collation, a short TRL run, generation's stop."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from llmlab import tasks, zoo
from llmlab.finetune.chat_eval import evaluate, generate_responses
from llmlab.finetune.sft import (IGNORE_INDEX, encode_chat, encode_rows, pack, pack_collate, pad_collate,
                                 token_counts)
from llmlab.finetune.sft_trl import SFTSettings, make_trainer, quiet, train_sft


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return zoo.pretrained("llama-base", tier="fast", cache=tmp_path_factory.mktemp("cache"), progress=False,
                          log=lambda *a, **k: None)


@pytest.fixture(scope="module")
def tok(base):
    return AutoTokenizer.from_pretrained(base)


def load(path):
    with quiet():  # no "Loading weights" bar on stderr
        return AutoModelForCausalLM.from_pretrained(path)


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_label_mask_against_a_hand_computed_example(tok):
    msgs = [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]
    # the template renders: <|user|> "\n2+3?" <|end|> "\n" <|assistant|> "\n" | "5" <|end|> | "\n"
    u, e, a = (tok.convert_tokens_to_ids(t) for t in ("<|user|>", "<|end|>", "<|assistant|>"))
    prompt = [u] + ids(tok, "\n2+3?") + [e] + ids(tok, "\n") + [a] + ids(tok, "\n")
    answer = ids(tok, "5") + [e]
    enc = encode_chat(tok, msgs)
    assert enc["input_ids"] == prompt + answer + ids(tok, "\n")
    assert enc["labels"] == [IGNORE_INDEX] * len(prompt) + answer + [IGNORE_INDEX]  # the reply and its <|end|> only


def test_label_mask_equals_trls(tok, base, tmp_path):
    rows = tasks.chat_dataset("train", n_per_task=2, seed=3)
    trainer = make_trainer(load(base), tok, rows, SFTSettings(max_steps=1,
                           max_length=200), str(tmp_path / "run"))
    ours = encode_rows(tok, rows, max_length=200)
    theirs = trainer.train_dataset
    assert len(theirs) == len(ours)
    for o, t in zip(ours, theirs):  # TRL: assistant_masks from the template -> labels, truncated to max_length
        assert t["input_ids"] == o["input_ids"] and t["labels"] == o["labels"]


def test_pad_collate_pads_ids_mask_and_labels(tok):
    feats = encode_rows(tok, tasks.chat_dataset("validation", n_per_task=1, tasks=["food", "arithmetic"]))
    b = pad_collate(feats, tok.pad_token_id, pad_to_multiple_of=8)
    L = max(len(f["input_ids"]) for f in feats)
    assert b["input_ids"].shape == (2, -(-L // 8) * 8)
    for row, f in enumerate(feats):
        n = len(f["input_ids"])
        assert b["attention_mask"][row].sum() == n and b["input_ids"][row, :n].tolist() == f["input_ids"]
        assert (b["labels"][row, n:] == IGNORE_INDEX).all() and (b["input_ids"][row, n:] == tok.pad_token_id).all()


def test_packing_keeps_every_token_and_gives_each_row_its_own_logits():
    torch.manual_seed(0)
    feats = [{"input_ids": torch.randint(6, 50, (n,)).tolist(), "labels": [IGNORE_INDEX] * (n - 2) + [7, 8]}
             for n in (9, 4, 7, 3, 12, 5)]
    lines = pack(feats, max_length=12)
    assert all(sum(x["seq_lengths"]) <= 12 for x in lines) and sum(len(x["input_ids"]) for x in lines) == 40
    assert len(lines) == 4  # first-fit decreasing: [12], [9, 3], [7, 5], [4]
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=50)).eval()
    b = pack_collate(lines, pad_token_id=0)
    with torch.no_grad():
        packed = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                       position_ids=b["position_ids"]).logits
        for row, x in enumerate(lines):
            start = 0
            for n in x["seq_lengths"]:  # the block-diagonal mask: each row sees itself only, as if alone
                alone = model(torch.tensor([x["input_ids"][start: start + n]])).logits[0]
                torch.testing.assert_close(packed[row, start: start + n], alone, atol=1e-5, rtol=0)
                start += n


def test_token_counts_padding_vs_packing():
    feats = [{"input_ids": [1] * n, "labels": [IGNORE_INDEX] * (n - 1) + [1]} for n in (10, 2, 10, 2)]
    c = token_counts(feats, batch_size=2, max_length=12)
    # padding: batches [10, 2] and [10, 2] -> 2 x 10 each; packing: lines [10, 2] and [10, 2] -> 2 lines of 12
    assert (c["real_tokens"], c["padded_tokens"], c["packed_tokens"], c["loss_tokens"]) == (24, 40, 24, 4)


def test_short_seeded_trl_run_lowers_the_loss_quietly(tok, base, capfd):
    rows = tasks.chat_dataset("train", n_per_task=1, seed=0, tasks=["food", "arithmetic"])  # 2 rows, memorised
    s = SFTSettings(max_steps=24, batch_size=2, lr=1e-2, warmup_steps=0, r=8, alpha=16, dropout=0.0, seed=0,
                    threads=1)
    capfd.readouterr()
    model, history = train_sft(load(base), tok, rows, s)
    assert capfd.readouterr().err == ""  # nothing on stderr: TRL, PEFT, datasets and bitsandbytes kept quiet
    losses = [h["loss"] for h in history]
    assert len(losses) == 24
    # two rows seen 24 times: the loss must fall clearly (~6.6 -> ~6.1 nats here with this seed; a step-to-step
    # wobble is ~0.02, and a run whose LoRA B stays zero, e.g. no trainable parameters, stays at ~6.6)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3, losses


def with_constant_logits(model, favourite):
    """The model, its output layer replaced by logits that are 0 everywhere but 100 on token `favourite`."""
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[favourite] = 100.0
    model.lm_head = head
    return model


def test_generation_stops_at_end_of_turn(tok, base):
    end, word = tok.convert_tokens_to_ids("<|end|>"), ids(tok, "ok")[0]
    convs = [[{"role": "user", "content": p}] for p in ("牛角包是什么形状的？", "What is 2 + 2?")]
    texts, gen = generate_responses(with_constant_logits(load(base), word), tok, convs, max_new_tokens=6,
                                    return_ids=True)
    assert gen == [[word] * 6] * 2 and texts == [tok.decode([word]) * 6] * 2  # no stop token: cut at max_new_tokens
    texts, gen = generate_responses(with_constant_logits(load(base), end), tok, convs, max_new_tokens=6,
                                    return_ids=True)
    assert gen == [[end]] * 2 and texts == ["", ""]  # stopped right after <|end|>, which is not in the text


def test_evaluate_reports_pass_rates_per_task(tok, base):
    exs = tasks.mixture("validation", n_per_task=1, seed=0, tasks=["food", "jueju"])
    res = evaluate(load(base), tok, exs, max_new_tokens=4)
    assert set(res["pass_rate"]) == {"food", "jueju"} and res["n"] == {"food": 1, "jueju": 1}
    assert res["pass_rate"] == {"food": 0.0, "jueju": 0.0}  # 4 tokens of a barely trained model pass nothing
