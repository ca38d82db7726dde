"""llmlab.tokenization.hf: byte-level BPE in HF tokenizers, checked against llmlab.tokenization.bpe and transformers."""

import pytest
from transformers import AutoTokenizer

from llmlab.data import load_text
from llmlab.tokenization import bpe, hf as hft

HELD_OUT = "Thou art 世界 🤗 — naïve café,\r\n\ttabs  and   spaces\n\n"


@pytest.fixture(scope="module")
def corpus():
    en, zh = load_text("tinyshakespeare"), load_text("quantangshi")
    return [en[:40_000], zh[:8_000]]  # small slices: each training takes ~0.1 s


@pytest.fixture(scope="module")
def tok(corpus):
    return hft.train_bytelevel_bpe(corpus, vocab_size=600)


def test_vocab_size_and_special_tokens(tok):
    assert tok.get_vocab_size() == 600
    assert tok.token_to_id(hft.EOS) == 0 and tok.token_to_id(hft.PAD) == 1  # specials take the first ids
    ids = tok.encode(f"a{hft.EOS}b{hft.PAD}").ids
    assert 0 in ids and 1 in ids  # never split into "<", "|", ...


def test_round_trip_of_unseen_text(tok):
    # bytes never seen in training (emoji, accents, \r) still encode: the 256 bytes are the base vocabulary
    assert tok.decode(tok.encode(HELD_OUT).ids) == HELD_OUT


def test_merges_are_greedy_bpe(corpus, tok):
    # Replay the merges with the from-scratch trainer's pair counts: every merge must be a most frequent pair.
    trace = bpe.merge_trace(corpus, bpe.hf_merges(tok))
    assert len(trace) == 600 - 258
    assert all(count == top for count, top, _ in trace)


def test_deterministic_and_nested(corpus, tok):
    assert hft.train_bytelevel_bpe(corpus, vocab_size=600).to_str() == tok.to_str()
    small = hft.train_bytelevel_bpe(corpus, vocab_size=400)
    assert bpe.hf_merges(small) == bpe.hf_merges(tok)[: 400 - 258]  # greedy: a smaller vocab is a prefix


def test_too_small_vocab():
    with pytest.raises(ValueError, match="at least 258"):
        hft.train_bytelevel_bpe(["abc"], vocab_size=257)


def test_compression_and_token_bytes(tok):
    zh = "秦川雄帝宅，函谷壯皇居。\n"
    stats = hft.compression(tok, zh)
    assert stats["n_bytes"] == 3 * stats["n_chars"] - 2  # 12 CJK chars x 3 bytes + one "\n" (13 chars)
    assert stats["bytes_per_token"] == pytest.approx(stats["n_bytes"] / len(tok.encode(zh).ids))
    ids = tok.encode(zh).ids
    assert b"".join(hft.token_bytes(tok, i) for i in ids) == zh.encode("utf-8")
    assert hft.token_bytes(tok, 0) == hft.EOS.encode()


def test_hf_round_trip(tmp_path, tok):
    hf = hft.to_hf(tok)
    assert (hf.eos_token_id, hf.pad_token_id, len(hf)) == (0, 1, 600)
    hf.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)  # a local folder: no hub access
    texts = [HELD_OUT, "To be, or not to be" + hft.EOS]
    assert again(texts)["input_ids"] == hf(texts)["input_ids"] == [tok.encode(t).ids for t in texts]
    batch = again(texts, padding=True)
    n = len(tok.encode(texts[1]).ids)
    assert batch["input_ids"][1][n:] == [1] * (len(batch["input_ids"][0]) - n)  # right-padded with <|pad|>
    assert batch["attention_mask"][1] == [1] * n + [0] * (len(batch["input_ids"][0]) - n)


def test_to_hf_refuses_unknown_special_token(tok):
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        hft.to_hf(tok, eos_token="</s>")


def test_special_tokens_in_training_text_are_cut_out():
    docs = ["hello world" + hft.EOS] * 50  # documents glued with <|endoftext|>
    merged = {a + b for a, b in bpe.hf_merges(hft.train_bytelevel_bpe(docs, vocab_size=300))}
    assert not any(b"|" in m or b"<" in m for m in merged)  # no merge learned from the special token's pieces
