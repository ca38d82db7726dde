"""Week 2: byte-level BPE with the Hugging Face ``tokenizers`` library, saved for ``transformers``.

``llmlab.tokenization.bpe`` builds the same tokenizer from scratch; this module is the fast (Rust) path that
later weeks use to get a real tokenizer in well under a second::

    tok = train_bytelevel_bpe([text], vocab_size=2000)      # a tokenizers.Tokenizer
    hf = to_hf(tok)                                          # a transformers PreTrainedTokenizerFast
    hf.save_pretrained("runs/tok/shakespeare_bpe2k")         # tokenizer.json + tokenizer_config.json
    hf = AutoTokenizer.from_pretrained("runs/tok/shakespeare_bpe2k")   # offline, anywhere

The recipe is GPT-2's: no normalizer (the text is kept byte for byte), the ByteLevel pre-tokenizer
(GPT-2's regex, then every UTF-8 byte shown as one printable character: space is ``Ġ``), a BPE model
that starts from all 256 bytes (so nothing is ever unknown: Chinese, emoji, control characters),
and the ByteLevel decoder that turns the printable characters back into bytes. Special tokens get
the first ids (``<|endoftext|>`` = 0, ``<|pad|>`` = 1) and are never split.

Or from the shell::

    python -m llmlab.tokenization.hf --corpus tinyshakespeare --vocab-size 2000 --out runs/tok/shakespeare_bpe2k
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (EOS, PAD)


def train_bytelevel_bpe(texts: str | Iterable[str], vocab_size: int, special_tokens: Iterable[str] = SPECIAL_TOKENS,
                        min_frequency: int = 0) -> Tokenizer:
    """Train a GPT-2-style byte-level BPE tokenizer with exactly ``vocab_size`` tokens.

    ``texts``: one string, or an iterable of strings (documents; merges never cross a document or a
    pre-token boundary). Special tokens in the texts (documents joined by ``<|endoftext|>``) are cut
    out first: HF's trainer would otherwise learn merges for their pieces (``"<|"``, ``"endoftext"``).
    ``vocab_size`` counts the 256 bytes, the special tokens and the merges; training stops early
    only when no pair is left to merge (a tiny corpus). Deterministic: the same texts give the same
    vocabulary and merges.
    """
    special_tokens = list(dict.fromkeys(special_tokens))
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size={vocab_size} is too small: byte-level BPE needs the 256 bytes plus "
                         f"{len(special_tokens)} special token(s), i.e. at least {256 + len(special_tokens)}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen in training or not
        show_progress=False,  # the progress bar goes to stderr
    )
    texts = [texts] if isinstance(texts, str) else texts
    if special_tokens:
        texts = _split_on(texts, special_tokens)
    tok.train_from_iterator(texts, trainer)
    return tok


def _split_on(texts: Iterable[str], special_tokens: list[str]) -> Iterator[str]:
    pattern = re.compile("|".join(re.escape(t) for t in sorted(special_tokens, key=len, reverse=True)))
    for text in texts:
        yield from (piece for piece in pattern.split(text) if piece)


def to_hf(tokenizer: Tokenizer, eos_token: str = EOS, pad_token: str | None = PAD, model_max_length: int | None = None):
    """Wrap a trained ``tokenizers.Tokenizer`` as a ``transformers`` ``PreTrainedTokenizerFast``.

    ``eos_token`` and ``pad_token`` must already be tokens of ``tokenizer`` (pass them as special tokens
    when training); ``pad_token=None`` means no padding token. The result pads on the right.
    """
    from transformers import PreTrainedTokenizerFast

    for name, token in (("eos_token", eos_token), ("pad_token", pad_token)):
        if token is not None and tokenizer.token_to_id(token) is None:
            raise ValueError(f"{name} {token!r} is not in the tokenizer's vocabulary; train with it as a special token")
    kwargs = {"eos_token": eos_token, "padding_side": "right"}
    if pad_token is not None:
        kwargs["pad_token"] = pad_token
    if model_max_length is not None:
        kwargs["model_max_length"] = model_max_length
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **kwargs)


def load(path: str | os.PathLike):
    """Load a tokenizer folder written by ``save_pretrained`` (offline: a local folder needs no hub)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def compression(tokenizer: Tokenizer, text: str) -> dict[str, float]:
    """How well ``tokenizer`` compresses ``text``: UTF-8 bytes per token and tokens per character."""
    n_tokens = len(tokenizer.encode(text).ids)
    n_bytes, n_chars = len(text.encode("utf-8")), len(text)
    return {"n_chars": n_chars, "n_bytes": n_bytes, "n_tokens": n_tokens,
            "bytes_per_token": n_bytes / max(n_tokens, 1), "tokens_per_char": n_tokens / max(n_chars, 1)}


def token_bytes(tokenizer: Tokenizer, token_id: int) -> bytes:
    """The raw bytes behind one token id (``"Ġthe"`` -> ``b" the"``; half a Chinese character is fine)."""
    from .bpe import bytes_to_unicode

    token = tokenizer.id_to_token(token_id)
    if token is None:
        raise KeyError(f"token id {token_id} is not in the vocabulary (size {tokenizer.get_vocab_size()})")
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    if any(c not in decoder for c in token):  # a special token: stored as plain text
        return token.encode("utf-8")
    return bytes(decoder[c] for c in token)


def main(argv: list[str] | None = None) -> None:
    from ..data import load_text

    p = argparse.ArgumentParser(description="Train a byte-level BPE tokenizer and save it for transformers.")
    p.add_argument("--corpus", default="tinyshakespeare", help="a corpus name for llmlab.data.load_text")
    p.add_argument("--path", default=None, help="a text file to use instead of a named corpus")
    p.add_argument("--max-chars", type=int, default=None, help="train on the first N characters only")
    p.add_argument("--vocab-size", type=int, default=2000)
    p.add_argument("--out", required=True, help="folder for tokenizer.json + tokenizer_config.json")
    a = p.parse_args(argv)
    text = load_text(a.corpus, path=a.path)[: a.max_chars]
    hf = to_hf(train_bytelevel_bpe([text], a.vocab_size))
    hf.save_pretrained(a.out)
    stats = compression(hf.backend_tokenizer, text[:200_000])
    print(f"saved a {len(hf)}-token byte-level BPE tokenizer to {Path(a.out)} "
          f"({stats['bytes_per_token']:.2f} bytes/token on the first 200k characters)")


if __name__ == "__main__":
    main()
