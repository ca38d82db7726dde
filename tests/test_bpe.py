"""llmlab.tokenization.bpe: byte-level BPE from scratch, checked by hand, against a naive trainer and against HF tokenizers.

Comparisons are exact (token ids and merges are integers and byte strings: there is no round-off
to allow for); the two that are not, memory use and whole-corpus compression, say why. Where HF
``tokenizers`` and we may *legitimately* differ, the test says why and compares only what must agree:

- tie-break: with equal pair counts we take the greatest pair of byte strings (CS336's rule), HF
  the pair with the smallest HF ids. Two correct trainers agree on every merge before the first
  step whose largest count is shared by two pairs (found by replaying HF's merges, ``merge_trace``).
- ids: HF numbers special tokens first, then the 256 bytes in GPT-2's table order; we number
  bytes 0-255 first. Trained vocabularies are compared as byte strings, and token ids only once
  both tokenizers use the same ``vocab.json``.
- HF's trainer does not cut special tokens out of the training text, so HF training corpora here
  contain none.
"""

import json
import pickle
import random
import tracemalloc
from collections import Counter

import pytest
from tokenizers import Tokenizer as HFTokenizer, models, pre_tokenizers

from llmlab.tokenization.bpe import (
    Tokenizer,
    bytes_to_unicode,
    count_words,
    first_tie,
    hf_merges,
    hf_train_bpe,
    load_gpt2_files,
    merge_pair,
    merge_trace,
    pretokenize,
    train_bpe,
)
from llmlab.data import find, load_text

EOT = "<|endoftext|>"
# letters, digits, punctuation, runs of spaces/newlines, contractions, Chinese, emoji (one with
# zero-width joiners), a combining accent: everything the GPT-2 regex and UTF-8 treat specially
ALPHABET = list("abcdefghij ABC  '\n\t.,;!?0129") + ["'s", "'ll", "  ", "\n\n", "秦", "川", "，", "。", "的",
                                                     "😀", "👨‍👩‍👧", "é", "ß", "\u0301"]


def random_text(rng: random.Random, n: int, extra=()) -> str:
    return "".join(rng.choice(ALPHABET + list(extra)) for _ in range(n))


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return load_text("tinyshakespeare")


@pytest.fixture(scope="module")
def tang() -> str:
    return load_text("quantangshi")


@pytest.fixture(scope="module")
def trained(shakespeare, tang) -> Tokenizer:
    """A small tokenizer that has seen English and Chinese, with one special token."""
    return Tokenizer.train([shakespeare[:100_000], tang[:30_000]], 800, special_tokens=[EOT])


def naive_train(corpus, vocab_size, special_tokens=()):
    """Reference trainer: recount every pair of every word before each merge (slow, obviously right)."""
    words = {tuple(bytes([b]) for b in w.encode()): c for w, c in count_words(corpus, special_tokens).items()}
    tokens = {bytes([b]) for b in range(256)}
    merges = []
    while len(tokens) + len(special_tokens) < vocab_size:
        pairs = Counter()
        for w, c in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += c
        if not pairs:
            break
        a, b = max(pairs, key=lambda p: (pairs[p], p))  # most frequent; ties: greatest (bytes, bytes)
        merges.append((a, b))
        tokens.add(a + b)
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = c
        words = new_words
    return merges


def as_bytes(hf_token: str) -> bytes:
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(decoder[c] for c in hf_token)


# ---------------------------------------------------------------------------------------------
# pre-tokenization and the byte table


def test_pretokenize_gpt2_examples():
    assert pretokenize("Hello, world! It's 2024.  ok\n\n") == [
        "Hello", ",", " world", "!", " It", "'s", " 2024", ".", " ", " ok", "\n\n"]
    assert pretokenize("秦川雄帝宅，函谷") == ["秦川雄帝宅", "，", "函谷"]  # CJK characters are \p{L}


def test_pretokenize_matches_hf_bytelevel():
    hf = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    rng = random.Random(0)
    for _ in range(200):
        s = random_text(rng, rng.randint(0, 40))
        expected = [as_bytes(w) for w, _ in hf.pre_tokenize_str(s)]
        assert [w.encode() for w in pretokenize(s)] == expected, repr(s)


def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256 and set(table.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert (table[ord(" ")], table[ord("\n")], table[ord("A")]) == ("Ġ", "Ċ", "A")


# ---------------------------------------------------------------------------------------------
# training: hand-computed cases, then the incremental trainer against the naive one


def test_merge_pair():
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]  # left to right, no overlap
    assert merge_pair([1, 1, 1, 1], (1, 1), 9) == [9, 9]
    assert merge_pair([1], (1, 2), 9) == [1] and merge_pair([], (1, 2), 9) == []


def test_train_aaabdaaabac_by_hand():
    # One pre-token. Counts: aa 4, ab 2, others 1 -> merge (a,a).  Word: aa a b d aa a b a c.
    # Then (aa,a) 2 and (a,b) 2 tie: b"aa" > b"a" (a prefix sorts first) -> (aa,a).
    # Then (aaa,b) 2.  Word: aaab d aaab a c, all four pairs occur once: the greatest is (d,aaab).
    vocab, merges = train_bpe("aaabdaaabac", 260)
    assert merges == [(b"a", b"a"), (b"aa", b"a"), (b"aaa", b"b"), (b"d", b"aaab")]
    assert [vocab[i] for i in range(256, 260)] == [b"aa", b"aaa", b"aaab", b"daaab"]
    # HF breaks the first tie the other way, towards the smaller ids: (a, b) before (aa, a)
    assert hf_merges(hf_train_bpe("aaabdaaabac", 258))[1] == (b"a", b"b")


def test_tie_break_prefers_greatest_bytes():
    # words "cd" and " ab": all three pairs occur once; b"c" > b"a" > b" "
    _, merges = train_bpe("cd ab", 259)
    assert merges == [(b"c", b"d"), (b"a", b"b"), (b" ", b"ab")]


@pytest.mark.parametrize("seed", range(6))
def test_incremental_trainer_equals_naive(seed):
    rng = random.Random(seed)
    # few distinct words and small alphabets: many ties, many overlapping pairs ("aaaa")
    words = [random_text(rng, rng.randint(1, 6), extra=["a"] * 10) for _ in range(rng.randint(3, 30))]
    corpus = "".join(rng.choice(words) + rng.choice([" ", EOT, "\n"]) for _ in range(rng.randint(10, 300)))
    vocab_size = rng.randint(257, 400)
    vocab, merges = train_bpe(corpus, vocab_size, special_tokens=[EOT])
    assert merges == naive_train(corpus, vocab_size, [EOT])
    assert len(set(vocab.values())) == len(vocab) <= vocab_size  # one id per byte string
    assert vocab[256] == EOT.encode()


def test_trained_merges_are_most_frequent_pairs(shakespeare):
    _, merges = train_bpe(shakespeare[:60_000], 600)
    trace = merge_trace(shakespeare[:60_000], merges)
    assert all(count == top for count, top, _ in trace)  # every merge took a most frequent pair


def test_special_tokens_are_not_trained_on():
    vocab, merges = train_bpe(f"ab{EOT}ab{EOT}ab", 300, special_tokens=[EOT])
    assert merges == [(b"a", b"b")]  # "<|", "|>", ... never pair up: the special token is cut out first
    assert vocab[256] == EOT.encode() and len(vocab) == 258


def test_bad_sizes_and_empty_corpus():
    with pytest.raises(ValueError, match="at least 257"):
        train_bpe("hello", 256, special_tokens=[EOT])
    with pytest.raises(ValueError, match="at least 256"):
        train_bpe("hello", 100)
    with pytest.raises(ValueError, match="empty"):
        train_bpe("", 300)
    with pytest.raises(ValueError, match="empty"):
        train_bpe(EOT * 3, 300, special_tokens=[EOT])
    vocab, merges = train_bpe("a", 300)  # nothing to merge: the byte vocabulary alone
    assert len(vocab) == 256 and merges == []


# ---------------------------------------------------------------------------------------------
# encoding and decoding


@pytest.mark.parametrize("text", [
    "", "hello world", "床前明月光，疑是地上霜。", "emoji 😀👍🏽 and a family 👨‍👩‍👧", "café naïve e\u0301",
    "mixed 中文 and English, 123 456!\n\n\t  end  ", "    \n\n\n   ", "x" * 500])
def test_round_trip(trained, text):
    ids = trained.encode(text)
    assert trained.decode(ids) == text
    assert all(i in trained.vocab for i in ids)


def test_round_trip_random(trained):
    rng = random.Random(1)
    for _ in range(100):
        s = random_text(rng, rng.randint(0, 50))
        assert trained.decode(trained.encode(s)) == s


def test_decode_invalid_utf8_replaces(trained):
    emoji = trained.encode("😀")  # 4 bytes; as few tokens as the merges allow
    byte_ids = [trained.encode(chr(c))[0] for c in b"abc"]
    half = [trained._byte_ids[b] for b in "😀".encode()[:2]]  # the first 2 of the emoji's 4 bytes
    assert trained.decode(half + byte_ids) == "\ufffdabc"  # one U+FFFD for the broken sequence, as GPT-2
    assert trained.decode(emoji) == "😀"
    with pytest.raises(ValueError, match="unknown token id"):
        trained.decode([10**6])


def test_special_tokens_never_split(trained):
    eot = trained.special_ids[EOT]
    ids = trained.encode(f"hello{EOT}world {EOT}{EOT}")
    assert ids.count(eot) == 3 and ids[-2:] == [eot, eot]
    assert trained.decode(ids) == f"hello{EOT}world {EOT}{EOT}"
    plain = trained.encode(f"a{EOT}b", allowed_special="none")  # plain text: its bytes, BPE-merged
    assert eot not in plain and trained.decode(plain) == f"a{EOT}b"
    assert trained.encode(f"a{EOT}b", allowed_special={EOT}) == trained.encode(f"a{EOT}b")
    with pytest.raises(ValueError, match="not special tokens"):
        trained.encode("x", allowed_special={"<|nope|>"})


def test_longest_special_token_wins():
    double = EOT + EOT
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [], special_tokens=[EOT, double])
    assert tok.encode(EOT * 3) == [tok.special_ids[double], tok.special_ids[EOT]]


def test_encode_cache_is_bounded(shakespeare):
    vocab, merges = train_bpe(shakespeare[:30_000], 400)
    tok = Tokenizer(vocab, merges, cache_size=100)
    assert tok.decode(tok.encode(shakespeare[:50_000])) == shakespeare[:50_000]
    assert len(tok._cache) == 100  # the first 100 distinct pre-tokens, no more
    words = pretokenize(shakespeare[:50_000])
    # ... which include the most common words: they cover 48 % of this text (threshold 40 %)
    assert sum(w in tok._cache for w in words) > 0.4 * len(words)


def test_tokenizer_pickles(trained):
    again = pickle.loads(pickle.dumps(trained))  # e.g. for DataLoader worker processes
    assert again.encode(f"hello{EOT}世界") == trained.encode(f"hello{EOT}世界")


# ---------------------------------------------------------------------------------------------
# streaming


def test_encode_iterable_equals_encode_on_file(trained, shakespeare):
    with open(find("tinyshakespeare"), encoding="utf-8") as f:
        streamed = list(trained.encode_iterable(f))
    assert streamed == trained.encode(shakespeare)


def test_encode_iterable_chunk_boundaries(trained):
    # adversarial cuts: inside "'ll", inside whitespace runs, inside special tokens; tiny blocks
    assert list(trained.encode_iterable(["x'l", "l"], block_chars=1)) == trained.encode("x'll")
    assert list(trained.encode_iterable(["a  ", " \n", "b<|endof", "text|>c"], block_chars=1)) == \
        trained.encode(f"a   \nb{EOT}c")
    rng = random.Random(2)
    for _ in range(300):
        s = random_text(rng, rng.randint(0, 60), extra=[EOT, "<|end", "oftext|>"])
        cuts = sorted(rng.sample(range(len(s) + 1), k=min(len(s) + 1, rng.randint(0, 8))))
        chunks = [s[i:j] for i, j in zip([0] + cuts, cuts + [len(s)])]
        for allowed in ("all", "none"):
            assert list(trained.encode_iterable(chunks, allowed, block_chars=rng.randint(1, 10))) == \
                trained.encode(s, allowed), (chunks, allowed)


def test_encode_iterable_memory_is_bounded(trained, shakespeare):
    lines = shakespeare[:100_000].splitlines(keepends=True)

    def stream(repeats):  # ~100 KB of text per repeat, generated lazily
        for _ in range(repeats):
            yield from lines

    tracemalloc.start()
    n_small = sum(1 for _ in trained.encode_iterable(stream(1)))
    peak_small = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    n_big = sum(1 for _ in trained.encode_iterable(stream(5)))
    peak_big = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n_big == 5 * n_small
    # 5x the text, the same working set: a block of text, its pieces and the encode cache.
    # 200 KB of slack for allocator noise; the text as one string would add 400 KB.
    assert peak_big < peak_small + 200_000, (peak_small, peak_big)


# ---------------------------------------------------------------------------------------------
# agreement with HF tokenizers


@pytest.fixture(scope="module")
def corpora(shakespeare, tang):
    # excerpts whose first tie comes late (merge 66 and 40), found by scanning offsets with merge_trace
    return {"shakespeare": shakespeare[500_000:600_000], "tang": tang[300_000:340_000]}


@pytest.mark.parametrize("name", ["shakespeare", "tang"])
def test_merges_match_hf_until_the_first_tie(corpora, name):
    corpus = corpora[name]
    hf = hf_merges(hf_train_bpe(corpus, 336))  # 80 merges: past the first tie
    _, ours = train_bpe(corpus, 336)
    hf_trace = merge_trace(corpus, hf)
    t = first_tie(hf_trace)
    assert t >= 40  # these excerpts have >= 40 merges with a unique winner: a real comparison
    assert ours[:t] == hf[:t]
    if ours[t] != hf[t]:  # the first tie: same count, different rule
        assert merge_trace(corpus, ours[: t + 1])[t][0] == hf_trace[t][0]
        assert ours[t] > hf[t]


def test_exact_agreement_with_hf_when_tie_free(corpora):
    corpus = corpora["shakespeare"]
    t = first_tie(merge_trace(corpus, hf_merges(hf_train_bpe(corpus, 336))))
    hf_tok = hf_train_bpe(corpus, 256 + t)  # every merge has a unique winner: no rule can differ
    vocab, merges = train_bpe(corpus, 256 + t)
    assert merges == hf_merges(hf_tok)
    assert set(vocab.values()) == {as_bytes(s) for s in hf_tok.get_vocab()}
    text = load_text("tinyshakespeare")[500_000:520_000]  # held-out text, encoded as byte strings
    ours = Tokenizer(vocab, merges)
    assert [vocab[i] for i in ours.encode(text)] == [as_bytes(s) for s in hf_tok.encode(text).tokens]


def test_min_frequency_matches_hf(corpora):
    corpus = corpora["shakespeare"]
    trace = merge_trace(corpus, hf_merges(hf_train_bpe(corpus, 336)))
    min_frequency = trace[first_tie(trace)][0] + 1  # both stop before the first tie
    hf = hf_merges(hf_train_bpe(corpus, 1000, min_frequency=min_frequency))
    _, ours = train_bpe(corpus, 1000, min_frequency=min_frequency)
    assert ours == hf and 0 < len(ours) < 1000 - 256


@pytest.fixture(scope="module")
def hf_files(tmp_path_factory, shakespeare, tang):
    hf = hf_train_bpe([shakespeare[:200_000], tang[:50_000]], 1000, special_tokens=[EOT])
    folder = tmp_path_factory.mktemp("hf")
    hf.model.save(str(folder))
    return hf, folder / "vocab.json", folder / "merges.txt"


def test_hf_saved_files_encode_identically(hf_files, shakespeare):
    hf, vocab_path, merges_path = hf_files
    ours = load_gpt2_files(vocab_path, merges_path, special_tokens=[EOT])
    rng = random.Random(3)
    for _ in range(300):
        s = random_text(rng, rng.randint(0, 80), extra=[EOT])
        ids = ours.encode(s)
        assert ids == hf.encode(s).ids, repr(s)
        assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False) == s
    text = shakespeare[600_000:650_000]
    assert ours.encode(text) == hf.encode(text).ids
    broken = [rng.randrange(len(ours)) for _ in range(200)]  # random ids: invalid UTF-8 on the way
    assert ours.decode(broken) == hf.decode(broken, skip_special_tokens=False)


def test_saved_files_load_in_hf(trained, tmp_path, shakespeare, tang):
    vocab_path, merges_path = trained.save(tmp_path, prefix="ours")
    hf = HFTokenizer(models.BPE.from_file(vocab_path, merges_path))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.add_special_tokens([EOT])
    text = shakespeare[700_000:720_000] + EOT + tang[100_000:105_000]
    assert hf.encode(text).ids == trained.encode(text)
    again = load_gpt2_files(vocab_path, merges_path, special_tokens=[EOT])
    assert (again.vocab, again.merges, again.encode(text)) == (trained.vocab, trained.merges, trained.encode(text))
    assert json.loads(open(vocab_path, encoding="utf-8").read())["Ġthe"] == trained.encode(" the")[0]


def test_full_shakespeare_compresses_like_hf(shakespeare):
    # vocab 5000 on the whole corpus, both trainers. Ties (the first at merge 96) make the
    # merge lists differ, so compare what the tokenizers are for: bytes per token on the
    # training text. 0.5 % tolerance: two valid tie orders change a few late, rare merges.
    tok = Tokenizer.train(shakespeare, 5000)
    hf = hf_train_bpe(shakespeare, 5000)
    n_bytes = len(shakespeare.encode())
    ours, theirs = n_bytes / len(tok.encode(shakespeare)), n_bytes / len(hf.encode(shakespeare).ids)
    assert abs(ours / theirs - 1) < 0.005, (ours, theirs)
    assert len(tok) == 5000
