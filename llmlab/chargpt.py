"""Week 1 reference: the char-level GPT pipeline (tokenizer, batches, evaluation, training loop).

In the spirit of nanoGPT's ``train.py``, cut down to what a char-level run on a laptop needs::

    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train_data, val_data = train_val_split(tok.encode_tensor(text))
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64))
    history = train(model, train_data, val_data, TrainConfig(max_iters=1000))
    print(tok.decode(model.generate(tok.encode_tensor("\\n")[None], 200, top_k=20)[0]))
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .model import GPT, GPTConfig
from .progress import progress

__all__ = [
    "CharTokenizer", "train_val_split", "get_batch", "estimate_loss", "split_loss",
    "TrainConfig", "lr_at", "make_optimizer", "train", "GPT", "GPTConfig",
]


# ---------------------------------------------------------------------------------------------
# tokenizer


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


# ---------------------------------------------------------------------------------------------
# data


def train_val_split(data: torch.Tensor, frac: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``frac`` of the tokens for training, the rest for validation (no shuffling:
    shuffling characters would leak the validation text into training)."""
    n = int(frac * len(data))
    return data[:n], data[n:]


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator | None = None,
              device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``data``: x (B, T) and the targets y (B, T), shifted by one."""
    if len(data) <= block_size:
        raise ValueError(f"need more than block_size={block_size} tokens, got {len(data)}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    windows = data.unfold(0, block_size + 1, 1)[ix]  # (B, T+1): a view of every window, then a gather
    x, y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
    if torch.device(device).type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


# ---------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def estimate_loss(model, splits: dict, eval_iters: int, block_size: int | None = None, batch_size: int = 32,
                  generator: torch.Generator | None = None, device="cpu") -> dict:
    """Mean loss over ``eval_iters`` random batches of each split (nanoGPT's estimate).

    ``splits`` maps a name to a 1-D token tensor. Pass a freshly seeded ``generator`` to score the
    same windows every time (less noise when comparing evaluations).
    """
    block_size = block_size or model.config.block_size
    was_training = model.training
    model.eval()
    out = {}
    for name, data in splits.items():
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            x, y = get_batch(data, block_size, batch_size, generator, device)
            losses[k] = model(x, y)[1].item()
        out[name] = losses.mean().item()
    model.train(was_training)
    return out


@torch.no_grad()
def split_loss(model, data: torch.Tensor, block_size: int | None = None, batch_size: int = 256,
               device="cpu") -> float:
    """Mean loss over *every* token of ``data``, cut into non-overlapping windows (deterministic).

    Each window predicts its targets with 0..T-1 tokens of context, the same mix as random windows.
    """
    block_size = block_size or model.config.block_size
    n = (len(data) - 1) // block_size
    x = data[: n * block_size].view(n, block_size)
    y = data[1: n * block_size + 1].view(n, block_size)
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, n, batch_size):
        xb, yb = x[i: i + batch_size].to(device), y[i: i + batch_size].to(device)
        total += model(xb, yb)[1].item() * xb.numel()
    model.train(was_training)
    return total / (n * block_size)


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class TrainConfig:
    max_iters: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-3
    min_lr: float | None = None  # end of the cosine decay; default learning_rate / 10
    warmup_iters: int = 0  # linear warm-up, then cosine decay to min_lr at max_iters
    decay_lr: bool = True
    weight_decay: float = 0.1  # on matrices only (not biases, LayerNorm, position/token tables' bias)
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # 0 disables clipping
    eval_interval: int = 250  # also evaluates after the last step
    eval_iters: int = 20  # batches per split per evaluation
    eval_batch_size: int | None = None  # default batch_size
    target_loss: float | None = None  # stop at the first evaluation with val loss <= target_loss
    seed: int = 1337
    device: str = "cpu"
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return cls(**d)


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Linear warm-up for ``warmup_iters`` steps, then cosine decay to ``min_lr`` at ``max_iters``."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    min_lr = cfg.learning_rate / 10 if cfg.min_lr is None else cfg.min_lr
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    progress_ = (it - cfg.warmup_iters) / max(1, cfg.max_iters - cfg.warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_))) * (cfg.learning_rate - min_lr)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the 2-D weights only (as nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=cfg.betas, foreach=True)


def train(model, train_data: torch.Tensor, val_data: torch.Tensor, cfg: TrainConfig | dict | None = None,
          *, evaluate=None, callback=None) -> dict:
    """Train ``model`` (a GPT: ``model(x, y)`` returns ``(logits, loss)``) and return a history dict.

    history: ``iter``/``train_loss``/``val_loss``/``tokens``/``time`` at every evaluation,
    ``step_loss``/``lr`` at every step, plus ``stopped_at`` (iterations run) and ``reached_target``.
    ``evaluate(model) -> {"train": ..., "val": ...}`` replaces :func:`estimate_loss` if given;
    ``callback(it, history)`` runs after each evaluation (return True to stop).
    """
    if cfg is None:
        cfg = TrainConfig()
    elif isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    block_size = model.config.block_size
    eval_bs = cfg.eval_batch_size or cfg.batch_size
    gen = torch.Generator().manual_seed(cfg.seed)  # the training batches
    if evaluate is None:
        def evaluate(m):
            # the same windows at every evaluation (fixed seed): curves compare like with like
            return estimate_loss(m, {"train": train_data, "val": val_data}, cfg.eval_iters, block_size, eval_bs,
                                 torch.Generator().manual_seed(cfg.seed + 1), cfg.device)

    opt = make_optimizer(model, cfg)
    hist = {"iter": [], "train_loss": [], "val_loss": [], "tokens": [], "time": [], "step_loss": [], "lr": [],
            "config": asdict(cfg), "stopped_at": 0, "reached_target": False}
    model.train()
    t0, done = time.perf_counter(), 0
    bar = progress(range(cfg.max_iters), desc="train", disable=not cfg.progress)
    for it in bar:
        lr = lr_at(it, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, block_size, cfg.batch_size, gen, cfg.device)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        hist["step_loss"].append(loss.item())
        hist["lr"].append(lr)
        done = it + 1
        if done % cfg.eval_interval == 0 or done == cfg.max_iters:
            losses = evaluate(model)
            for k in ("train", "val"):
                hist[f"{k}_loss"].append(losses.get(k, float("nan")))
            hist["iter"].append(done)
            hist["tokens"].append(done * cfg.batch_size * block_size)
            hist["time"].append(time.perf_counter() - t0)
            bar.set_postfix(train=f"{hist['train_loss'][-1]:.3f}", val=f"{hist['val_loss'][-1]:.3f}")
            stop = callback(done, hist) if callback else False
            if cfg.target_loss is not None and hist["val_loss"][-1] <= cfg.target_loss:
                hist["reached_target"] = True
                stop = True
            if stop:
                break
    bar.close()
    hist["stopped_at"] = done
    model.eval()
    return hist
