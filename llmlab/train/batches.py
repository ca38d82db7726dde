"""Week 1-2 reference: token ids on disk, and random training windows (the batches of every LM run).

A tokenised corpus is stored as nanoGPT stores it: a flat file of ``uint16`` token ids
(2 bytes per token, no header), read back with ``np.memmap`` so that a corpus larger than RAM
costs nothing to open. ``uint16`` holds ids 0..65535, which covers GPT-2's 50,257-token vocabulary;
a larger vocabulary is refused rather than silently wrapped around.

A dataset folder (what :func:`prepare_dataset` writes and ``python -m llmlab.train.cli`` reads) holds::

    train.bin   val.bin   meta.json   # meta: vocab_size, tokenizer ("char" or "byte"), the char table

Run ``python -m llmlab.train.batches --corpus tinyshakespeare --tokenizer char --out runs/data/shakespeare_char``
to build one.

:func:`get_batch` draws windows from a 1-D token tensor (Week 1) or a memmap (Week 2) alike;
:class:`RandomWindows` is the same draw as an endless, checkpointable stream, the ``batches=`` of a
:class:`llmlab.train.Trainer` for language-model pretraining.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from ..tokenization.char import CharTokenizer

DTYPE = np.uint16
MAX_VOCAB = int(np.iinfo(DTYPE).max) + 1  # 65536 ids: 0..65535


class TokenDataError(ValueError):
    """A token file or dataset folder that cannot be used (empty, too short, wrong vocabulary)."""


def write_tokens(path: str | os.PathLike, ids, vocab_size: int) -> Path:
    """Write token ids to ``path`` as raw ``uint16`` through ``np.memmap``; returns the path.

    The file is written to ``<path>.tmp`` and renamed at the end, so a crash never leaves a
    half-written ``.bin`` behind under the real name.
    """
    if vocab_size > MAX_VOCAB:
        raise TokenDataError(
            f"vocab_size={vocab_size} does not fit in uint16 (at most {MAX_VOCAB} ids, 0..{MAX_VOCAB - 1}); "
            "use a smaller vocabulary or a uint32 format"
        )
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise TokenDataError(f"token ids must be a flat sequence, got shape {arr.shape}")
    if arr.size == 0:
        raise TokenDataError(f"refusing to write {path}: there are no tokens (empty corpus?)")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TokenDataError(f"token ids must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= vocab_size:
        raise TokenDataError(f"token ids must lie in [0, {vocab_size}), got min {lo}, max {hi}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    mm = np.memmap(tmp, dtype=DTYPE, mode="w+", shape=(arr.size,))
    mm[:] = arr  # values checked above: the cast to uint16 is exact
    mm.flush()
    del mm  # close the mapping before the rename (needed on Windows)
    os.replace(tmp, path)
    return path


def read_tokens(path: str | os.PathLike) -> np.memmap:
    """The ids in a ``.bin`` written by :func:`write_tokens`, as a read-only ``uint16`` memmap."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"token file {path} does not exist (build it with llmlab.train.batches.prepare_dataset)")
    size = path.stat().st_size
    if size == 0:
        raise TokenDataError(f"token file {path} is empty (was the corpus empty?)")
    if size % np.dtype(DTYPE).itemsize:
        raise TokenDataError(f"token file {path} has {size} bytes, not a whole number of uint16 ids: truncated or not a token file")
    return np.memmap(path, dtype=DTYPE, mode="r")


def get_batch(data, block_size: int, batch_size: int, generator: torch.Generator | None = None,
              device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``block_size`` tokens and the same windows shifted by one.

    x[b] = data[i_b : i_b + block_size], y[b] = data[i_b + 1 : i_b + block_size + 1], with the starts
    i_b drawn by ``torch.randint(len(data) - block_size, (batch_size,), generator=generator)``.
    ``data`` is a 1-D tensor or a NumPy array / memmap of token ids. Both outputs are int64 (what
    ``nn.Embedding`` and the loss want), shape (batch_size, block_size).
    """
    n = len(data)
    if n <= block_size:
        raise TokenDataError(f"the data holds {n} tokens; a window needs block_size + 1 = {block_size + 1}")
    ix = torch.randint(n - block_size, (batch_size,), generator=generator)  # (B,)
    if isinstance(data, torch.Tensor):
        windows = data.unfold(0, block_size + 1, 1)[ix]  # (B, T+1): a view of every window, then a gather
        x, y = windows[:, :-1].long().contiguous(), windows[:, 1:].long().contiguous()
    else:  # a memmap: read only the windows drawn
        x = torch.stack([torch.from_numpy(np.asarray(data[i:i + block_size], dtype=np.int64)) for i in ix.tolist()])
        y = torch.stack([torch.from_numpy(np.asarray(data[i + 1:i + 1 + block_size], dtype=np.int64)) for i in ix.tolist()])
    device = torch.device(device)
    if device.type == "cuda":  # pinned host memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def train_val_split(data: torch.Tensor, frac: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``frac`` of the tokens for training, the rest for validation (no shuffling:
    shuffling characters would leak the validation text into training)."""
    n = int(frac * len(data))
    return data[:n], data[n:]


class RandomWindows:
    """An endless stream of :func:`get_batch` draws: ``next(windows)`` is one (x, y) batch.

    The generator is the only state (seeded with ``seed``), so a checkpoint of ``generator.get_state()``
    resumes the stream exactly. :meth:`fixed` gives evaluation batches that are the same at every call.
    """

    def __init__(self, data, block_size: int, batch_size: int, seed: int = 0, device: str | torch.device = "cpu"):
        self.data, self.block_size, self.batch_size, self.device = data, block_size, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return get_batch(self.data, self.block_size, self.batch_size, self.generator, self.device)

    def fixed(self, n_batches: int, seed: int, batch_size: int | None = None):
        """A function returning the same ``n_batches`` batches each time (a fresh generator seeded ``seed``)."""
        def batches():
            gen = torch.Generator().manual_seed(seed)
            return [get_batch(self.data, self.block_size, batch_size or self.batch_size, gen, self.device)
                    for _ in range(n_batches)]
        return batches


# ---------------------------------------------------------------------------------------------
# the two tokenizers the course uses before Week 2's BPE: characters (CharTokenizer) and UTF-8 bytes


def encode(text: str, tokenizer: str, chars: list[str] | None = None) -> np.ndarray:
    """``text`` as int64 ids: UTF-8 bytes ("byte") or :class:`CharTokenizer` ids over ``chars`` ("char")."""
    if tokenizer == "byte":
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    if tokenizer == "char":
        return CharTokenizer(chars).encode_tensor(text).numpy()
    raise ValueError(f"tokenizer must be 'char' or 'byte', got {tokenizer!r}")


def decoder(meta: dict):
    """A function ids -> text for a dataset's ``meta.json`` (None if the tokenizer is unknown)."""
    if meta.get("tokenizer") == "char":
        return CharTokenizer(meta["chars"]).decode
    if meta.get("tokenizer") == "byte":
        return lambda ids: bytes(ids).decode("utf-8", errors="replace")
    return None


def prepare_dataset(text: str, out_dir: str | os.PathLike, tokenizer: str = "char", val_fraction: float = 0.1) -> dict:
    """Tokenise ``text``, write ``train.bin`` / ``val.bin`` (the last ``val_fraction``) and ``meta.json``."""
    if not text:
        raise TokenDataError("the corpus is empty: there is nothing to tokenise")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    chars = CharTokenizer.from_text(text).chars if tokenizer == "char" else None
    ids = encode(text, tokenizer, chars)
    vocab_size = len(chars) if tokenizer == "char" else 256
    n_val = int(len(ids) * val_fraction)
    if n_val < 2 or len(ids) - n_val < 2:
        raise TokenDataError(f"the corpus has only {len(ids)} tokens: too few to split into train and val")
    out = Path(out_dir)
    write_tokens(out / "train.bin", ids[:-n_val], vocab_size)
    write_tokens(out / "val.bin", ids[-n_val:], vocab_size)
    meta = {"vocab_size": vocab_size, "tokenizer": tokenizer, "dtype": "uint16",
            "n_train": int(len(ids) - n_val), "n_val": int(n_val)}
    if chars is not None:
        meta["chars"] = chars
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, out / "meta.json")
    return meta


def load_meta(data_dir: str | os.PathLike) -> dict:
    p = Path(data_dir) / "meta.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist: is {data_dir} a dataset folder written by llmlab.train.batches?")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TokenDataError(f"{p} is not valid JSON ({e})") from e


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Tokenise a course corpus (or a text file) into train.bin / val.bin / meta.json")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", help="a corpus name known to llmlab.data (tinyshakespeare, quantangshi)")
    src.add_argument("--text-file", help="any UTF-8 text file")
    ap.add_argument("--tokenizer", choices=["char", "byte"], default="char")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--out", required=True, help="the dataset folder to write")
    args = ap.parse_args(argv)
    if args.corpus:
        from ..data import load_text

        text = load_text(args.corpus)
    else:
        text = Path(args.text_file).read_text(encoding="utf-8")
    meta = prepare_dataset(text, args.out, args.tokenizer, args.val_fraction)
    print(f"wrote {args.out}: vocab {meta['vocab_size']} ({meta['tokenizer']}), "
          f"{meta['n_train']:,} train / {meta['n_val']:,} val tokens")


if __name__ == "__main__":
    main()
