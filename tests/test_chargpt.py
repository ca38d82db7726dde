"""Unit tests for llmlab.train.simple (the Week 1 char-level pipeline) and its tokenizer."""

import math

import pytest
import torch
import torch.nn.functional as F

from llmlab.train.simple import (
    GPT, CharTokenizer, GPTConfig, TrainConfig, estimate_loss, get_batch, lr_at, split_loss, train, train_val_split,
)

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


@pytest.fixture
def tok():
    return CharTokenizer.from_text(TEXT)


@pytest.fixture
def tiny_model(tok):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32))


def test_tokenizer_vocab_is_sorted_unique_chars(tok):
    assert tok.chars == sorted(set(TEXT))
    assert tok.vocab_size == len(set(TEXT))
    assert tok.encode("\n") == [0]  # "\n" sorts first


def test_tokenizer_round_trip(tok):
    ids = tok.encode(TEXT)
    assert len(ids) == len(TEXT) and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == TEXT
    assert tok.decode(torch.tensor(ids)) == TEXT
    assert tok.encode_tensor(TEXT).tolist() == ids  # the vectorised path agrees with the loop
    assert tok.encode_tensor("").shape == (0,)


def test_tokenizer_unknown_char(tok):
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("@")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode_tensor("Speak, @")


def test_tokenizer_save_load(tok, tmp_path):
    CharTokenizer.from_text("诗云：床前明月光").save(tmp_path / "zh.json")
    zh = CharTokenizer.load(tmp_path / "zh.json")
    assert zh.decode(zh.encode_tensor("明月光")) == "明月光"
    tok.save(tmp_path / "tok.json")
    assert CharTokenizer.load(tmp_path / "tok.json").chars == tok.chars


def test_train_val_split_keeps_order():
    data = torch.arange(100)
    tr, va = train_val_split(data, 0.9)
    assert tr.tolist() == list(range(90)) and va.tolist() == list(range(90, 100))


def test_get_batch_windows_and_shift():
    data = torch.arange(1000)  # token i == position i, so a window is a run of consecutive integers
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, block_size=8, batch_size=5, generator=g)
    assert x.shape == y.shape == (5, 8) and x.dtype == torch.long
    assert torch.equal(y, x + 1)  # targets are the inputs shifted by one
    assert torch.equal(x - x[:, :1], torch.arange(8).expand(5, 8))  # contiguous windows
    assert int(y.max()) < 1000
    x2, _ = get_batch(data, 8, 5, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)  # the generator makes batches repeatable


def test_get_batch_reaches_both_ends():
    data = torch.arange(10)
    x, y = get_batch(data, block_size=4, batch_size=2000, generator=torch.Generator().manual_seed(0))
    starts = set(x[:, 0].tolist())
    assert starts == set(range(6))  # every start 0..len-T-1 occurs in 2000 draws (miss prob ~6*(5/6)^2000)


def test_untrained_loss_is_log_vocab(tok, tiny_model):
    data = tok.encode_tensor(TEXT * 4)
    losses = estimate_loss(tiny_model, {"val": data}, eval_iters=4, batch_size=8,
                           generator=torch.Generator().manual_seed(0))
    # init std 0.02 keeps the logits within ~0.1 of 0, so the loss is ln(V) up to ~0.05
    assert abs(losses["val"] - math.log(tok.vocab_size)) < 0.05


def test_split_loss_matches_manual_windows(tok, tiny_model):
    data = tok.encode_tensor(TEXT)
    T = 16
    n = (len(data) - 1) // T
    x, y = data[: n * T].view(n, T), data[1: n * T + 1].view(n, T)
    with torch.no_grad():
        ref = F.cross_entropy(tiny_model(x)[0].reshape(-1, tok.vocab_size), y.reshape(-1)).item()
    # batching only changes the summation order: float32 round-off
    assert split_loss(tiny_model, data, batch_size=3) == pytest.approx(ref, abs=1e-5)


def test_lr_schedule():
    # the course's one schedule, through the config's fields
    cfg = TrainConfig(max_steps=110, max_lr=1e-3, min_lr=1e-4, warmup_steps=10)
    assert cfg.lr_at(0) == pytest.approx(1e-4)  # (0 + 1) / 10 of max_lr: the first step already moves
    assert cfg.lr_at(9) == pytest.approx(1e-3) and cfg.lr_at(10) == pytest.approx(1e-3)
    assert cfg.lr_at(60) == pytest.approx(5.5e-4)  # half way through the cosine: the mean of max and min
    assert cfg.lr_at(110) == pytest.approx(1e-4) and cfg.lr_at(500) == pytest.approx(1e-4)
    assert cfg.lr_at(5) == lr_at(5, 1e-3, 1e-4, 10, 110)
    assert TrainConfig(max_lr=2e-3).final_lr == pytest.approx(2e-4)  # min_lr defaults to max_lr / 10
    assert TrainConfig(decay_lr=False, learning_rate=3e-4).lr_at(50) == 3e-4


def test_week1_names_keep_week1_runs():
    # nanoGPT's ramp (it + 1) / (w + 1), which Week 1's warmup_iters=w meant, is the schedule with w + 1 steps
    old = TrainConfig(max_iters=100, learning_rate=1e-3, warmup_iters=9, eval_iters=3, betas=(0.8, 0.9))
    assert (old.max_steps, old.max_lr, old.warmup_steps, old.eval_batches, old.beta1, old.beta2) == (100, 1e-3, 10, 3, 0.8, 0.9)
    assert [old.lr_at(i) for i in range(10)] == pytest.approx([1e-3 * (i + 1) / 10 for i in range(10)])
    assert TrainConfig(warmup_iters=0).warmup_steps == 0


def test_train_lowers_loss_and_records_history(tok, tiny_model):
    data = tok.encode_tensor(TEXT * 20)
    tr, va = train_val_split(data)
    cfg = TrainConfig(max_iters=60, batch_size=16, learning_rate=3e-3, warmup_iters=5, eval_interval=20,
                      eval_iters=2, progress=False, seed=0)
    h = train(tiny_model, tr, va, cfg)
    # an evaluation before the first step (the untrained model), then every eval_interval
    assert h["iter"] == [0, 20, 40, 60] and len(h["step_loss"]) == len(h["lr"]) == 60 and h["stopped_at"] == 60
    assert h["tokens"][-1] == 60 * 16 * 16 and len(h["train_loss"]) == len(h["val_loss"]) == 4
    assert abs(h["val_loss"][0] - math.log(tok.vocab_size)) < 0.05
    # a repeated 80-character text is learned fast: from ln(V) ~ 3.1 to well under 2 in 60 steps
    assert h["step_loss"][0] > 2.8 and h["val_loss"][-1] < 2.0
    assert not tiny_model.training  # returned in eval mode


def test_train_stops_at_target(tok, tiny_model):
    data = tok.encode_tensor(TEXT * 20)
    tr, va = train_val_split(data)
    cfg = TrainConfig(max_iters=500, batch_size=16, learning_rate=3e-3, eval_interval=10, eval_iters=2,
                      target_loss=2.5, progress=False, seed=0)
    h = train(tiny_model, tr, va, cfg)
    assert h["reached_target"] and h["stopped_at"] < 500 and h["val_loss"][-1] <= 2.5
    assert h["stopped_at"] == h["iter"][-1]
