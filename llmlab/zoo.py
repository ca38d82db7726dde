"""The course model zoo: small GPTs that later weeks fine-tune, align, serve and evaluate.

::

    from llmlab import zoo
    path = zoo.pretrained("tang-poetry")          # a folder in Hugging Face format
    hf = AutoModelForCausalLM.from_pretrained(path)   # a transformers GPT2LMHeadModel
    tok = AutoTokenizer.from_pretrained(path)         # a PreTrainedTokenizerFast
    model, tok = zoo.load("shakespeare-char")     # the same weights as a course llmlab.models.gpt.GPT

A model that is not in the cache is **trained on the spot** by :mod:`llmlab.train.trainer`, with a fixed
seed and a fixed configuration for the size tier (:func:`llmlab.config.tier`), then cached under
``$LLMLAB_CACHE/zoo/<name>-<tier>/`` (default ``~/.cache/llmlab/zoo``):

========  =====================================================  ===========================
tier      what it is for                                          cost
========  =====================================================  ===========================
fast      tests and autograding (``LLMLAB_FAST=1``): a toy        seconds
cpu       the default: a model worth fine-tuning and serving      10-20 minutes per model (2 cores)
gpu       a CUDA/MPS machine: ~10M parameters, trained longer     minutes on a GPU
========  =====================================================  ===========================

The models (``MODELS``):

- ``shakespeare-char``: Tiny Shakespeare, one token per character (the 65 characters of
  :class:`llmlab.tokenization.char.CharTokenizer`, ids unchanged, plus 3 special tokens at the end).
- ``shakespeare-bpe``: Tiny Shakespeare, GPT-2-style byte-level BPE (:mod:`llmlab.tokenization.hf`).
- ``tang-poetry``: 全唐诗, one token per **character**. Why not byte-level BPE: a Chinese character
  already is a unit of meaning and sound, and 9.5k of them cover the corpus, so a BPE vocabulary of
  4-8k spends most of its merges rebuilding characters from their 3 UTF-8 bytes (0.9-0.97 tokens
  per character: no compression to speak of), splits the rarer characters into byte tokens that a
  small model can recombine into invalid UTF-8, merges across character boundaries (``即是``,
  ``一作``), which breaks "5 tokens = 5 characters" when generating a 五言 verse, and takes ~2
  minutes to train on this corpus against well under a second for the character table. Poems are
  separated by ``<|endoftext|>`` so that generation can stop at the end of a poem, and the editors'
  variant notes in full-width parentheses (``（一作「華」）``, 6 % of the text) are removed.
- ``llama-base`` (Week 4): the Llama architecture (:mod:`llmlab.models.llama`; a ``LlamaForCausalLM`` in
  Hugging Face format) pretrained on Tiny Shakespeare and 全唐诗 (half of every batch from each), with a
  byte-level BPE in which each Chinese character is a pre-token (:func:`han_bpe_tokenizer`), the chat tokens
  ``<|system|> <|user|> <|assistant|> <|end|>`` reserved and a chat template in ``tokenizer_config.json``
  (``tokenizer.apply_chat_template`` works; generation stops at ``<|endoftext|>`` or ``<|end|>``).
- ``llama-draft`` (Week 6): the draft model of speculative decoding: a Llama of 1 narrow layer (FAST and CPU tiers;
  CPU tier: 0.57M parameters against 1.79M, val loss 5.66 against 5.18, half the CPU time per decoded token, since
  the 8k-token output layer and Python's overhead do not shrink with the layers) trained exactly as ``llama-base`` (same corpora,
  same batches, the same :class:`llmlab.train.trainer.Trainer` loop), with ``llama-base``'s own tokenizer (loaded from
  the same tier and cache, so that token ids mean the same in both models).
- ``llama-draft-chat`` (Week 6): ``llama-draft`` after exactly ``llama-chat``'s SFT recipe: the draft of ``llama-chat``
  (a draft pretrained only proposes pretraining-style text, which the chat model rarely accepts).
- ``llama-chat`` (Week 4): ``llama-base`` (same tier, same cache) after supervised fine-tuning on the chat-formatted
  course tasks (:mod:`llmlab.tasks`) with ``peft.LoraConfig`` + TRL's ``SFTTrainer``, loss on the assistant tokens
  only, the adapter merged (:func:`llmlab.finetune.chat_model.build_chat`, the run of Week 4's notebook 4). Same
  tokenizer and chat template; ``generation_config.eos_token_id`` holds ``<|end|>``; ``adapter/`` keeps the LoRA
  adapter alone; ``zoo.json`` records the verifiers' pass rates per task before and after (``pass_rate_before``,
  ``pass_rate_after``), ``eval.jsonl`` every validation prompt with both responses.

Each folder holds ``config.json`` + ``model.safetensors`` (GPT-2 architecture, written by
:func:`llmlab.models.gpt.to_hf_gpt2`), ``tokenizer.json`` + ``tokenizer_config.json``,
``generation_config.json``, the training log ``metrics.csv`` and ``zoo.json``: the configuration,
the validation loss / perplexity / bits per character on the held-out text, the training time, and
the largest logit difference between the course model and the reloaded Hugging Face model
(checked to be below 1e-4 before the folder is published).

Caching is safe under concurrency: a build holds a lock file (other processes wait for it instead of
training the same model twice), writes into a temporary folder next to the final one, and publishes
it with one atomic ``rename``; a folder under the final name is always complete.

From the shell: ``python -m llmlab.zoo tang-poetry [--tier cpu] [--force]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .tokenization.char import CharTokenizer
from .config import tier as current_tier
from .data import cache_dir, load_text
from .models.gpt import GPT, GPTConfig, from_hf_gpt2, to_hf_gpt2

EOS, PAD, UNK = "<|endoftext|>", "<|pad|>", "<|unk|>"
CHAR_SPECIALS = (EOS, PAD, UNK)  # appended after the characters: ids V, V+1, V+2
TIERS = ("fast", "cpu", "gpu")
SEED = 1337
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "zoo.json")
LOGIT_TOLERANCE = 1e-4  # course GPT vs reloaded HF GPT-2; float32 round-off is ~1e-5 (see build)


class ZooError(RuntimeError):
    """An unknown model name or tier, or a cached folder that is incomplete."""


# ---------------------------------------------------------------------------------------------
# the catalogue


@dataclass(frozen=True)
class ModelSpec:
    name: str
    corpus: str  # a llmlab.data corpus name
    tokenizer: str  # "char" or "bpe"
    description: str
    bpe_vocab: dict = field(default_factory=dict)  # tier -> BPE vocabulary size (bpe only)
    tiers: dict = field(default_factory=dict)  # tier -> llmlab.train.TrainConfig overrides
    arch: str = "gpt2"  # "gpt2": llmlab.models.gpt.GPT trained by llmlab.train; "llama": see _build_llama below;
    # "chat": LoRA-SFT of the zoo model `base` (same tier) by llmlab.finetune.chat_model; tiers hold SFTSettings fields
    base: str | None = None
    tokenizer_of: str | None = None  # "llama": reuse that zoo model's tokenizer (same tier) instead of training one


_COMMON = dict(optimizer="torch", weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, log_interval=10)
_FAST = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.0, batch_size=8, max_steps=30,
             max_lr=3e-3, min_lr=3e-4, warmup_steps=5, eval_interval=15, eval_batches=2, device="cpu",
             threads=1)  # tiny tensors: a second thread only adds synchronisation (and stalls on a busy machine)

MODELS: dict[str, ModelSpec] = {
    "shakespeare-char": ModelSpec(
        "shakespeare-char", "tinyshakespeare", "char",
        "Tiny Shakespeare, character-level (65 characters + 3 special tokens)",
        tiers=dict(
            fast=_FAST,
            cpu=dict(n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0, batch_size=32, max_steps=2000,
                     max_lr=2e-3, min_lr=2e-4, warmup_steps=100, eval_interval=250, eval_batches=20),
            # nanoGPT's shakespeare_char configuration (10.7M parameters); val loss ~1.47 there
            gpu=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, batch_size=64, max_steps=5000,
                     max_lr=1e-3, min_lr=1e-4, warmup_steps=100, eval_interval=250, eval_batches=50),
        ),
    ),
    "shakespeare-bpe": ModelSpec(
        "shakespeare-bpe", "tinyshakespeare", "bpe",
        "Tiny Shakespeare, byte-level BPE (GPT-2 recipe, trained on the training split)",
        bpe_vocab=dict(fast=512, cpu=2048, gpu=4096),
        tiers=dict(
            fast=_FAST,
            cpu=dict(n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.1, batch_size=32, max_steps=1000,
                     max_lr=2e-3, min_lr=2e-4, warmup_steps=100, eval_interval=200, eval_batches=20),
            gpu=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, batch_size=32, max_steps=2500,
                     max_lr=6e-4, min_lr=6e-5, warmup_steps=100, eval_interval=250, eval_batches=50),
        ),
    ),
    "tang-poetry": ModelSpec(
        "tang-poetry", "quantangshi", "char",
        "全唐诗 (57,603 Tang poems), character-level, poems separated by <|endoftext|>",
        tiers=dict(
            fast=_FAST,
            # the 9.6k-character output layer costs as much as the 4 blocks: ~0.4 s a step on 2 cores
            cpu=dict(n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0, batch_size=32, max_steps=1200,
                     max_lr=3e-3, min_lr=3e-4, warmup_steps=60, eval_interval=200, eval_batches=20),
            gpu=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.1, batch_size=64, max_steps=6000,
                     max_lr=1e-3, min_lr=1e-4, warmup_steps=200, eval_interval=500, eval_batches=50),
        ),
    ),
    # Week 4: the Llama architecture on both corpora, with a chat-ready tokenizer (see "the Llama base model")
    "llama-base": ModelSpec(
        "llama-base", "tinyshakespeare+quantangshi", "bpe-han",
        "Llama architecture (RMSNorm, RoPE, SwiGLU, GQA) pretrained on Tiny Shakespeare + 全唐诗, half of every "
        "batch from each; byte-level BPE with each Chinese character a pre-token; chat tokens reserved",
        bpe_vocab=dict(fast=1024, cpu=8192, gpu=8192),
        arch="llama",
        tiers=dict(
            fast=dict(model=dict(hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=1), block_size=64, batch_size=8, max_steps=30, max_lr=3e-3,
                      min_lr=3e-4, warmup_steps=5, eval_interval=15, eval_batches=2, corpus_chars=300_000, threads=1),
            cpu=dict(model=dict(hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
                                num_key_value_heads=2), block_size=256, batch_size=8, max_steps=800, max_lr=2e-3,
                     min_lr=2e-4, warmup_steps=60, eval_interval=200, eval_batches=10, corpus_chars=None),
            # cpu: 1.8M parameters (the 8k-token embedding is 1M of them); built here on 1 thread of a loaded
            # machine: training 369 CPU-s / 561 s, whole build 675 s; val loss 4.58 (en) / 5.23 (zh) nats/token
            gpu=dict(model=dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6,
                                num_key_value_heads=2), block_size=512, batch_size=32, max_steps=5000, max_lr=1e-3,
                     min_lr=1e-4, warmup_steps=200, eval_interval=500, eval_batches=20, corpus_chars=None),
        ),
    ),
    # Week 6: the draft model of speculative decoding: llama-base's tokenizer, data and Trainer, a fraction of its size
    "llama-draft": ModelSpec(
        "llama-draft", "tinyshakespeare+quantangshi", "bpe-han",
        "a small Llama (fewer, narrower layers) pretrained like llama-base, on the same corpora with the same "
        "tokenizer (llama-base's, loaded from the same tier): the draft model of Week 6's speculative decoding",
        bpe_vocab=dict(fast=1024, cpu=8192, gpu=8192),
        arch="llama", tokenizer_of="llama-base",
        tiers=dict(
            fast=dict(model=dict(hidden_size=16, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=1), block_size=64, batch_size=8, max_steps=30, max_lr=3e-3,
                      min_lr=3e-4, warmup_steps=5, eval_interval=15, eval_batches=2, corpus_chars=300_000, threads=1),
            cpu=dict(model=dict(hidden_size=64, intermediate_size=176, num_hidden_layers=1, num_attention_heads=2,
                                num_key_value_heads=1), block_size=256, batch_size=8, max_steps=800, max_lr=3e-3,
                     min_lr=3e-4, warmup_steps=60, eval_interval=200, eval_batches=10, corpus_chars=None),
            # cpu: built here on a loaded 2-core machine: training 447 CPU-s / 789 s (2 threads), val loss 5.66;
            # llama-draft-chat on top of it: 140 CPU-s / 199 s, assistant loss 8.50 -> 5.40
            gpu=dict(model=dict(hidden_size=128, intermediate_size=352, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=1), block_size=512, batch_size=32, max_steps=5000, max_lr=2e-3,
                     min_lr=2e-4, warmup_steps=200, eval_interval=500, eval_batches=20, corpus_chars=None),
        ),
    ),
    # Week 4: llama-base instruction-tuned on the course tasks (llmlab.tasks) by LoRA-SFT with PEFT + TRL, merged
    "llama-chat": ModelSpec(
        "llama-chat", "llmlab.tasks", "bpe-han",
        "llama-base after supervised fine-tuning on the chat-formatted course tasks (Shakespeare continuation, "
        "五言绝句, Python functions, food questions, arithmetic): LoRA on all linear layers, assistant-only loss, "
        "merged; generation stops at <|end|>",
        arch="chat", base="llama-base",
        tiers=dict(
            fast=dict(n_per_task=8, eval_per_task=2, max_steps=12, batch_size=4, lr=3e-3, warmup_steps=2, r=8,
                      alpha=16, max_length=256, max_new_tokens=24, threads=1),
            cpu=dict(n_per_task=400, eval_per_task=20, max_steps=1000, batch_size=8, lr=2e-3, warmup_steps=50, r=32,
                     alpha=64, dropout=0.05, max_length=320, max_new_tokens=96, threads=1),
            # cpu: 1 thread (a second one only fights the other processes of a busy 2-core machine: 3 CPU-s a step
            # instead of 0.4-0.6 when measured here). Built here: training 398 CPU-s, whole build 415 CPU-s (26 min
            # wall on a loaded machine); assistant loss 7.51 -> 3.98; pass rates shakespeare 0 -> 55 %, others 0
            # (verifier scores jueju 0.02 -> 0.67, food 0.26 -> 0.44), all tasks 0 -> 13 %
            gpu=dict(n_per_task=2000, eval_per_task=50, max_steps=3000, batch_size=32, lr=1e-3, warmup_steps=100,
                     r=64, alpha=128, dropout=0.05, max_length=512, max_new_tokens=160),
        ),
    ),
    # Week 6: the draft of llama-chat: llama-draft after the same SFT recipe (a draft must follow the target's format)
    "llama-draft-chat": ModelSpec(
        "llama-draft-chat", "llmlab.tasks", "bpe-han",
        "llama-draft after llama-chat's supervised fine-tuning (the same tasks, LoRA settings and steps), merged: "
        "the draft model of llama-chat in speculative decoding",
        arch="chat", base="llama-draft",
        tiers={},  # filled below: llama-chat's
    ),
}
MODELS["llama-draft-chat"] = replace(MODELS["llama-draft-chat"], tiers=MODELS["llama-chat"].tiers)  # the same recipe


def available() -> list[str]:
    return sorted(MODELS)


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        import difflib

        close = difflib.get_close_matches(name, MODELS, n=1)
        raise ZooError(f"unknown zoo model {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                       + f"; known: {', '.join(available())}")
    return MODELS[name]


def _tier(tier: str | None) -> str:
    t = current_tier() if tier is None else tier
    if t not in TIERS:
        raise ZooError(f"tier must be one of {TIERS}, got {t!r}")
    return t


def zoo_dir(cache: str | os.PathLike | None = None) -> Path:
    """Where the zoo lives: ``<cache>/zoo`` (default ``$LLMLAB_CACHE`` or ``~/.cache/llmlab``)."""
    return Path(cache) / "zoo" if cache is not None else cache_dir() / "zoo"


# ---------------------------------------------------------------------------------------------
# corpora and tokenizers


_NOTE = re.compile(r"（[^（）]*）")  # editors' notes: （一作「華」）, （按：...）


def clean_tang(text: str) -> str:
    """全唐诗 without the editors' notes in full-width parentheses (variant readings, comments)."""
    return _NOTE.sub("", text)


def tang_poems(text: str) -> list[str]:
    """The poems of a (cleaned) 全唐诗 text: ``title\\nauthor\\nverse lines``, blank-line separated."""
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def char_hf_tokenizer(chars: list[str], model_max_length: int | None = None):
    """A ``PreTrainedTokenizerFast`` whose ids are those of ``CharTokenizer(chars)``.

    A ``tokenizers`` WordLevel model over the characters, a pre-tokenizer that cuts the text into
    single characters (``[\\s\\S]``: newlines too), no normalizer, and a ``Fuse`` decoder that
    concatenates the pieces. ``<|endoftext|>``, ``<|pad|>`` and ``<|unk|>`` follow the characters
    (ids V, V+1, V+2); a character outside the vocabulary becomes ``<|unk|>``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(chars)}
    for tok in CHAR_SPECIALS:
        if tok in vocab:
            raise ValueError(f"the special token {tok!r} is also a character of the vocabulary")
        vocab[tok] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.add_special_tokens(list(CHAR_SPECIALS))
    kw = {} if model_max_length is None else {"model_max_length": model_max_length}
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                                   clean_up_tokenization_spaces=False, padding_side="right", **kw)


def char_tokenizer(path: str | os.PathLike) -> CharTokenizer:
    """The course :class:`CharTokenizer` of a char-level zoo folder (same ids as its HF tokenizer)."""
    meta = info(path)
    if meta.get("tokenizer") != "char":
        raise ZooError(f"{path} holds a {meta.get('tokenizer')!r} model, not a character-level one")
    return CharTokenizer(meta["chars"])


@dataclass
class _Corpus:
    train_ids: np.ndarray
    val_ids: np.ndarray
    val_text: str  # the held-out text (for bits per character / byte)
    hf_tokenizer: object
    chars: list[str] | None
    eos_id: int


def _prepare(spec: ModelSpec, tier: str, block_size: int) -> _Corpus:
    text = load_text(spec.corpus)
    if spec.corpus == "quantangshi":
        poems = tang_poems(clean_tang(text))
        # every 10th poem is held out: the whole corpus is represented, and no poem is split
        train_p = [p for i, p in enumerate(poems) if i % 10 != 9]
        val_p = [p for i, p in enumerate(poems) if i % 10 == 9]
        chars = sorted(set("".join(poems)) | {"\n"})
        ct = CharTokenizer(chars + ["\x00"])  # "\x00" (not in the corpus) stands for <|endoftext|>: id V

        def encode(ps):
            return ct.encode_tensor("".join(p + "\n\x00" for p in ps)).numpy()

        hf = char_hf_tokenizer(chars, block_size)
        return _Corpus(encode(train_p), encode(val_p), "".join(p + "\n" for p in val_p), hf, chars, len(chars))
    # Tiny Shakespeare: the last 10 % of the characters are held out (nanoGPT's split)
    n_train = int(0.9 * len(text))
    train_text, val_text = text[:n_train], text[n_train:]
    if spec.tokenizer == "char":
        ct = CharTokenizer.from_text(text)
        hf = char_hf_tokenizer(ct.chars, block_size)
        return _Corpus(ct.encode_tensor(train_text).numpy(), ct.encode_tensor(val_text).numpy(), val_text, hf,
                       ct.chars, ct.vocab_size)
    from .tokenization.hf import to_hf, train_bytelevel_bpe

    tk = train_bytelevel_bpe([train_text], spec.bpe_vocab[tier])
    hf = to_hf(tk, model_max_length=block_size)
    enc = lambda s: np.asarray(tk.encode(s).ids, dtype=np.int64)
    return _Corpus(enc(train_text), enc(val_text), val_text, hf, None, hf.eos_token_id)


# ---------------------------------------------------------------------------------------------
# building one model


@torch.no_grad()
def _full_loss(model: GPT, ids: np.ndarray, max_tokens: int | None = None, batch_size: int = 64,
               block_size: int | None = None) -> tuple[float, int]:
    """Mean loss over every token of ``ids`` cut into non-overlapping windows; (loss, tokens scored)."""
    device = next(model.parameters()).device
    data = torch.from_numpy(np.asarray(ids[: max_tokens + 1] if max_tokens else ids, dtype=np.int64)).to(device)
    T = block_size or model.config.block_size
    n = (len(data) - 1) // T
    x, y = data[: n * T].view(n, T), data[1: n * T + 1].view(n, T)
    model.eval()
    total = 0.0
    for i in range(0, n, batch_size):
        out = model(x[i: i + batch_size])
        logits = out[0] if isinstance(out, tuple) else out.logits  # a GPT's (logits, loss) or a Llama's output
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[i: i + batch_size].flatten(),
                                                   reduction="sum").item()
    return total / (n * T), n * T


def build(name: str, tier: str, out_dir: str | os.PathLike, progress: bool = True, log=print,
          cache: str | os.PathLike | None = None) -> dict:
    """Train zoo model ``name`` at ``tier`` and write the Hugging Face folder ``out_dir``; returns zoo.json.
    ``cache``: where a model this one is made from (``spec.base``) is found or built.

    Deterministic: the same name, tier, machine and thread count give the same weights.
    """
    spec, tier = _spec(name), _tier(tier)
    threads = torch.get_num_threads()
    try:
        if spec.arch == "chat":
            return _build_chat(spec, tier, Path(out_dir), progress, log, cache)
        if spec.arch == "llama":
            return _build_llama(spec, tier, Path(out_dir), progress, log, cache)
        return _build(spec, tier, Path(out_dir), progress, log)
    finally:
        torch.set_num_threads(threads)  # a tier's `threads` setting does not leak into the caller


def _build(spec: ModelSpec, tier: str, out: Path, progress: bool, log) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from . import __version__
    from .train.batches import write_tokens
    from .train.trainer import TrainConfig, Trainer

    name = spec.name
    out.mkdir(parents=True, exist_ok=True)
    overrides = {**_COMMON, **spec.tiers[tier]}
    t0, c0 = time.perf_counter(), time.process_time()
    corpus = _prepare(spec, tier, overrides["block_size"])
    hf_tok = corpus.hf_tokenizer
    vocab_size = len(hf_tok)  # characters/BPE tokens + special tokens

    with tempfile.TemporaryDirectory(prefix=".work-", dir=out) as work:
        work = Path(work)
        write_tokens(work / "data" / "train.bin", corpus.train_ids, vocab_size)
        write_tokens(work / "data" / "val.bin", corpus.val_ids, vocab_size)
        cfg = TrainConfig.from_dict({**overrides, "data_dir": str(work / "data"), "out_dir": str(work / "run"),
                                     "vocab_size": vocab_size, "seed": SEED, "progress": progress,
                                     "sample_tokens": 0, "save_hf": False,
                                     "ckpt_interval": overrides["max_steps"]})  # one checkpoint, at the end
        t_train, c_train = time.perf_counter(), time.process_time()
        trainer = Trainer(cfg, overwrite=True, log=log)
        summary = trainer.run()
        train_wall, train_cpu = time.perf_counter() - t_train, time.process_time() - c_train
        model = trainer.model.eval()
        shutil.copy(work / "run" / "metrics.csv", out / "metrics.csv")

    # the held-out loss on every token (FAST: the first 20k), in nats per token, and per character / byte
    val_loss, n_scored = _full_loss(model, corpus.val_ids, max_tokens=20_000 if tier == "fast" else None)
    model = model.cpu()
    frac = n_scored / len(corpus.val_ids)  # bits per char: nats of the scored tokens over their share of the text
    n_chars = len(corpus.val_text) * frac
    n_bytes = len(corpus.val_text.encode("utf-8")) * frac
    nats = val_loss * n_scored

    # Hugging Face: GPT-2 with our weights, our token ids in its config, and the tokenizer
    with _quiet_transformers():
        hf = to_hf_gpt2(model)
        ids = dict(bos_token_id=hf_tok.eos_token_id, eos_token_id=hf_tok.eos_token_id,
                   pad_token_id=hf_tok.pad_token_id)
        hf.config.update(ids)
        hf.generation_config = GenerationConfig(**ids)
        hf.save_pretrained(out)
        hf_tok.save_pretrained(out)
        # reload exactly as a user would, and compare with the course model on held-out text
        re_model = AutoModelForCausalLM.from_pretrained(out).eval()
        re_tok = AutoTokenizer.from_pretrained(out)
    probe_text = corpus.val_text[:5000]
    probe_ids = re_tok(probe_text, add_special_tokens=False, verbose=False)["input_ids"]
    if corpus.chars is not None and probe_ids != CharTokenizer(corpus.chars).encode(probe_text):
        raise ZooError(f"{name}: the saved tokenizer's ids differ from CharTokenizer's")
    if re_tok.decode(probe_ids) != probe_text:
        raise ZooError(f"{name}: the saved tokenizer does not round-trip the validation text")
    probe = probe_ids[: model.config.block_size]
    x = torch.tensor([probe])
    with torch.no_grad():
        # float32: the two implementations order their sums differently (fused addmm in GPT-2's Conv1D,
        # another attention kernel): ~1e-6 relative per layer, ~1e-5 on logits of size ~10; 1e-4 is 10x that
        diff = (model(x)[0] - re_model(x).logits).abs().max().item()
    if not diff <= LOGIT_TOLERANCE:
        raise ZooError(f"{name}: reloaded HF logits differ from the course model by {diff:.2e} > {LOGIT_TOLERANCE}")

    # a sample, so that zoo.json shows what the model writes
    prompt = {"tang-poetry": "春曉\n孟浩然\n"}.get(name, "ROMEO:\n")
    start = torch.tensor([re_tok(prompt, add_special_tokens=False, verbose=False)["input_ids"]])
    gen = model.generate(start, 120, temperature=0.8, top_k=50, generator=torch.Generator().manual_seed(SEED))
    sample = re_tok.decode(gen[0].tolist())

    meta = {
        "name": name, "tier": tier, "description": spec.description, "corpus": spec.corpus,
        "tokenizer": spec.tokenizer, "vocab_size": vocab_size, "chars": corpus.chars,
        "special_tokens": {"eos": hf_tok.eos_token, "pad": hf_tok.pad_token, "unk": hf_tok.unk_token},
        "model_config": asdict(model.config), "n_params": model.num_params(non_embedding=False),
        "train_config": {k: v for k, v in asdict(cfg).items() if k not in ("data_dir", "out_dir")},
        "train_tokens": int(len(corpus.train_ids)), "val_tokens": int(len(corpus.val_ids)),
        "tokens_seen": summary["tokens_seen"], "epochs": summary["tokens_seen"] / len(corpus.train_ids),
        "val_loss": val_loss, "val_ppl": math.exp(val_loss), "val_tokens_scored": n_scored,
        "val_bits_per_char": nats / math.log(2) / n_chars, "val_bits_per_byte": nats / math.log(2) / n_bytes,
        "val_loss_estimate": summary["val_loss"], "train_loss_estimate": summary["train_eval_loss"],
        "hf_max_abs_logit_diff": diff,
        "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "build_wall_s": time.perf_counter() - t0, "build_cpu_s": time.process_time() - c0,
        "threads": torch.get_num_threads(), "device": str(trainer.device),
        "seed": SEED, "sample": sample,
        "versions": {"llmlab": __version__, "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
    }
    (out / "zoo.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


@contextlib.contextmanager
def _quiet_transformers():
    """No progress bars ("Loading weights") and no advice on stderr while saving and reloading."""
    import transformers
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield transformers
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------------------------------------
# the cache


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock on ``path`` (POSIX ``flock``; released if the process dies). No-op elsewhere."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps the cache consistent
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _complete(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in REQUIRED_FILES)


def pretrained(name: str, tier: str | None = None, cache: str | os.PathLike | None = None, force: bool = False,
               progress: bool = True, log=print) -> Path:
    """The folder of zoo model ``name`` in Hugging Face format, trained and cached first if missing.

    ``tier``: "fast", "cpu" or "gpu" (default: :func:`llmlab.config.tier`). ``cache``: the cache root
    (default ``$LLMLAB_CACHE`` or ``~/.cache/llmlab``). ``force``: train again and replace the cached copy.
    """
    spec, tier = _spec(name), _tier(tier)
    root = zoo_dir(cache)
    final = root / f"{spec.name}-{tier}"
    if _complete(final) and not force:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{final.name}.lock"):
        if _complete(final) and not force:  # another process built it while we waited
            return final
        if final.exists() and not force:
            missing = [f for f in REQUIRED_FILES if not (final / f).is_file()]
            raise ZooError(f"the cached model {final} is incomplete (missing {', '.join(missing)}). "
                           f"Delete the folder, or call pretrained({name!r}, force=True) to train it again.")
        for stale in root.glob(f".tmp-{final.name}-*"):  # left by a killed build (we hold the lock: none is live)
            shutil.rmtree(stale, ignore_errors=True)
        log(f"[zoo] training {name!r} ({tier} tier) into {final} ...")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
        try:
            meta = build(name, tier, tmp, progress=progress, log=log, cache=cache)
            if final.exists():  # force: move the old copy aside, publish, then delete it
                old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=root))
                os.replace(final, old / "model")
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    log(f"[zoo] {name} ({tier}): val loss {meta['val_loss']:.4f} nats/token, perplexity {meta['val_ppl']:.2f}, "
        f"{meta['val_bits_per_char']:.3f} bits/char | trained in {meta['train_wall_s']:.0f} s "
        f"({meta['train_cpu_s']:.0f} CPU-s)")
    return final


def info(path: str | os.PathLike) -> dict:
    """The ``zoo.json`` of a zoo folder (configuration, metrics, timings)."""
    p = Path(path) / "zoo.json"
    if not p.is_file():
        raise ZooError(f"{path} is not a zoo model folder (no zoo.json)")
    return json.loads(p.read_text(encoding="utf-8"))


def load(name: str, tier: str | None = None, **kwargs):
    """``(model, tokenizer)``: the zoo model as a course :class:`llmlab.models.gpt.GPT` (or, for a Llama entry,
    :class:`llmlab.models.llama.LlamaForCausalLM`; eval mode, CPU) and its Hugging Face tokenizer.
    ``kwargs`` go to :func:`pretrained`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models.llama import from_hf_llama

    path = pretrained(name, tier, **kwargs)
    convert = from_hf_llama if _spec(name).arch in ("llama", "chat") else from_hf_gpt2
    with _quiet_transformers():
        model = convert(AutoModelForCausalLM.from_pretrained(path)).eval()
        return model, AutoTokenizer.from_pretrained(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmlab.zoo", description="Build (or find) a course zoo model.")
    ap.add_argument("names", nargs="*", default=available(), help=f"models (default: all of {available()})")
    ap.add_argument("--tier", choices=TIERS, default=None, help="default: the current tier (LLMLAB_FAST, GPU)")
    ap.add_argument("--cache", default=None, help="cache root (default $LLMLAB_CACHE or ~/.cache/llmlab)")
    ap.add_argument("--force", action="store_true", help="train again even if cached")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    for name in a.names:
        path = pretrained(name, a.tier, cache=a.cache, force=a.force, progress=not a.no_progress)
        m = info(path)
        print(json.dumps({"path": str(path), **{k: m[k] for k in (
            "val_loss", "val_ppl", "val_bits_per_char", "n_params", "tokens_seen", "train_wall_s", "train_cpu_s",
            "hf_max_abs_logit_diff")}}, indent=1))
        print(m["sample"])


# ---------------------------------------------------------------------------------------------
# the Llama base model (Week 4): both corpora, a BPE that keeps Chinese characters whole, chat tokens reserved

CHAT_SPECIALS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
HAN_CLASS = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"  # CJK ideographs (literal ranges: also for tokenizers' regex)
# <|role|>, newline, the text, <|end|>, newline; {% generation %} marks the assistant's tokens, so that
# apply_chat_template(..., return_assistant_tokens_mask=True) gives the SFT label mask
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles are system, user and assistant, not ' + message['role']) }}{%- endif %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{%- if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{%- else %}{{ message['content'] + '<|end|>' }}{%- endif %}{{ '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\n' }}{%- endif %}"
)


def han_bpe_tokenizer(texts: list[str], vocab_size: int, model_max_length: int | None = None):
    """Byte-level BPE (:func:`llmlab.tokenization.hf.train_bytelevel_bpe`) in which every Chinese character is a
    pre-token of its own: merges join its 3 UTF-8 bytes (a frequent character becomes one token) but never
    two characters, so "5 characters" stays "5 tokens or more" and the English side is GPT-2's recipe.

    Training sees the texts already cut at the characters (merges never cross a document); encoding does the
    same cut with a ``Split`` pre-tokenizer before ``ByteLevel``. The chat tokens are special tokens after
    ``<|endoftext|>`` (0) and ``<|pad|>`` (1), and the tokenizer carries :data:`CHAT_TEMPLATE`.
    """
    from tokenizers import Regex, pre_tokenizers

    from .hf_tokenizer import SPECIAL_TOKENS, to_hf, train_bytelevel_bpe

    pieces = re.compile(f"{HAN_CLASS}|(?:(?!{HAN_CLASS})[\\s\\S])+")
    tk = train_bytelevel_bpe([p for t in texts for p in pieces.findall(t)], vocab_size,
                             SPECIAL_TOKENS + CHAT_SPECIALS)
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(HAN_CLASS), behavior="isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    hf = to_hf(tk, model_max_length=model_max_length)
    hf.add_special_tokens({"additional_special_tokens": list(CHAT_SPECIALS)})  # already in the vocabulary
    hf.chat_template = CHAT_TEMPLATE
    return hf


def _prepare_llama(spec: ModelSpec, tier: str, o: dict, cache=None) -> dict:
    """Token ids of the training and held-out text of each corpus, with the same splits as the other entries
    (and as llmlab.tasks): Tiny Shakespeare's last 10 %, every 10th poem of 全唐诗."""
    en = load_text("tinyshakespeare")
    poems = tang_poems(clean_tang(load_text("quantangshi")))
    n = int(0.9 * len(en))
    text = {"en": (en[:n], en[n:]),
            "zh": ("".join(p + "\n\n" for i, p in enumerate(poems) if i % 10 != 9),
                   "".join(p + "\n\n" for i, p in enumerate(poems) if i % 10 == 9))}
    if o["corpus_chars"]:  # the FAST tier: a slice of each, so that building takes seconds
        text = {k: (tr[: o["corpus_chars"]], va[: o["corpus_chars"] // 5]) for k, (tr, va) in text.items()}
    if spec.tokenizer_of:  # a draft model: the target's own tokenizer, so that token ids mean the same
        from transformers import AutoTokenizer

        src = pretrained(spec.tokenizer_of, tier, cache=cache, progress=False, log=lambda *a: None)
        hf = AutoTokenizer.from_pretrained(src)
    else:
        hf = han_bpe_tokenizer([text["en"][0], text["zh"][0]], spec.bpe_vocab[tier], o["block_size"])
    # poems end with <|endoftext|> (generation can stop at a poem's end); Shakespeare is one document
    eos = hf.eos_token

    def encode(s: str, key: str) -> np.ndarray:
        docs = s.split("\n\n") if key == "zh" else [s]
        ids = hf([d + ("\n" + eos if key == "zh" else "") for d in docs if d], add_special_tokens=False,
                 verbose=False)["input_ids"]
        return np.asarray([i for doc in ids for i in doc], dtype=np.int64)

    return {"tokenizer": hf, "text": text,
            "ids": {k: (encode(tr, k), encode(va, k)) for k, (tr, va) in text.items()}}


def _build_llama(spec: ModelSpec, tier: str, out: Path, progress: bool, log, cache=None) -> dict:
    """Pretrain the course Llama on both corpora and publish it in Hugging Face format (LlamaForCausalLM)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from . import __version__
    from .config import set_seed, set_threads
    from .models.llama import LlamaConfig, LlamaForCausalLM, to_hf_llama
    from .train.batches import get_batch
    from .train.trainer import Callback, TrainConfig, Trainer, TrainingDiverged

    o = {**_COMMON, **spec.tiers[tier]}
    out.mkdir(parents=True, exist_ok=True)
    if o.get("threads"):
        set_threads(o["threads"])
    t0, c0 = time.perf_counter(), time.process_time()
    data = _prepare_llama(spec, tier, o, cache)
    tok = data["tokenizer"]
    # generation stops at the end of a document and at the end of a chat turn
    ids = dict(bos_token_id=tok.eos_token_id, eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids("<|end|>")],
               pad_token_id=tok.pad_token_id)
    T, B = o["block_size"], o["batch_size"]
    set_seed(SEED)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=T, tie_word_embeddings=True, **o["model"], **ids)
    model = LlamaForCausalLM(cfg)

    def batch(split: int, gen: torch.Generator):  # half of the rows from each corpus
        xs, ys = zip(*(get_batch(data["ids"][k][split], T, B // 2, gen) for k in ("en", "zh")))
        return torch.cat(xs), torch.cat(ys)

    def loss_of(x, y):
        return torch.nn.functional.cross_entropy(model(x).logits.flatten(0, 1).float(), y.flatten())

    @torch.no_grad()
    def evaluate(_model) -> dict:  # the same batches at every evaluation, from generators of their own
        return {f"{name}_eval_loss": float(np.mean([loss_of(*batch(split, gen)).item() for _ in range(o["eval_batches"])]))
                for split, name in ((0, "train"), (1, "val"))
                for gen in [torch.Generator().manual_seed(SEED + 1 + split)]}

    class Batches:  # the training stream; `generator` is its only state (what a Trainer checkpoint would save)
        def __init__(self):
            self.generator = torch.Generator().manual_seed(SEED)

        def __iter__(self):
            return self

        def __next__(self):
            return batch(0, self.generator)

    rows = []

    class Rows(Callback):  # metrics.csv: every step, with the evaluation's losses where there was one
        def on_train_start(self, trainer):
            rows.append({"step": 0, **trainer.last_eval})

        def on_step_end(self, trainer, row):
            rows.append({k: row[k] for k in ("step", "lr", "train_loss", "train_eval_loss", "val_eval_loss") if k in row})
            if "val_eval_loss" in row:
                log(f"[zoo] {spec.name} step {row['step']}: val loss {row['val_eval_loss']:.4f}")

    # the course's Trainer runs the loop: AdamW (torch, decay on matrices only), warm-up + cosine, clipping
    tcfg = TrainConfig(out_dir=None, max_steps=o["max_steps"], batch_size=B, block_size=T, max_lr=o["max_lr"],
                       min_lr=o["min_lr"], warmup_steps=o["warmup_steps"], weight_decay=o["weight_decay"],
                       beta1=o["beta1"], beta2=o["beta2"], grad_clip=o["grad_clip"], optimizer=o["optimizer"],
                       eval_interval=o["eval_interval"], eval_batches=o["eval_batches"], device="cpu",
                       progress=progress, seed=SEED)
    trainer = Trainer(tcfg, model=model, batches=Batches(), loss_fn=lambda m, b: loss_of(*b), evaluate=evaluate,
                      callbacks=[Rows()], log=None)
    t_train, c_train = time.perf_counter(), time.process_time()
    try:
        trainer.run()
    except TrainingDiverged as e:
        raise ZooError(f"{spec.name}: {e}") from e
    train_wall, train_cpu = time.perf_counter() - t_train, time.process_time() - c_train
    model.eval()
    keys = ["step", "lr", "train_loss", "train_eval_loss", "val_eval_loss"]
    (out / "metrics.csv").write_text(",".join(keys) + "\n" + "".join(
        ",".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows))

    # the held-out loss per corpus on every token (FAST: the first 20k), per token, character and byte
    held = {}
    for k in ("en", "zh"):
        val_ids, val_text = data["ids"][k][1], data["text"][k][1]
        loss, n = _full_loss(model, val_ids, max_tokens=20_000 if tier == "fast" else None, block_size=T)
        frac = n / len(val_ids)
        held[k] = dict(loss=loss, tokens=n, nats=loss * n, chars=len(val_text) * frac,
                       bytes=len(val_text.encode("utf-8")) * frac)
    nats, n_tok = sum(h["nats"] for h in held.values()), sum(h["tokens"] for h in held.values())

    with _quiet_transformers():
        hf = to_hf_llama(model)
        hf.generation_config = GenerationConfig(**ids)
        hf.save_pretrained(out)
        tok.save_pretrained(out, save_jinja_files=False)  # the chat template inside tokenizer_config.json
        re_model = AutoModelForCausalLM.from_pretrained(out).eval()
        re_tok = AutoTokenizer.from_pretrained(out)
    probe = data["text"]["en"][1][:300] + data["text"]["zh"][1][:300]
    probe_ids = re_tok(probe, add_special_tokens=False, verbose=False)["input_ids"]
    if re_tok.decode(probe_ids) != probe:
        raise ZooError(f"{spec.name}: the saved tokenizer does not round-trip the validation text")
    x = torch.tensor([probe_ids[:T]])
    with torch.no_grad():
        diff = (model(x).logits - re_model(x).logits).abs().max().item()  # the same operations: ~0
    if not diff <= LOGIT_TOLERANCE:
        raise ZooError(f"{spec.name}: reloaded HF logits differ from the course model by {diff:.2e}")

    samples = {}
    for prompt in ("ROMEO:\n", "春曉\n孟浩然\n"):
        start = torch.tensor([re_tok(prompt, add_special_tokens=False)["input_ids"]])
        gen_ids = model.generate(start, 60, temperature=0.8, top_k=50, generator=torch.Generator().manual_seed(SEED))
        samples[prompt] = re_tok.decode(gen_ids[0].tolist())
    meta = {
        "name": spec.name, "tier": tier, "description": spec.description, "corpus": spec.corpus, "arch": "llama",
        "tokenizer": spec.tokenizer, "vocab_size": len(tok), "chars": None,
        "special_tokens": {"eos": tok.eos_token, "pad": tok.pad_token, "chat": list(CHAT_SPECIALS)},
        "model_config": cfg.to_dict(), "n_params": model.num_params(),
        "train_config": {k: v for k, v in o.items() if k != "model"},
        "train_tokens": {k: int(len(v[0])) for k, v in data["ids"].items()},
        "tokens_seen": o["max_steps"] * B * T,
        "val_loss": nats / n_tok, "val_ppl": math.exp(nats / n_tok), "val_tokens_scored": n_tok,
        "val_loss_by_corpus": {k: h["loss"] for k, h in held.items()},
        "val_bits_per_char": nats / math.log(2) / sum(h["chars"] for h in held.values()),
        "val_bits_per_byte": nats / math.log(2) / sum(h["bytes"] for h in held.values()),
        "val_loss_estimate": rows[-1]["val_eval_loss"], "train_loss_estimate": rows[-1]["train_eval_loss"],
        "hf_max_abs_logit_diff": diff, "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "build_wall_s": time.perf_counter() - t0, "build_cpu_s": time.process_time() - c0,
        "threads": torch.get_num_threads(), "device": "cpu", "seed": SEED,
        "sample": "\n---\n".join(samples.values()),
        "versions": {"llmlab": __version__, "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__},
    }
    (out / "zoo.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


# ---------------------------------------------------------------------------------------------
# the chat model (Week 4): llama-base + LoRA-SFT on the course tasks (the recipe is llmlab.finetune.chat_model)


def chat_settings(name: str = "llama-chat", tier: str | None = None):
    """The :class:`llmlab.finetune.sft_trl.SFTSettings` that build chat model ``name`` at ``tier`` (seed: SEED)."""
    from .finetune.sft_trl import SFTSettings

    spec, tier = _spec(name), _tier(tier)
    if spec.arch != "chat":
        raise ZooError(f"{name!r} is not a chat model")
    return SFTSettings(seed=SEED, **spec.tiers[tier])


def _build_chat(spec: ModelSpec, tier: str, out: Path, progress: bool, log, cache) -> dict:
    """The base model (from the cache, or built first), then Week 4's SFT recipe into ``out``."""
    from . import __version__
    from .finetune.chat_model import build_chat

    base = pretrained(spec.base, tier, cache=cache, progress=progress, log=log)
    meta = build_chat(base, out, chat_settings(spec.name, tier), progress=progress, log=log, name=spec.name)
    meta.update({"tier": tier, "base": spec.base, "base_path": str(base), "description": spec.description,
                 "corpus": spec.corpus, "tokenizer": spec.tokenizer, "chars": None, "seed": SEED,
                 "base_val_loss": info(base)["val_loss"],
                 "versions": {"llmlab": __version__, "torch": torch.__version__,
                              "transformers": __import__("transformers").__version__,
                              "peft": __import__("peft").__version__, "trl": __import__("trl").__version__}})
    (out / "zoo.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return meta


if __name__ == "__main__":
    main()
