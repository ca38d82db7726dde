"""The one training configuration of the course: :class:`TrainConfig`.

Every run uses it: a Week 1 char-level run on tensors (``llmlab.train.train``), the resumable
trainer and its command line (``python -m llmlab.train.cli CONFIG.json``), the zoo, and the
fine-tuning / alignment runs of later weeks (``Trainer(model=..., batches=..., loss_fn=..., cfg=...)``).
The model-shape and data fields are read only when the trainer builds the GPT and the batches itself
(from ``data_dir``); with ``model=`` and ``batches=`` given they are ignored.

Week 1's names (``max_iters``, ``learning_rate``, ``warmup_iters``, ``eval_iters``, ``betas``) are
accepted by the constructor for one release and mapped to the names below, keeping Week 1's runs as they
were (``warmup_iters=w`` is ``warmup_steps=w + 1``: nanoGPT's ramp ``(it + 1) / (w + 1)`` is the one
schedule's ramp with one more step); config files and ``--set`` use the names below only.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from dataclasses import InitVar, dataclass
from pathlib import Path

from .schedule import lr_at as _lr_at


class ConfigError(ValueError):
    """A training config that cannot be used (unknown key, wrong type, inconsistent values)."""


# Week 1 (llmlab.chargpt) name -> the name here
LEGACY_NAMES = {"max_iters": "max_steps", "learning_rate": "max_lr", "warmup_iters": "warmup_steps",
                "eval_iters": "eval_batches"}  # warmup_iters=w is warmup_steps=w + 1: the same ramp (see __post_init__)


@dataclass
class TrainConfig:
    # data: a folder written by llmlab.train.batches.prepare_dataset (train.bin, val.bin, meta.json)
    data_dir: str = "runs/data/shakespeare_char"
    out_dir: str | None = "runs/train"  # checkpoints, metrics.{csv,jsonl}, summary.json; None: write nothing
    vocab_size: int | None = None  # None: read meta.json in data_dir
    # model (llmlab.models.gpt.GPTConfig)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    # optimisation
    optimizer: str = "torch"  # "torch": torch.optim.AdamW, "scratch": llmlab.train.optim.AdamW (same numbers)
    batch_size: int = 12
    grad_accum_steps: int = 1  # tokens per optimizer step = batch_size * block_size * grad_accum_steps
    max_steps: int = 2000
    max_lr: float = 1e-3
    min_lr: float | None = None  # where the cosine ends; None: max_lr / 10
    warmup_steps: int = 0  # linear warm-up: max_lr * (step + 1) / warmup_steps
    lr_decay_steps: int | None = None  # where the cosine reaches min_lr; None: max_steps
    decay_lr: bool = True  # False: a constant max_lr (no warm-up, no decay)
    weight_decay: float = 0.1  # on matrices and embeddings only, not on biases and LayerNorm gains
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    # evaluation, logging, checkpoints
    eval_interval: int = 250  # also evaluates before the first step and after the last one
    eval_batches: int = 20  # batches per split per evaluation
    eval_batch_size: int | None = None  # None: batch_size
    target_loss: float | None = None  # stop at the first evaluation with val loss <= target_loss
    log_interval: int = 10
    ckpt_interval: int | None = None  # None: every eval_interval (and always at the end); needs out_dir
    sample_tokens: int = 0  # print a sample of this many tokens at the end (char/byte data)
    save_hf: bool = False  # also save the final model as a transformers GPT-2 in out_dir/hf
    # run
    seed: int = 1337
    device: str = "auto"  # "auto", "cpu", "cuda", "mps"
    dtype: str = "float32"  # "float32" or "bfloat16" (autocast)
    threads: int | None = None  # CPU threads; None: leave torch's default
    progress: bool = True
    # Week 1 names, accepted for one release (not fields: config files use the names above)
    max_iters: InitVar[int | None] = None
    learning_rate: InitVar[float | None] = None
    warmup_iters: InitVar[int | None] = None
    eval_iters: InitVar[int | None] = None
    betas: InitVar[tuple[float, float] | None] = None

    def __post_init__(self, max_iters, learning_rate, warmup_iters, eval_iters, betas):
        for old, value in dict(max_iters=max_iters, learning_rate=learning_rate, eval_iters=eval_iters).items():
            if value is not None:
                setattr(self, LEGACY_NAMES[old], value)
        if warmup_iters is not None:
            # Week 1's ramp was nanoGPT's max_lr * (it + 1) / (warmup_iters + 1), reaching max_lr at it = warmup_iters:
            # the schedule here with one more warm-up step (the cosine then starts one step later)
            self.warmup_steps = warmup_iters + 1 if warmup_iters else 0
        if betas is not None:
            self.beta1, self.beta2 = betas

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def valid_keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a mapping of key: value, got {type(d).__name__}")
        valid = cls.valid_keys()
        unknown = [k for k in d if k not in valid]
        if unknown:
            lines = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), valid, n=1)
                lines.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ConfigError(f"unknown config key(s): {', '.join(lines)}.\nValid keys: {', '.join(valid)}")
        hints = typing.get_type_hints(cls)
        cfg = cls(**{k: _coerce(k, v, hints[k]) for k, v in d.items()})
        cfg.validate()
        return cfg

    @classmethod
    def from_file(cls, path: str | os.PathLike, overrides: dict | None = None) -> "TrainConfig":
        """Read a ``.json`` or ``.yaml``/``.yml`` file; ``overrides`` (e.g. from the command line) win."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in {".yaml", ".yml"}:
            try:
                import yaml
            except ImportError as e:  # pragma: no cover - pyyaml ships with the course environment
                raise ConfigError("reading a YAML config needs PyYAML (pip install pyyaml); or use JSON") from e
            try:
                d = yaml.safe_load(text) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path} is not valid YAML: {e}") from e
        else:
            try:
                d = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path} is not valid JSON: {e}") from e
        if not isinstance(d, dict):
            raise ConfigError(f"{path} must hold a mapping of key: value, got {type(d).__name__}")
        return cls.from_dict({**d, **(overrides or {})})

    def validate(self) -> None:
        def need(cond: bool, msg: str):
            if not cond:
                raise ConfigError(msg)

        for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum_steps", "max_steps",
                  "eval_interval", "eval_batches", "log_interval"):
            need(getattr(self, k) >= 1, f"{k} must be >= 1, got {getattr(self, k)}")
        need(self.n_embd % self.n_head == 0, f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        need(self.optimizer in {"scratch", "torch"}, f"optimizer must be 'scratch' or 'torch', got {self.optimizer!r}")
        need(self.device in {"auto", "cpu", "cuda", "mps"} or self.device.startswith("cuda:"),
             f"device must be auto, cpu, cuda or mps, got {self.device!r}")
        need(self.dtype in {"float32", "bfloat16"}, f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(0 <= self.final_lr <= self.max_lr, f"need 0 <= min_lr <= max_lr, got {self.final_lr}, {self.max_lr}")
        need(0 <= self.warmup_steps <= self.decay_steps,
             f"need 0 <= warmup_steps <= lr_decay_steps (or max_steps), got {self.warmup_steps}, {self.decay_steps}")
        need(self.weight_decay >= 0 and self.grad_clip >= 0 and self.eps >= 0, "weight_decay, grad_clip and eps must be >= 0")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"betas must be in [0, 1), got {self.beta1}, {self.beta2}")
        need(self.ckpt_interval is None or self.ckpt_interval >= 1, f"ckpt_interval must be >= 1, got {self.ckpt_interval}")
        need(self.vocab_size is None or 1 <= self.vocab_size <= 65536, f"vocab_size must be in [1, 65536], got {self.vocab_size}")

    # -- derived values ---------------------------------------------------------------------

    @property
    def decay_steps(self) -> int:
        return self.max_steps if self.lr_decay_steps is None else self.lr_decay_steps

    @property
    def final_lr(self) -> float:
        return self.max_lr / 10 if self.min_lr is None else self.min_lr

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.block_size * self.grad_accum_steps

    def lr_at(self, step: int) -> float:
        """The learning rate of 0-based optimizer step ``step`` (:func:`llmlab.train.schedule.lr_at`)."""
        if not self.decay_lr:
            return self.max_lr
        return _lr_at(step, self.max_lr, self.final_lr, self.warmup_steps, self.decay_steps)


def _coerce(name: str, value, hint):
    """Check ``value`` against the dataclass annotation ``hint`` (int, float, bool, str, X | None)."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"config key {name!r} may not be null")
    for t in args:
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is str and isinstance(value, str):
            return value
    want = " or ".join("null" if t is type(None) else t.__name__ for t in args)
    raise ConfigError(f"config key {name!r} must be {want}, got {value!r} ({type(value).__name__})")


def parse_override(item: str) -> tuple[str, object]:
    """``"max_steps=50"`` -> ("max_steps", 50): the value is read as JSON, else kept as a string."""
    if "=" not in item:
        raise ConfigError(f"an override looks like key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = {"none": None, "null": None, "true": True, "false": False}.get(raw.strip().lower(), raw)
    return key.strip(), value
