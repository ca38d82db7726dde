"""One token per character: the tokenizer of Week 1's char-level GPT (and of the zoo's char models).

The sorted set of characters of a text is the vocabulary; ids are positions in that list, so
``CharTokenizer.from_text(shakespeare)`` gives the 65 ids that nanoGPT's ``shakespeare_char`` uses.
:func:`llmlab.zoo.char_hf_tokenizer` wraps the same ids as a ``transformers`` tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


class CharTokenizer:
    """One token per character: the sorted set of characters of a text is the vocabulary."""

    def __init__(self, chars):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("the vocabulary holds a character twice")
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> list[int]:
        try:
            return [self.stoi[c] for c in s]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.itos[int(i)] for i in ids)

    def encode_tensor(self, s: str) -> torch.Tensor:
        """``encode`` as a 1-D int64 tensor, vectorised (a whole corpus in a fraction of a second)."""
        codes = torch.from_numpy(np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.int64))  # code points
        lut = torch.full((max(map(ord, self.chars), default=0) + 1,), -1, dtype=torch.long)  # code point -> id
        lut[torch.tensor([ord(c) for c in self.chars], dtype=torch.long)] = torch.arange(self.vocab_size)
        if len(codes) and (codes.max() >= len(lut) or (lut[codes.clamp(max=len(lut) - 1)] < 0).any()):
            self.encode(s)  # raises the readable error
        return lut[codes]

    def save(self, path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path) -> "CharTokenizer":
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
        if obj.get("type") != "char":
            raise ValueError(f"{path} is not a CharTokenizer file")
        return cls(obj["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
