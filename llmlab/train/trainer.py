"""Week 2 reference: the course's one training loop, :class:`Trainer`, resumable bit for bit.

What one step does::

    batches --next--> loss_fn(model, batch) --backward (x grad_accum_steps)--> clip_grad_norm
        --> AdamW step at cfg.lr_at(step) --> every eval_interval: evaluate --> callbacks
        (MetricsLog: out_dir/metrics.{csv,jsonl}; Checkpoint: out_dir/ckpt.pt, atomic)

Every run of the course goes through it:

- Week 1's char-level runs on tensors: :func:`train` (``train(model, train_data, val_data, cfg)``);
- the command line and the zoo: ``Trainer(cfg)`` builds the GPT of ``cfg`` and reads ``cfg.data_dir``
  (``python -m llmlab.train.cli CONFIG`` drives it);
- anything else plugs in its own pieces instead of copying the loop: ``model=`` (a LoRA-wrapped or
  ``transformers`` model, a reward model with a scalar head), ``batches=`` (any iterator of batches:
  padded SFT batches, preference pairs), ``loss_fn=`` (``loss_fn(model, batch) -> loss``, or
  ``(loss, {name: float})``: a masked SFT loss, the DPO loss against a frozen reference held in a
  closure, a Bradley-Terry reward loss), ``eval_sets=`` and ``callbacks=``.

A checkpoint holds everything the next step depends on: parameters, optimizer state, step, and the
states of every random number generator (torch, numpy, python, and the generator that draws the
batches), so a run resumed from step k reaches step n with *bit-for-bit* the same parameters as an
uninterrupted run. Checkpoints are written to a temporary file and renamed into place: a run that
crashes or diverges never leaves a broken checkpoint, and never replaces a good one by a bad one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from ..config import device as best_device
from ..config import set_seed, set_threads
from ..models.gpt import GPT, GPTConfig
from ..progress import progress
from .batches import RandomWindows, TokenDataError, load_meta, read_tokens
from .config import ConfigError, TrainConfig, parse_override  # noqa: F401  (llmlab.trainer's names)
from .optim import clip_grad_norm, cross_entropy, make_optimizer

CKPT_FORMAT = "llmlab-train-ckpt"
CKPT_VERSION = 1
# GPTConfig fields that decide the parameter shapes: a checkpoint only fits a model with the same values
SHAPE_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "bias")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or does not fit the configured model."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


def causal_lm_loss(model, batch) -> torch.Tensor:
    """The default ``loss_fn``: next-token cross-entropy of a (x, y) batch, in float32.

    ``model(x)`` returns the logits first (the course GPT's ``(logits, loss)``, or a ``transformers``
    output with ``.logits``); targets equal to -100 are ignored (padding, prompt tokens).
    """
    x, y = batch
    out = model(x)
    logits = out.logits if hasattr(out, "logits") else out[0]  # (B, T, V)
    return cross_entropy(logits.float(), y)


# ---------------------------------------------------------------------------------------------
# random number generators and atomic checkpoint files


def capture_rng_state(batch_gen: torch.Generator | None) -> dict:
    """The state of every RNG a training step draws from (plain types + tensors: loads with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }
    if batch_gen is not None:
        state["batch"] = batch_gen.get_state()
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, batch_gen: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if batch_gen is not None and "batch" in state:
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
        raise CheckpointError(f"{path} is a PyTorch file but not a checkpoint written by llmlab.train")
    missing = [k for k in ("step", "model", "optimizer", "model_config", "rng") if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}: it is incomplete")
    return ckpt


def check_model_shape(saved: dict | None, current, path) -> None:
    if not isinstance(saved, dict) or not all(hasattr(current, k) for k in SHAPE_FIELDS):
        return  # not a GPT: load_state_dict below reports any mismatch
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
    """``metrics.csv`` and ``metrics.jsonl`` in ``out_dir``: one row per logged step (val columns filled at evals).

    The on-disk log of a run (``train_loss`` there is the loss of that step's batch; the evaluation
    estimates are ``train_eval_loss`` / ``val_loss``). The in-memory record is :attr:`Trainer.history`.
    """

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
# callbacks


class Callback:
    """Hooks into :meth:`Trainer.run`; override the ones you need. Set ``trainer.should_stop = True`` to stop."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_step_end(self, trainer: "Trainer", row: dict) -> None:
        """After every optimizer step; ``row`` holds step, lr, train_loss, grad_norm (+ the evaluation's keys)."""

    def on_train_end(self, trainer: "Trainer", summary: dict) -> None: ...


class LogMetrics(Callback):
    """Writes the rows of :class:`MetricsLog` to ``out_dir`` (every ``log_interval`` steps and every evaluation)."""

    def on_train_start(self, trainer):
        self.log = MetricsLog(trainer.out_dir, trainer.resumed_from)
        if trainer.step == 0 and trainer.last_eval:
            self.log.log({"step": 0, "tokens": 0, **trainer.last_eval})  # a row's lr is that of the step ending there

    def on_step_end(self, trainer, row):
        if "val_loss" in row or trainer.step % trainer.cfg.log_interval == 0:
            self.log.log(row)


class SaveCheckpoints(Callback):
    """``out_dir/ckpt.pt`` every ``ckpt_interval`` steps (default: ``eval_interval``) and at the last step."""

    def on_step_end(self, trainer, row):
        every = trainer.cfg.ckpt_interval or trainer.cfg.eval_interval
        if trainer.step % every == 0 or trainer.step == trainer.end:
            trainer.save_checkpoint()


class StopAtTarget(Callback):
    """Stop at the first evaluation whose validation loss is at most ``cfg.target_loss``."""

    def on_step_end(self, trainer, row):
        target = trainer.cfg.target_loss
        if target is not None and row.get("val_loss") is not None and row["val_loss"] <= target:
            trainer.history["reached_target"] = True
            trainer.should_stop = True


# ---------------------------------------------------------------------------------------------
# the trainer


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _loss_and_metrics(out) -> tuple[torch.Tensor, dict]:
    return (out[0], out[1]) if isinstance(out, tuple) else (out, {})


class Trainer:
    """The training loop. ``Trainer(cfg)`` builds a GPT and its data from ``cfg`` (the command line, the zoo);
    ``Trainer(cfg, model=..., batches=..., loss_fn=..., eval_sets=...)`` trains anything else.

    - ``batches``: an iterator of batches (``next(batches)`` once per micro-batch); if it has a
      ``generator`` attribute (:class:`llmlab.train.batches.RandomWindows`), checkpoints save its state.
    - ``loss_fn(model, batch)``: a scalar loss (or ``(loss, {name: float})``); default :func:`causal_lm_loss`.
    - ``eval_sets``: ``{name: function returning a list of batches}``, scored with ``loss_fn`` at every
      evaluation (``"val"`` is the validation split); ``evaluate=`` replaces the whole evaluation
      (a function ``model -> {name_loss: float}``).
    - ``callbacks``: extra :class:`Callback` objects; logging and checkpoints are callbacks too (active when
      ``cfg.out_dir`` is set), as is early stopping at ``cfg.target_loss``.
    - ``optimizer``: default :func:`llmlab.train.optim.make_optimizer` (AdamW, decay on matrices only).

    Every check (config, data, checkpoint, model shape) happens here, before anything is written.
    ``resume=True`` continues ``out_dir/ckpt.pt``; without it an existing checkpoint is an error unless
    ``overwrite=True``. ``log``: where messages go (``None``: nowhere).
    """

    def __init__(self, cfg: TrainConfig | None = None, resume: bool = False, overwrite: bool = False, log=print, *,
                 model: torch.nn.Module | None = None, batches: Iterable | None = None,
                 loss_fn: Callable | None = None, eval_sets: dict | None = None, evaluate: Callable | None = None,
                 callbacks: Iterable[Callback] = (), optimizer: torch.optim.Optimizer | None = None):
        cfg = TrainConfig() if cfg is None else cfg
        cfg.validate()
        self.cfg, self.log = cfg, log
        self.out_dir = Path(cfg.out_dir) if cfg.out_dir else None
        self.ckpt_path = self.out_dir / "ckpt.pt" if self.out_dir else None
        if cfg.threads:
            set_threads(cfg.threads)
        self.device = best_device() if cfg.device == "auto" else torch.device(cfg.device)
        self.meta: dict = {}
        if model is None:
            model, default_batches, default_eval = self._from_config()
            batches = default_batches if batches is None else batches
            eval_sets = default_eval if eval_sets is None else eval_sets
        elif batches is None:
            raise ConfigError("Trainer(model=...) needs batches= too (an iterator of batches)")
        self.model = model.to(self.device)
        self.model_config = getattr(model, "config", None)
        self.batches = batches
        self.batch_iter = iter(batches)
        self.batch_gen = getattr(batches, "generator", None)  # saved in checkpoints: resumes the batch stream
        self.loss_fn = loss_fn or causal_lm_loss
        self.eval_sets = eval_sets or {}
        self._evaluate = evaluate
        self.optimizer = optimizer or make_optimizer(self.model, cfg)
        self.callbacks = [StopAtTarget(), *([LogMetrics(), SaveCheckpoints()] if self.out_dir else []), *callbacks]
        self.step = 0  # optimizer steps done
        self.end = cfg.max_steps
        self.resumed_from: int | None = None
        self.last_eval: dict = {}
        self.should_stop = False
        # the run's record: per step (step_loss, lr, grad_norm) and per evaluation (iter, tokens, time, <split>_loss)
        self.history = {"iter": [], "tokens": [], "time": [], "step_loss": [], "lr": [], "grad_norm": [],
                        "stopped_at": 0, "reached_target": False, "config": asdict(cfg)}
        for name in self.eval_sets:
            self.history[f"{name}_loss"] = []

        if resume:
            if self.ckpt_path is None:
                raise ConfigError("resume=True needs cfg.out_dir (where ckpt.pt is)")
            self._resume()
        elif self.ckpt_path is not None and self.ckpt_path.exists() and not overwrite:
            raise CheckpointError(
                f"{self.ckpt_path} already exists. Resume it (--resume), start over (--overwrite), "
                "or choose another out_dir; a new run does not silently replace a checkpoint."
            )

    def _from_config(self):
        """The GPT of ``cfg``, random windows of ``data_dir/train.bin``, and fixed windows of both splits to evaluate."""
        cfg = self.cfg
        data_dir = Path(cfg.data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data_dir {data_dir} does not exist (build it with python -m llmlab.train.batches)")
        self.meta = load_meta(data_dir) if (data_dir / "meta.json").is_file() else {}
        vocab_size = cfg.vocab_size or self.meta.get("vocab_size")
        if vocab_size is None:
            raise ConfigError(f"vocab_size is not set and {data_dir / 'meta.json'} does not exist")
        splits = {"train": read_tokens(data_dir / "train.bin"), "val": read_tokens(data_dir / "val.bin")}
        for name, data in splits.items():
            if len(data) <= cfg.block_size:
                raise TokenDataError(f"{data_dir / name}.bin holds {len(data)} tokens; "
                                     f"training needs more than block_size = {cfg.block_size}")
            if len(data) <= 50_000_000 and int(data.max()) >= vocab_size:  # cheap below ~100 MB
                raise TokenDataError(f"{data_dir / name}.bin holds token id {int(data.max())} >= vocab_size {vocab_size}")
        set_seed(cfg.seed)
        model = GPT(GPTConfig(vocab_size=vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                              n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias))
        return model, *lm_batches(splits, cfg, self.device)

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
        if len(self.optimizer.param_groups) == 2:  # make_optimizer's groups: decayed, not decayed
            for g, wd in zip(self.optimizer.param_groups, (self.cfg.weight_decay, 0.0)):
                g.update(betas=(self.cfg.beta1, self.cfg.beta2), eps=self.cfg.eps, weight_decay=wd)
        restore_rng_state(ckpt["rng"], self.batch_gen)
        self.step = self.resumed_from = int(ckpt["step"])
        self.last_eval = ckpt.get("last_eval", {})
        self._say(f"resumed {self.ckpt_path} at step {self.step}")

    def save_checkpoint(self) -> None:
        cfg_model = self.model_config
        atomic_torch_save(
            {
                "format": CKPT_FORMAT,
                "version": CKPT_VERSION,
                "step": self.step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "optimizer_kind": self.cfg.optimizer,
                "model_config": asdict(cfg_model) if is_dataclass(cfg_model) else None,
                "train_config": asdict(self.cfg),
                "rng": capture_rng_state(self.batch_gen),
                "last_eval": self.last_eval,
            },
            self.ckpt_path,
        )

    # -- one step, one evaluation -----------------------------------------------------------

    def _say(self, msg: str) -> None:
        if self.log:
            self.log(msg)

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
            batch = _to_device(next(self.batch_iter), self.device)
            with self._autocast():
                loss, _ = _loss_and_metrics(self.loss_fn(model, batch))
            # dividing by the number of micro-batches makes the summed gradients a mean over all of them
            loss = loss / cfg.grad_accum_steps
            loss.backward()
            total += loss.item()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = clip_grad_norm([p for p in model.parameters() if p.requires_grad], max_norm).item()
        self.optimizer.step()
        return total, grad_norm

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean ``loss_fn`` over the batches of each eval set (the same batches at every evaluation).

        Keys: ``val_loss`` and ``val_ppl`` for the set named "val", ``<name>_eval_loss`` for the others
        (and the means of any metrics ``loss_fn`` returns, prefixed the same way). Evaluating never
        changes the training RNGs: eval batches come from their own generators.
        """
        model = self.model
        was_training = model.training
        model.eval()
        if self._evaluate is not None:
            out = dict(self._evaluate(model))
        else:
            out = {}
            for name, make in self.eval_sets.items():
                sums: dict[str, list[float]] = {}
                for batch in make():
                    with self._autocast():
                        loss, metrics = _loss_and_metrics(self.loss_fn(model, _to_device(batch, self.device)))
                    for k, v in {"loss": loss.item(), **metrics}.items():
                        sums.setdefault(k, []).append(float(v))
                prefix = "val_" if name == "val" else f"{name}_eval_"
                out.update({prefix + k: float(np.mean(v)) for k, v in sums.items()})
        if "val_loss" in out:
            out["val_ppl"] = math.exp(out["val_loss"]) if out["val_loss"] < 700 else math.inf
        model.train(was_training)
        return out

    def _record_eval(self, ev: dict, elapsed: float) -> None:
        h = self.history
        h["iter"].append(self.step)
        h["tokens"].append(self.step * self.cfg.tokens_per_step)
        h["time"].append(elapsed)
        for name in self.eval_sets:
            key = "val_loss" if name == "val" else f"{name}_eval_loss"
            h.setdefault(f"{name}_loss", []).append(ev.get(key, float("nan")))

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop_at: int | None = None) -> dict:
        """Train to ``max_steps`` (or stop after step ``stop_at``, as an interrupted run would, with a
        checkpoint there). Returns the summary (also written to ``out_dir/summary.json``)."""
        cfg = self.cfg
        self.end = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
        self.should_stop = False
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        n_params = sum(p.numel() for p in {id(p): p for p in self.model.parameters()}.values())
        t_start, tokens_start = time.perf_counter(), self.step * cfg.tokens_per_step
        if self.step == 0:
            self._say(f"model: {n_params / 1e6:.2f}M parameters | {cfg.tokens_per_step:,} tokens per step | "
                      f"{cfg.max_steps} steps on {self.device}")
            self.last_eval = self.evaluate()
            self._record_eval(self.last_eval, 0.0)
            if "val_loss" in self.last_eval:
                vocab = getattr(self.model_config, "vocab_size", None)
                self._say(f"step 0: val loss {self.last_eval['val_loss']:.4f}"
                          + (f" (uniform guess: ln V = {math.log(vocab):.4f})" if vocab else ""))
        for cb in self.callbacks:
            cb.on_train_start(self)
        bar = progress(range(self.step, self.end), initial=self.step, total=cfg.max_steps, disable=not cfg.progress,
                       desc="train", unit="step")
        say = bar.write if cfg.progress and self.log else self._say
        for step in bar:
            lr = cfg.lr_at(step)
            t0 = time.perf_counter()
            loss, grad_norm = self.train_step(lr)
            dt = time.perf_counter() - t0
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                bar.close()
                raise TrainingDiverged(
                    f"the loss is {loss} (gradient norm {grad_norm}) at step {step + 1}; stopping. "
                    + (f"The last good checkpoint ({self.ckpt_path}, step {self._last_ckpt_step()}) is left as it was. "
                       if self.ckpt_path else "")
                    + "Lower max_lr, raise warmup_steps or turn on grad_clip."
                )
            self.step = step + 1
            h = self.history
            h["step_loss"].append(loss)
            h["lr"].append(lr)
            h["grad_norm"].append(grad_norm)
            row = {"step": self.step, "tokens": self.step * cfg.tokens_per_step, "lr": lr, "train_loss": loss,
                   "grad_norm": grad_norm, "dt_ms": 1000 * dt, "tokens_per_s": cfg.tokens_per_step / dt}
            if self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps:
                self.last_eval = self.evaluate()
                self._record_eval(self.last_eval, time.perf_counter() - t_start)
                row.update(self.last_eval)
                if "val_loss" in self.last_eval:
                    train_est = self.last_eval.get("train_eval_loss")
                    say(f"step {self.step}: " + (f"train loss {train_est:.4f} | " if train_est is not None else "")
                        + f"val loss {self.last_eval['val_loss']:.4f} | val ppl {self.last_eval['val_ppl']:.2f} | lr {lr:.2e}")
                if cfg.progress:
                    bar.set_postfix(loss=f"{loss:.3f}", val=f"{self.last_eval.get('val_loss', float('nan')):.3f}",
                                    refresh=False)
            elif cfg.progress:
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", refresh=False)
            for cb in self.callbacks:
                cb.on_step_end(self, row)
            if self.should_stop:
                break
        bar.close()
        self.history["stopped_at"] = self.step
        wall = time.perf_counter() - t_start
        summary = {
            "step": self.step, "max_steps": cfg.max_steps, "finished": self.step >= cfg.max_steps,
            "n_params": n_params, "tokens_seen": self.step * cfg.tokens_per_step,
            "wall_s_this_session": wall,
            "tokens_per_s_this_session": (self.step * cfg.tokens_per_step - tokens_start) / max(wall, 1e-9),
            **{k: self.last_eval.get(k) for k in ("train_eval_loss", "val_loss", "val_ppl")},
            "resumed_from": self.resumed_from, "config": asdict(cfg),
        }
        if self.out_dir:
            tmp = self.out_dir / "summary.json.tmp"
            tmp.write_text(json.dumps(summary, indent=1))
            os.replace(tmp, self.out_dir / "summary.json")
        for cb in self.callbacks:
            cb.on_train_end(self, summary)
        if summary["finished"] and self.meta:
            if cfg.sample_tokens:
                self._say("sample:\n" + self.sample(cfg.sample_tokens))
            if cfg.save_hf and self.out_dir:
                self.save_hf(self.out_dir / "hf")
        return summary

    def _last_ckpt_step(self):
        try:
            return int(torch.load(self.ckpt_path, map_location="cpu", weights_only=True)["step"])
        except Exception:
            return "none"

    def sample(self, n_tokens: int, temperature: float = 1.0, top_k: int | None = None) -> str:
        from .batches import decoder

        decode = decoder(self.meta)
        start = torch.zeros((1, 1), dtype=torch.long, device=self.device)  # id 0: '\n' for Tiny Shakespeare chars
        ids = self.model.generate(start, n_tokens, temperature=temperature, top_k=top_k,
                                  generator=torch.Generator(self.device).manual_seed(self.cfg.seed))[0].tolist()
        return decode(ids) if decode else " ".join(map(str, ids))

    def save_hf(self, path: str | os.PathLike) -> Path:
        """The model as a ``transformers`` GPT-2 (``GPT2LMHeadModel.from_pretrained(path)`` loads it)."""
        from ..models.gpt import to_hf_gpt2

        to_hf_gpt2(self.model.cpu()).save_pretrained(path)
        self.model.to(self.device)
        self._say(f"saved a Hugging Face GPT-2 copy in {path}")
        return Path(path)


def lm_batches(splits: dict, cfg: TrainConfig, device) -> tuple[RandomWindows, dict]:
    """Language-model batches for ``splits`` ({"train": tokens, "val": tokens}, tensors or memmaps):
    random training windows seeded ``cfg.seed``, and ``cfg.eval_batches`` fixed windows of each split
    (seeded ``cfg.seed + 1``, ``+ 2``, ...) to evaluate on."""
    train = RandomWindows(splits["train"], cfg.block_size, cfg.batch_size, seed=cfg.seed, device=device)
    eval_sets = {name: RandomWindows(data, cfg.block_size, cfg.batch_size, device=device)
                 .fixed(cfg.eval_batches, cfg.seed + 1 + i, cfg.eval_batch_size)
                 for i, (name, data) in enumerate(splits.items())}
    return train, eval_sets


def train(model: torch.nn.Module, train_data, val_data, cfg: TrainConfig | dict | None = None, *,
          loss_fn: Callable | None = None, callback: Callable | None = None, log=None) -> dict:
    """Train ``model`` on random windows of ``train_data`` (a 1-D token tensor or memmap); return its history.

    The history (:attr:`Trainer.history`): ``iter`` / ``tokens`` / ``time`` / ``train_loss`` / ``val_loss``
    at every evaluation (the first one before any step), ``step_loss`` / ``lr`` / ``grad_norm`` at every
    step, ``stopped_at`` (steps run), ``reached_target`` and ``config``. ``callback(step, history)`` runs
    after each evaluation (return True to stop). Everything stays in memory (``cfg.out_dir`` is not used:
    for checkpoints and log files, use a :class:`Trainer`). Returns with the model in eval mode.
    """
    cfg = TrainConfig(**(cfg or {})) if cfg is None or isinstance(cfg, dict) else cfg
    # the windows follow the model's context, whatever the config says
    cfg = dataclasses.replace(cfg, out_dir=None, block_size=model.config.block_size)
    device = best_device() if cfg.device == "auto" else torch.device(cfg.device)
    batches, eval_sets = lm_batches({"train": train_data, "val": val_data}, cfg, device)

    class _Legacy(Callback):
        def on_step_end(self, trainer, row):
            if "val_loss" in row and callback(trainer.step, trainer.history):
                trainer.should_stop = True

    trainer = Trainer(cfg, model=model, batches=batches, loss_fn=loss_fn, eval_sets=eval_sets, log=log,
                      callbacks=[_Legacy()] if callback else (), overwrite=True)
    trainer.run()
    model.eval()
    return trainer.history
