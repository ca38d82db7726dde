"""Byte-level BPE from scratch: Week 2's reference tokenizer (later weeks import it).

The recipe is GPT-2's (Radford et al., 2019):

1. **Special tokens** (``<|endoftext|>``, ...) are cut out of the text first; they are never split
   or merged, and training never sees them.
2. **Pre-tokenization**: GPT-2's regex splits the rest into words (``" the"``, ``"'s"``, ``"\\n"``);
   merges never cross a word boundary.
3. **Bytes**: every word is its UTF-8 bytes, so any string (Chinese, emoji) is representable
   with a base vocabulary of 256 tokens and nothing is ever unknown.
4. **Training** repeatedly merges the most frequent adjacent pair of tokens into a new token.
   Ties in the count go to the pair that is *greatest* as a tuple of byte strings,
   ``(vocab[a], vocab[b])`` compared with Python's ``bytes`` order (bytewise; a prefix sorts
   first), the rule of Stanford CS336's assignment 1. (minbpe's ``max(stats, key=stats.get)``
   instead keeps the first pair seen in the text; HF ``tokenizers`` keeps the pair with the
   smallest token ids. Without ties all three agree.)
   The trainer is incremental: it counts each distinct word once (a word-frequency table), keeps
   the pair counts in a dict with a max-heap beside it, and after a merge revisits only the words
   that contain the merged pair, where only the pairs next to each occurrence change.
   Tiny Shakespeare, vocab 5000, trains in about a second of CPU time.
5. **Encoding** applies the learned merges to each word in order of rank (lowest first), the way
   GPT-2's ``encoder.py`` and HF ``tokenizers`` do; frequent words hit a cache.
6. **Files**: GPT-2's ``vocab.json`` + ``merges.txt`` store tokens as printable strings through
   GPT-2's byte-to-unicode table; :func:`load_gpt2_files` and :meth:`Tokenizer.save` read and
   write them, so files saved by HF ``tokenizers`` load here and encode identically.

Token ids: training gives bytes 0-255 the ids 0-255, special tokens the next ids, and merged
tokens the ids after that. Should a merge rebuild a token that already exists (``"ab"+"c"`` after
``"a"+"bc"``), it adds a merge but no new id, as HF ``tokenizers`` does: the vocabulary stays a
one-to-one map between ids and byte strings, which is what ``vocab.json`` can store.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import os
from collections import Counter, defaultdict
from typing import Iterable, Iterator

import regex

# GPT-2's pre-tokenizer (openai/gpt-2 src/encoder.py; tiktoken's "r50k_base").
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_GPT2_RE = regex.compile(GPT2_SPLIT_PATTERN)

Vocab = dict[int, bytes]
Merges = list[tuple[bytes, bytes]]


# ---------------------------------------------------------------------------------------------
# text -> words


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into GPT-2 pre-tokens: ``"Hello, world"`` -> ``["Hello", ",", " world"]``."""
    return _GPT2_RE.findall(text)


def special_token_regex(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A regex that finds the special tokens (longest first, so one may contain another)."""
    return _special_token_regex(frozenset(special_tokens))


@functools.lru_cache(maxsize=64)
def _special_token_regex(tokens: frozenset[str]) -> regex.Pattern | None:
    if not tokens:
        return None
    return regex.compile("|".join(regex.escape(t) for t in sorted(tokens, key=lambda t: (-len(t), t))))


def count_words(corpus: str | Iterable[str], special_tokens: Iterable[str] = ()) -> Counter:
    """How often each pre-token occurs; special tokens are removed first and never counted.

    ``corpus`` is one string or an iterable of documents (pre-tokenized one by one).
    """
    special_re = special_token_regex(special_tokens)
    counts: Counter = Counter()
    for doc in [corpus] if isinstance(corpus, str) else corpus:
        for piece in special_re.split(doc) if special_re else [doc]:
            counts.update(_GPT2_RE.findall(piece))
    return counts


# ---------------------------------------------------------------------------------------------
# training


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, left to right, by ``new_id``.

    ``merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]``: occurrences do not overlap.
    """
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _descending(token: bytes) -> tuple[int, ...]:
    """A key that sorts byte strings in *reverse* bytes order (heapq is a min-heap).

    Each byte x becomes 255 - x, and the end of the string becomes 256, larger than any byte,
    so a prefix (smaller as bytes) sorts after its extensions.
    """
    return tuple(255 - x for x in token) + (256,)


class _PairIndex:
    """Pair counts over a word-frequency table, updated incrementally as pairs are merged.

    ``words[i]`` is a word as token ids and ``freqs[i]`` how often it occurs; ``counts[pair]`` the
    number of times ``pair`` occurs, adjacent, in the corpus; ``where[pair]`` the indices of the
    words that contain it (a superset: another merge may have used the pair up since; such a word
    comes out of :meth:`merge` unchanged).
    ``heap`` holds ``(-count, descending key of a, of b, pair)``; an entry whose count is no longer
    the pair's count is stale and dropped when it reaches the top (lazy deletion).
    """

    def __init__(self, words: list[list[int]], freqs: list[int], vocab: Vocab):
        self.words, self.freqs = words, freqs
        self.keys = {i: _descending(b) for i, b in vocab.items()}
        self.counts: dict[tuple[int, int], int] = defaultdict(int)
        self.where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for i, (word, freq) in enumerate(zip(words, freqs)):
            for pair in zip(word, word[1:]):
                self.counts[pair] += freq
                self.where[pair].add(i)
        self.heap = [self._entry(pair, c) for pair, c in self.counts.items()]
        heapq.heapify(self.heap)

    def _entry(self, pair: tuple[int, int], count: int) -> tuple:
        return (-count, self.keys[pair[0]], self.keys[pair[1]], pair)

    def best(self) -> tuple[tuple[int, int], int] | None:
        """The most frequent pair and its count (ties: greatest bytes), or None when none is left."""
        while self.heap:
            neg_count, _, _, pair = self.heap[0]
            if self.counts.get(pair) == -neg_count:
                return pair, -neg_count
            heapq.heappop(self.heap)  # stale
        return None

    def merge(self, pair: tuple[int, int], new_id: int, new_token: bytes) -> None:
        """Merge ``pair`` into ``new_id`` in every word that holds it; update counts and heap."""
        self.keys.setdefault(new_id, _descending(new_token))
        a, b = pair
        delta: dict[tuple[int, int], int] = defaultdict(int)
        where = self.where
        for i in where.pop(pair, ()):
            word, freq = self.words[i], self.freqs[i]
            out, j, n = [], 0, len(word)
            while True:  # merge_pair, updating the counts of the neighbouring pairs as it goes
                try:
                    k = word.index(a, j)  # the next `a` (list.index jumps there in C)
                except ValueError:
                    break
                out += word[j:k]
                if k + 1 < n and word[k + 1] == b:
                    delta[pair] -= freq
                    if out:  # left neighbour x: (x, a) becomes (x, new)
                        delta[out[-1], a] -= freq
                        delta[out[-1], new_id] += freq
                        where[out[-1], new_id].add(i)
                    if k + 2 < n:  # right neighbour y: (b, y) becomes (new, y); if y starts the next
                        delta[b, word[k + 2]] -= freq  # occurrence, the left case above fixes (new, a)
                        delta[new_id, word[k + 2]] += freq
                        where[new_id, word[k + 2]].add(i)
                    out.append(new_id)
                    j = k + 2
                else:
                    out.append(a)
                    j = k + 1
            self.words[i] = out + word[j:]  # unchanged if the pair left this word in an earlier merge
        for p, d in delta.items():
            if d == 0:
                continue
            count = self.counts[p] + d
            if count > 0:
                self.counts[p] = count
                heapq.heappush(self.heap, self._entry(p, count))
            else:
                del self.counts[p]


def train_bpe(
    corpus: str | Iterable[str],
    vocab_size: int,
    special_tokens: Iterable[str] = (),
    min_frequency: int = 1,
) -> tuple[Vocab, Merges]:
    """Learn a byte-level BPE vocabulary of ``vocab_size`` tokens (bytes + specials + merges).

    Merging stops early when no pair occurs ``min_frequency`` times (HF's ``min_frequency``).
    Returns ``vocab`` (id -> bytes) and ``merges`` (pairs of byte strings, in the order learned).
    """
    special_tokens = list(dict.fromkeys(special_tokens))
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level vocabulary needs the 256 bytes "
            f"plus {len(special_tokens)} special token(s), i.e. at least {256 + len(special_tokens)}"
        )
    word_counts = count_words(corpus, special_tokens)
    if not word_counts:
        raise ValueError("the training corpus is empty (no text left once special tokens are removed)")

    vocab: Vocab = {i: bytes([i]) for i in range(256)}
    for tok in special_tokens:
        vocab[len(vocab)] = tok.encode("utf-8")
    token_ids = {vocab[i]: i for i in range(256)}  # ordinary tokens only, bytes -> id
    words = [list(w.encode("utf-8")) for w in word_counts]
    index = _PairIndex(words, list(word_counts.values()), vocab)

    merges: Merges = []
    while len(vocab) < vocab_size:
        found = index.best()
        if found is None or found[1] < min_frequency:
            break
        (a, b), _ = found
        token = vocab[a] + vocab[b]
        new_id = token_ids.get(token)
        if new_id is None:  # a new token; else "ab"+"c" rebuilt an existing "abc"
            new_id = token_ids[token] = len(vocab)
            vocab[new_id] = token
        merges.append((vocab[a], vocab[b]))
        index.merge((a, b), new_id, token)
    return vocab, merges


# ---------------------------------------------------------------------------------------------
# GPT-2's file format


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to 256 printable characters.

    The 188 printable Latin-1 bytes map to themselves; the others (controls, space, ...) to
    U+0100 onwards in byte order, so that space is ``Ġ`` and newline ``Ċ``.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in table):
        table[b] = chr(256 + n)
    return table


_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


def _token_to_str(token: bytes) -> str:
    return "".join(_BYTE_TO_CHAR[b] for b in token)


def _str_to_token(text: str, where: str) -> bytes:
    try:
        return bytes(_CHAR_TO_BYTE[c] for c in text)
    except KeyError as e:
        raise ValueError(
            f"{where}: {text!r} has the character {e.args[0]!r}, which is not in GPT-2's byte-to-unicode "
            "table. If it is a special token, pass it in special_tokens."
        ) from None


def load_gpt2_files(vocab_path: str | os.PathLike, merges_path: str | os.PathLike,
                    special_tokens: Iterable[str] | None = None) -> "Tokenizer":
    """A :class:`Tokenizer` from GPT-2 style ``vocab.json`` + ``merges.txt`` (as HF ``tokenizers`` saves them).

    Special tokens are stored verbatim in ``vocab.json``; name them in ``special_tokens``.
    """
    special_tokens = list(special_tokens or [])
    with open(vocab_path, encoding="utf-8") as f:
        raw_vocab = json.load(f)
    vocab = {int(i): s.encode("utf-8") if s in special_tokens else _str_to_token(s, str(vocab_path))
             for s, i in raw_vocab.items()}
    merges: Merges = []
    with open(merges_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or (n == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{merges_path}:{n}: expected two tokens separated by one space, got {line!r}")
            merges.append((_str_to_token(parts[0], f"{merges_path}:{n}"), _str_to_token(parts[1], f"{merges_path}:{n}")))
    return Tokenizer(vocab, merges, special_tokens)


# ---------------------------------------------------------------------------------------------
# the tokenizer


class Tokenizer:
    """Encode text to token ids and back with a byte-level BPE vocabulary and its merges."""

    def __init__(self, vocab: Vocab, merges: Merges, special_tokens: Iterable[str] | None = None,
                 cache_size: int = 1 << 16):
        self.vocab: Vocab = dict(vocab)
        self.merges: Merges = list(merges)
        self.special_tokens = list(dict.fromkeys(special_tokens or []))
        by_bytes = {b: i for i, b in self.vocab.items()}
        self.special_ids: dict[str, int] = {}
        for tok in self.special_tokens:  # a special token missing from the vocabulary gets the next id
            i = by_bytes.get(tok.encode("utf-8"))
            if i is None:
                i = max(self.vocab, default=-1) + 1
                self.vocab[i] = tok.encode("utf-8")
            self.special_ids[tok] = i
        specials = set(self.special_ids.values())
        self._ids = {b: i for i, b in self.vocab.items() if i not in specials}  # ordinary bytes -> id
        missing = [b for b in range(256) if bytes([b]) not in self._ids]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} of the 256 single bytes (first: {bytes([missing[0]])!r})")
        self._byte_ids = [self._ids[bytes([b])] for b in range(256)]
        self._merge_rank: dict[tuple[int, int], int] = {}
        self._merge_id: dict[tuple[int, int], int] = {}
        for rank, (a, b) in enumerate(self.merges):
            if not (a in self._ids and b in self._ids and a + b in self._ids):
                raise ValueError(f"merge #{rank} {a!r} + {b!r}: the parts and the result must all be in the vocabulary")
            pair = (self._ids[a], self._ids[b])
            self._merge_rank.setdefault(pair, rank)
            self._merge_id.setdefault(pair, self._ids[a + b])
        self._longest_special = max((len(t) for t in self.special_tokens), default=0)
        self.cache_size = cache_size
        self._cache: dict[str, tuple[int, ...]] = {}  # pre-token -> ids; a plain dict keeps the tokenizer picklable

    @classmethod
    def train(cls, corpus: str | Iterable[str], vocab_size: int, special_tokens: Iterable[str] = (),
              min_frequency: int = 1) -> "Tokenizer":
        """Train with :func:`train_bpe` and wrap the result."""
        special_tokens = list(special_tokens)
        vocab, merges = train_bpe(corpus, vocab_size, special_tokens, min_frequency)
        return cls(vocab, merges, special_tokens)

    from_gpt2_files = staticmethod(load_gpt2_files)

    def __len__(self) -> int:
        return len(self.vocab)

    # --- encoding -------------------------------------------------------------------------

    def _bpe(self, word: str) -> tuple[int, ...]:
        """Token ids of one pre-token, from the cache when possible.

        The cache keeps the first ``cache_size`` distinct pre-tokens it meets; in natural text
        those include the frequent ones, which is where caching pays.
        """
        ids = self._cache.get(word)
        if ids is None:
            ids = self._bpe_uncached(word)
            if len(self._cache) < self.cache_size:
                self._cache[word] = ids
        return ids

    def _bpe_uncached(self, word: str) -> tuple[int, ...]:
        """Token ids of one pre-token: apply the merges present in it, lowest rank first."""
        ids = [self._byte_ids[b] for b in word.encode("utf-8")]
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self._merge_rank.get(p, math.inf))
            if pair not in self._merge_rank:
                break
            ids = merge_pair(ids, pair, self._merge_id[pair])
        return tuple(ids)

    def _special_regex(self, allowed_special) -> regex.Pattern | None:
        """``"all"``: every special token is special; ``"none"``: all are plain text; a set: those."""
        if allowed_special == "all":
            return special_token_regex(self.special_tokens)
        if allowed_special == "none":
            return None
        if isinstance(allowed_special, str):
            raise ValueError(f'allowed_special must be "all", "none" or a set of special tokens, not {allowed_special!r}')
        unknown = set(allowed_special) - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names {sorted(unknown)}, which are not special tokens of this tokenizer")
        return special_token_regex(allowed_special)

    def _pieces(self, text: str, special_re: regex.Pattern | None) -> Iterator[tuple[int, tuple[int, ...]]]:
        """(end offset, token ids) of each special token and each pre-token of ``text``, in order."""
        start = 0
        for m in special_re.finditer(text) if special_re else ():
            for w in _GPT2_RE.finditer(text, start, m.start()):
                yield w.end(), self._bpe(w.group())
            yield m.end(), (self.special_ids[m.group()],)
            start = m.end()
        for w in _GPT2_RE.finditer(text, start, len(text)):
            yield w.end(), self._bpe(w.group())

    def encode(self, text: str, allowed_special="all") -> list[int]:
        """Token ids of ``text``.

        ``allowed_special`` says which special tokens in the text become their own ids, as in
        tiktoken: ``"all"`` (the default here), ``"none"`` (all are encoded as ordinary text, like
        tiktoken's ``encode_ordinary``), or a set of them. Unlike tiktoken, nothing raises when a
        special token is not allowed: it is simply text.
        """
        return [i for _, ids in self._pieces(text, self._special_regex(allowed_special)) for i in ids]

    def encode_iterable(self, iterable: Iterable[str], allowed_special="all", block_chars: int = 1 << 16) -> Iterator[int]:
        """Lazily encode a stream of strings (e.g. an open file's lines) as if it were one string.

        Memory stays bounded by about ``block_chars`` characters (plus the longest pre-token): text
        is buffered, and only the pieces whose end lies more than ``margin`` characters before the end
        of the buffer are emitted. That is safe because the GPT-2 regex decides a match looking at
        most 3 characters past its start ('ll, 've, 're) and 1 past its end, and a special token
        that starts before the margin ends inside the buffer.
        """
        special_re = self._special_regex(allowed_special)
        margin = self._longest_special + 3
        buf, threshold = "", block_chars
        for chunk in iterable:
            buf += chunk
            if len(buf) < threshold:
                continue
            cut, horizon = 0, len(buf) - margin
            for end, ids in self._pieces(buf, special_re):
                if end > horizon:
                    break
                yield from ids
                cut = end
            buf = buf[cut:]
            threshold = max(block_chars, 2 * len(buf))  # one huge pre-token: rescan rarely
        for _, ids in self._pieces(buf, special_re):
            yield from ids

    # --- decoding and saving --------------------------------------------------------------

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """The text of ``ids``. Bytes that are not valid UTF-8 (half a character) become U+FFFD, as in GPT-2."""
        try:
            data = b"".join(self.vocab[i] for i in ids)
        except KeyError as e:
            raise ValueError(f"unknown token id {e.args[0]} (vocabulary size {len(self.vocab)})") from None
        return data.decode("utf-8", errors=errors)

    def save(self, directory: str | os.PathLike, prefix: str | None = None) -> tuple[str, str]:
        """Write GPT-2 style ``vocab.json`` and ``merges.txt`` into ``directory``; return their paths."""
        os.makedirs(directory, exist_ok=True)
        name = f"{prefix}-" if prefix else ""
        vocab_path = os.path.join(directory, f"{name}vocab.json")
        merges_path = os.path.join(directory, f"{name}merges.txt")
        special_of = {i: tok for tok, i in self.special_ids.items()}
        strings = {special_of.get(i) or _token_to_str(b): i for i, b in sorted(self.vocab.items())}
        if len(strings) != len(self.vocab):
            raise ValueError("two token ids have the same string; vocab.json cannot store that")
        with open(vocab_path, "w", encoding="utf-8") as f:
            json.dump(strings, f, ensure_ascii=False)
        with open(merges_path, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(f"{_token_to_str(a)} {_token_to_str(b)}\n" for a, b in self.merges)
        return vocab_path, merges_path


# ---------------------------------------------------------------------------------------------
# checking a trainer against another one (tests, the Week 2 notebook, the benchmark)


def merge_trace(corpus: str | Iterable[str], merges: Merges, special_tokens: Iterable[str] = ()) -> list[tuple[int, int, int]]:
    """Replay ``merges`` on ``corpus``: per merge, (its pair's count, the largest count, how many pairs have it).

    A correct trainer has count == largest at every step; the steps with more than one pair at the
    largest count are where a tie-break rule decided, and where two correct trainers with different
    rules part ways. For small corpora: each step scans every pair count.
    """
    word_counts = count_words(corpus, special_tokens)
    vocab: Vocab = {i: bytes([i]) for i in range(256)}
    ids = {b: i for i, b in vocab.items()}
    index = _PairIndex([list(w.encode("utf-8")) for w in word_counts], list(word_counts.values()), vocab)
    trace = []
    for step, (a, b) in enumerate(merges):
        if a not in ids or b not in ids:
            raise ValueError(f"merge #{step} {a!r} + {b!r} uses a token that no earlier merge made")
        pair = (ids[a], ids[b])
        top = max(index.counts.values(), default=0)
        trace.append((index.counts.get(pair, 0), top, sum(c == top for c in index.counts.values())))
        new_id = ids.setdefault(a + b, len(vocab))
        vocab[new_id] = a + b
        index.merge(pair, new_id, a + b)
    return trace


def first_tie(trace: list[tuple[int, int, int]]) -> int:
    """Index of the first step of a :func:`merge_trace` whose largest count was shared (len(trace) if none)."""
    return next((i for i, (_, _, n_tied) in enumerate(trace) if n_tied > 1), len(trace))


def hf_train_bpe(corpus: str | Iterable[str], vocab_size: int, special_tokens: Iterable[str] = (), min_frequency: int = 0):
    """The same training in HF ``tokenizers``: a ``tokenizers.Tokenizer`` to compare with.

    BPE model, ByteLevel pre-tokenizer (GPT-2's regex, ``add_prefix_space=False``), no normalizer,
    all 256 bytes as the initial alphabet. Its ids differ from :func:`train_bpe`'s (special tokens
    first, then the bytes in GPT-2's table order) and it breaks ties towards the *smallest* ids.
    """
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([corpus] if isinstance(corpus, str) else corpus, trainer)
    return tok


def hf_merges(hf_tokenizer) -> Merges:
    """The merges of a HF byte-level BPE ``tokenizers.Tokenizer`` as pairs of byte strings."""
    merges = json.loads(hf_tokenizer.to_str())["model"]["merges"]
    pairs = (m.split(" ") if isinstance(m, str) else m for m in merges)
    return [(_str_to_token(a, "merges"), _str_to_token(b, "merges")) for a, b in pairs]
