"""Week 2 reference: a complete, resumable training loop for :class:`llmlab.model.GPT`.

What one run does (``python -m llmlab.train_cli CONFIG`` drives it from the command line)::

    data_dir/{train,val}.bin --get_batch--> model --cross_entropy--> backward (x grad_accum_steps)
        --> clip_grad_norm --> AdamW step at lr_at(step) --> every eval_interval: val loss, perplexity
        --> every ckpt_interval: out_dir/ckpt.pt (atomic)        logs: out_dir/metrics.{csv,jsonl}, summary.json

A checkpoint holds everything the next step depends on: parameters, optimizer state, step, and the
states of every random number generator (torch, numpy, python, and the generator that draws the
batches), so a run resumed from step k reaches step n with *bit-for-bit* the same parameters as an
uninterrupted run. Checkpoints are written to a temporary file and renamed into place: a run that
crashes or diverges never leaves a broken checkpoint, and never replaces a good one by a bad one.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import math
import os
import random
import time
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .config import device as best_device
from .config import set_seed, set_threads
from .model import GPT, GPTConfig
from .optim import AdamW, clip_grad_norm, cross_entropy, lr_at
from .progress import progress
from .tokendata import TokenDataError, get_batch, load_meta, read_tokens

CKPT_FORMAT = "llmlab-train-ckpt"
CKPT_VERSION = 1
# GPTConfig fields that decide the parameter shapes: a checkpoint only fits a model with the same values
SHAPE_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias")


class ConfigError(ValueError):
    """A training config that cannot be used (unknown key, wrong type, inconsistent values)."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or does not fit the configured model."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


@dataclass
class TrainConfig:
    # data: a folder written by llmlab.tokendata.prepare_dataset (train.bin, val.bin, meta.json)
    data_dir: str = "runs/data/shakespeare_char"
    out_dir: str = "runs/train"
    vocab_size: int | None = None  # None: read meta.json in data_dir
    # model (llmlab.model.GPTConfig)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    # optimisation
    optimizer: str = "scratch"  # "scratch": llmlab.optim.AdamW, "torch": torch.optim.AdamW
    batch_size: int = 12
    grad_accum_steps: int = 1  # tokens per optimizer step = batch_size * block_size * grad_accum_steps
    max_steps: int = 2000
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    lr_decay_steps: int | None = None  # where the cosine reaches min_lr; None: max_steps
    weight_decay: float = 0.1  # on matrices and embeddings only, not on biases and LayerNorm gains
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    # evaluation, logging, checkpoints
    eval_interval: int = 250
    eval_batches: int = 20
    log_interval: int = 10
    ckpt_interval: int | None = None  # None: every eval_interval (and always at the end)
    sample_tokens: int = 0  # print a sample of this many tokens at the end (char/byte data)
    save_hf: bool = False  # also save the final model as a transformers GPT-2 in out_dir/hf
    # run
    seed: int = 1337
    device: str = "auto"  # "auto", "cpu", "cuda", "mps"
    dtype: str = "float32"  # "float32" or "bfloat16" (autocast)
    threads: int | None = None  # CPU threads; None: leave torch's default
    progress: bool = True

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
        need(self.device in {"auto", "cpu", "cuda", "mps"}, f"device must be auto, cpu, cuda or mps, got {self.device!r}")
        need(self.dtype in {"float32", "bfloat16"}, f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(0 <= self.min_lr <= self.max_lr, f"need 0 <= min_lr <= max_lr, got {self.min_lr}, {self.max_lr}")
        need(0 <= self.warmup_steps <= self.decay_steps,
             f"need 0 <= warmup_steps <= lr_decay_steps (or max_steps), got {self.warmup_steps}, {self.decay_steps}")
        need(self.weight_decay >= 0 and self.grad_clip >= 0 and self.eps >= 0, "weight_decay, grad_clip and eps must be >= 0")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, f"betas must be in [0, 1), got {self.beta1}, {self.beta2}")
        need(self.ckpt_interval is None or self.ckpt_interval >= 1, f"ckpt_interval must be >= 1, got {self.ckpt_interval}")
        need(self.vocab_size is None or 1 <= self.vocab_size <= 65536, f"vocab_size must be in [1, 65536], got {self.vocab_size}")

    @property
    def decay_steps(self) -> int:
        return self.max_steps if self.lr_decay_steps is None else self.lr_decay_steps

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.block_size * self.grad_accum_steps


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


# ---------------------------------------------------------------------------------------------
# random number generators and atomic checkpoint files


def capture_rng_state(batch_gen: torch.Generator) -> dict:
    """The state of every RNG a training step draws from (plain types + tensors: loads with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
        "batch": batch_gen.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, batch_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    batch_gen.set_state(state["batch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to ``<dir>/.<name>.tmp-<pid>``, fsync, then rename over ``path``.

    The rename is atomic on POSIX and Windows: ``path`` holds either the old complete file or the
    new complete file, never a partial one, whatever happens during the write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """Read a trainer checkpoint; a missing, truncated or foreign file is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume (start without --resume, or point out_dir at the run)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, pickle errors: all mean "unreadable"
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a PyTorch file ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Delete it to start over, or restore a good copy."
        ) from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not a checkpoint written by llmlab.trainer")
    missing = [k for k in ("step", "model", "optimizer", "model_config", "rng") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}: it is incomplete")
    return ckpt


def check_model_shape(saved: dict, current: GPTConfig, path) -> None:
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, config {getattr(current, k)!r}"
             for k in SHAPE_FIELDS if saved.get(k) != getattr(current, k)]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was trained with a different model shape; it cannot be resumed with this config:\n  "
            + "\n  ".join(diffs)
            + "\nUse the checkpoint's values, or start a new run in another out_dir."
        )


# ---------------------------------------------------------------------------------------------
# logs


class MetricsLog:
    """``metrics.csv`` and ``metrics.jsonl``: one row per logged step (val columns filled at evals)."""

    COLUMNS = ["step", "tokens", "lr", "train_loss", "grad_norm", "val_loss", "val_ppl", "dt_ms", "tokens_per_s"]

    def __init__(self, out_dir: Path, resume_step: int | None):
        self.csv_path, self.jsonl_path = out_dir / "metrics.csv", out_dir / "metrics.jsonl"
        if resume_step is None:
            rows = []
        else:  # keep what the interrupted run logged up to the checkpoint, drop what came after it
            rows = [r for r in self.read(self.jsonl_path) if r["step"] <= resume_step]
        with open(self.csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, self.COLUMNS)
            w.writeheader()
            w.writerows({k: r.get(k, "") for k in self.COLUMNS} for r in rows)
        with open(self.jsonl_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    @staticmethod
    def read(path: Path) -> list[dict]:
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log(self, row: dict) -> None:
        with open(self.csv_path, "a", newline="") as f:
            csv.DictWriter(f, self.COLUMNS).writerow({k: row.get(k, "") for k in self.COLUMNS})
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(row) + "\n")


# ---------------------------------------------------------------------------------------------
# the trainer


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings (dim >= 2); never biases and LayerNorm weights (as nanoGPT)."""
    params = [p for p in model.parameters() if p.requires_grad]  # tied weights appear once
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


class Trainer:
    """Build everything from a :class:`TrainConfig`; :meth:`run` trains.

    Every check (config, data, checkpoint, model shape) happens here, before anything is written.
    ``resume=True`` continues ``out_dir/ckpt.pt``; without it an existing checkpoint is an error
    unless ``overwrite=True``.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, overwrite: bool = False, log=print):
        cfg.validate()
        self.cfg, self.log = cfg, log
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_path = self.out_dir / "ckpt.pt"
        if cfg.threads:
            set_threads(cfg.threads)

        # data
        data_dir = Path(cfg.data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data_dir {data_dir} does not exist (build it with python -m llmlab.tokendata)")
        self.meta = load_meta(data_dir) if (data_dir / "meta.json").is_file() else {}
        vocab_size = cfg.vocab_size or self.meta.get("vocab_size")
        if vocab_size is None:
            raise ConfigError(f"vocab_size is not set and {data_dir / 'meta.json'} does not exist")
        self.train_data = read_tokens(data_dir / "train.bin")
        self.val_data = read_tokens(data_dir / "val.bin")
        for name, data in (("train.bin", self.train_data), ("val.bin", self.val_data)):
            if len(data) <= cfg.block_size:
                raise TokenDataError(f"{data_dir / name} holds {len(data)} tokens; "
                                     f"training needs more than block_size = {cfg.block_size}")
            if len(data) <= 50_000_000 and int(data.max()) >= vocab_size:  # cheap below ~100 MB
                raise TokenDataError(f"{data_dir / name} holds token id {int(data.max())} >= vocab_size {vocab_size}")

        # model and optimizer
        self.device = best_device() if cfg.device == "auto" else torch.device(cfg.device)
        set_seed(cfg.seed)
        self.model_config = GPTConfig(vocab_size=vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                                      n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias)
        self.model = GPT(self.model_config).to(self.device)
        groups = param_groups(self.model, cfg.weight_decay)
        opt_cls = AdamW if cfg.optimizer == "scratch" else torch.optim.AdamW
        extra = {} if cfg.optimizer == "scratch" else {"foreach": False}  # same arithmetic order as ours
        self.optimizer = opt_cls(groups, lr=cfg.max_lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, **extra)
        self.batch_gen = torch.Generator().manual_seed(cfg.seed)  # draws the training batches (CPU)
        self.step = 0  # optimizer steps done
        self.resumed_from: int | None = None
        self.last_eval: dict = {}

        if resume:
            self._resume()
        elif self.ckpt_path.exists() and not overwrite:
            raise CheckpointError(
                f"{self.ckpt_path} already exists. Resume it (--resume), start over (--overwrite), "
                "or choose another out_dir; a new run does not silently replace a checkpoint."
            )

    # -- checkpoints ------------------------------------------------------------------------

    def _resume(self) -> None:
        ckpt = load_checkpoint_file(self.ckpt_path)
        check_model_shape(ckpt["model_config"], self.model_config, self.ckpt_path)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {self.ckpt_path} does not fit the model/optimizer: {e}") from e
        # the config's hyperparameters win over the saved ones (lr is set at every step anyway)
        for g, wd in zip(self.optimizer.param_groups, (self.cfg.weight_decay, 0.0)):
            g.update(betas=(self.cfg.beta1, self.cfg.beta2), eps=self.cfg.eps, weight_decay=wd)
        restore_rng_state(ckpt["rng"], self.batch_gen)
        self.step = self.resumed_from = int(ckpt["step"])
        self.last_eval = ckpt.get("last_eval", {})
        self.log(f"resumed {self.ckpt_path} at step {self.step}")

    def save_checkpoint(self) -> None:
        atomic_torch_save(
            {
                "format": CKPT_FORMAT,
                "version": CKPT_VERSION,
                "step": self.step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "optimizer_kind": self.cfg.optimizer,
                "model_config": asdict(self.model_config),
                "train_config": asdict(self.cfg),
                "rng": capture_rng_state(self.batch_gen),
                "last_eval": self.last_eval,
            },
            self.ckpt_path,
        )

    # -- one step, one evaluation -----------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.dtype == "bfloat16")

    def train_step(self, lr: float) -> tuple[float, float]:
        """One optimizer step at learning rate ``lr`` over ``grad_accum_steps`` micro-batches.

        Returns (mean loss over the micro-batches, global gradient norm before clipping).
        """
        cfg, model = self.cfg, self.model
        model.train()
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(cfg.grad_accum_steps):
            x, y = get_batch(self.train_data, cfg.block_size, cfg.batch_size, self.batch_gen, self.device)  # (B, T)
            with self._autocast():
                logits, _ = model(x)  # (B, T, V)
            # dividing by the number of micro-batches makes the summed gradients a mean over all of them
            loss = cross_entropy(logits.float(), y) / cfg.grad_accum_steps
            loss.backward()
            total += loss.item()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = clip_grad_norm(model.parameters(), max_norm).item()
        self.optimizer.step()
        return total, grad_norm

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean loss over ``eval_batches`` fixed batches of each split (the same batches at every eval).

        The batches come from their own generators, so evaluating never changes the training RNGs.
        """
        cfg, model = self.cfg, self.model
        model.eval()
        out = {}
        for i, (split, data) in enumerate((("train", self.train_data), ("val", self.val_data))):
            gen = torch.Generator().manual_seed(cfg.seed + 1 + i)
            losses = []
            for _ in range(cfg.eval_batches):
                x, y = get_batch(data, cfg.block_size, cfg.batch_size, gen, self.device)
                with self._autocast():
                    logits, _ = model(x)
                losses.append(cross_entropy(logits.float(), y).item())
            out[f"{split}_eval_loss"] = float(np.mean(losses))
        model.train()
        out["val_loss"] = out.pop("val_eval_loss")
        out["val_ppl"] = math.exp(out["val_loss"])
        return out

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop_at: int | None = None) -> dict:
        """Train to ``max_steps`` (or stop after step ``stop_at``, as an interrupted run would, with a
        checkpoint there). Returns the summary written to ``out_dir/summary.json``."""
        cfg = self.cfg
        end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
        ckpt_every = cfg.ckpt_interval or cfg.eval_interval
        self.out_dir.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(self.out_dir, self.resumed_from)
        n_params = self.model.num_params(non_embedding=False)
        if self.step == 0:
            self.log(f"model: {n_params / 1e6:.2f}M parameters | {cfg.tokens_per_step:,} tokens per step | "
                     f"{cfg.max_steps} steps on {self.device}")
            self.last_eval = self.evaluate()
            metrics.log({"step": 0, "tokens": 0, **self.last_eval})  # a row's lr is that of the step ending there
            self.log(f"step 0: val loss {self.last_eval['val_loss']:.4f} (uniform guess: ln V = {math.log(self.model_config.vocab_size):.4f})")
        t_start, tokens_start = time.perf_counter(), self.step * cfg.tokens_per_step
        bar = progress(range(self.step, end), initial=self.step, total=cfg.max_steps, disable=not cfg.progress,
                       desc="train", unit="step")
        say = bar.write if cfg.progress else self.log
        for step in bar:
            lr = lr_at(step, cfg.max_lr, cfg.min_lr, cfg.warmup_steps, cfg.decay_steps)
            t0 = time.perf_counter()
            loss, grad_norm = self.train_step(lr)
            dt = time.perf_counter() - t0
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                bar.close()
                raise TrainingDiverged(
                    f"the loss is {loss} (gradient norm {grad_norm}) at step {step + 1}; stopping. "
                    f"The last good checkpoint ({self.ckpt_path}, step {self._last_ckpt_step()}) is left as it was. "
                    "Lower max_lr, raise warmup_steps or turn on grad_clip."
                )
            self.step = step + 1
            row = {"step": self.step, "tokens": self.step * cfg.tokens_per_step, "lr": lr, "train_loss": loss,
                   "grad_norm": grad_norm, "dt_ms": 1000 * dt, "tokens_per_s": cfg.tokens_per_step / dt}
            if self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps:
                self.last_eval = self.evaluate()
                row.update(self.last_eval)
                say(f"step {self.step}: train loss {self.last_eval['train_eval_loss']:.4f} | "
                    f"val loss {self.last_eval['val_loss']:.4f} | val ppl {self.last_eval['val_ppl']:.2f} | lr {lr:.2e}")
            if "val_loss" in row or self.step % cfg.log_interval == 0:
                metrics.log(row)
            if cfg.progress:
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", refresh=False)
            if self.step % ckpt_every == 0 or self.step == end:
                self.save_checkpoint()
        bar.close()
        wall = time.perf_counter() - t_start
        summary = {
            "step": self.step, "max_steps": cfg.max_steps, "finished": self.step >= cfg.max_steps,
            "n_params": n_params, "tokens_seen": self.step * cfg.tokens_per_step,
            "wall_s_this_session": wall,
            "tokens_per_s_this_session": (self.step * cfg.tokens_per_step - tokens_start) / max(wall, 1e-9),
            **{k: self.last_eval.get(k) for k in ("train_eval_loss", "val_loss", "val_ppl")},
            "resumed_from": self.resumed_from, "config": asdict(cfg),
        }
        tmp = self.out_dir / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        os.replace(tmp, self.out_dir / "summary.json")
        if summary["finished"]:
            if cfg.sample_tokens:
                self.log("sample:\n" + self.sample(cfg.sample_tokens))
            if cfg.save_hf:
                self.save_hf(self.out_dir / "hf")
        return summary

    def _last_ckpt_step(self):
        try:
            return int(torch.load(self.ckpt_path, map_location="cpu", weights_only=True)["step"])
        except Exception:
            return "none"

    def sample(self, n_tokens: int, temperature: float = 1.0, top_k: int | None = None) -> str:
        from .tokendata import decoder

        decode = decoder(self.meta)
        start = torch.zeros((1, 1), dtype=torch.long, device=self.device)  # id 0: '\n' for Tiny Shakespeare chars
        ids = self.model.generate(start, n_tokens, temperature=temperature, top_k=top_k,
                                  generator=torch.Generator(self.device).manual_seed(self.cfg.seed))[0].tolist()
        return decode(ids) if decode else " ".join(map(str, ids))

    def save_hf(self, path: str | os.PathLike) -> Path:
        """The model as a ``transformers`` GPT-2 (``GPT2LMHeadModel.from_pretrained(path)`` loads it)."""
        from .model import to_hf_gpt2

        to_hf_gpt2(self.model.cpu()).save_pretrained(path)
        self.model.to(self.device)
        self.log(f"saved a Hugging Face GPT-2 copy in {path}")
        return Path(path)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> dict:
    """Build a :class:`Trainer` and run it to ``max_steps``."""
    return Trainer(cfg, resume=resume, overwrite=overwrite).run()
