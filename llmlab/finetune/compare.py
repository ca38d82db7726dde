"""Full fine-tuning vs LoRA vs QLoRA on the same task, data, steps and seed (Week 4, notebook 6).

One call trains each method on the chat-formatted examples of a :mod:`llmlab.tasks` family and measures it::

    from llmlab import tasks, zoo
    from llmlab.finetune.compare import CompareConfig, compare, results_table
    train, val = tasks.generate("food", "train", n=200), tasks.generate("food", "validation", n=32)
    results = compare(zoo.pretrained("llama-base"), train, val, CompareConfig(steps=60))
    for row in results_table(results): print(row)

What each method is (all three start from the same Hugging Face ``LlamaForCausalLM`` folder):

- ``full``: every parameter trainable, float32.
- ``lora``: the base frozen in float32, LoRA on ``target_modules`` (PEFT's ``get_peft_model``, or the course's
  :func:`llmlab.finetune.lora.inject_lora` with ``lora_impl="course"``).
- ``qlora``: the base loaded in 4 bits by bitsandbytes (``BitsAndBytesConfig(load_in_4bit=True,
  bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)``, float32 compute), ``prepare_model_for_kbit_training``,
  then the same PEFT LoRA. It runs on CPU with bitsandbytes >= 0.48.

The same batches in the same order (one seed), the same number of optimizer steps, the same schedule shape
(:class:`llmlab.train.Trainer` runs every loop), the learning rate per method (``lr``: LoRA usually wants a
larger one than full fine-tuning). Gradient checkpointing is off for all three, so the memory figures compare
the methods, not the checkpointing.

What is measured, and how:

- **trainable / total parameters**: :func:`count_parameters`, PEFT's rule (a 4-bit ``Params4bit`` holds two
  parameters per byte; tied tensors once).
- **peak training memory**: :func:`resident_bytes` (the unique storages of the weights, buffers, bitsandbytes
  quantization states and optimizer states that live between steps) plus the peak of one training step after
  the optimizer states exist, measured by Week 3's :class:`llmlab.systems.memory.PeakMemory`: a
  ``TorchDispatchMode`` that sees every tensor storage any operation allocates during the step (activations
  saved for backward, gradients, temporaries) and frees it when the storage dies, keeping the largest total
  alive at once. It counts tensor bytes, not the allocator's
  rounding or Python objects: on a tiny model that is the honest figure (a process's RSS would be noise).
- **step time**: the median wall time of the training steps after the first (``Trainer``'s per-step clock).
- **validation loss**: the mean masked loss (assistant tokens only, :mod:`llmlab.finetune.sft`'s label mask) over the validation examples, before and after.
- **verifier pass rate**: greedy generation for each validation prompt, scored by :func:`llmlab.tasks.verify`.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..systems.memory import PeakMemory, reachable_tensor_bytes
from .bnb_cpu import fix_cpu_4bit
from .lora import LLAMA_TARGETS, inject_lora
from .sft import IGNORE_INDEX as IGNORE
from .sft import encode_chat

METHODS = ("full", "lora", "qlora")

__all__ = ["METHODS", "CompareConfig", "RunResult", "ChatBatches", "build_model", "compare",
           "count_parameters", "encode_example", "generate_responses", "resident_bytes", "results_table", "run_method"]


# ---------------------------------------------------------------------------------------------
# data: chat-formatted examples, loss on the assistant's tokens only


def encode_example(tokenizer, example, max_len: int | None = None, system: str | None = None) -> tuple | None:
    """``(input_ids, labels)`` of one :class:`llmlab.tasks.Example` in the tokenizer's chat template, the labels
    ``-100`` except on the assistant's answer and its ``<|end|>`` (:func:`llmlab.finetune.sft.encode_chat`);
    ``None`` when the conversation is longer than ``max_len`` tokens (dropped, rather than cut mid-answer)."""
    enc = encode_chat(tokenizer, example.messages(system))
    if max_len is not None and len(enc["input_ids"]) > max_len:
        return None
    return enc["input_ids"], enc["labels"]


def _pad(rows: list[tuple[list, list]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (x, y): x the tokens but the last, y the labels shifted by one (the next token's label)."""
    T = max(len(ids) for ids, _ in rows) - 1
    x = torch.full((len(rows), T), pad_id, dtype=torch.long)
    y = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for i, (ids, labels) in enumerate(rows):
        x[i, : len(ids) - 1] = torch.tensor(ids[:-1])
        y[i, : len(ids) - 1] = torch.tensor(labels[1:])
    return x, y  # causal attention: right padding never changes the real tokens' logits


class ChatBatches:
    """An endless stream of padded (x, y) batches: the rows in a seeded random order, epoch after epoch (every
    method of a comparison draws the same batches in the same order)."""

    def __init__(self, rows: list[tuple[list, list]], batch_size: int, pad_id: int, seed: int = 0):
        if not rows:
            raise ValueError("no training rows (every example longer than max_len?)")
        self.rows, self.batch_size, self.pad_id = rows, batch_size, pad_id
        self.generator = torch.Generator().manual_seed(seed)
        self._order: list[int] = []

    def __iter__(self):
        return self

    def __next__(self):
        picked = []
        while len(picked) < self.batch_size:
            if not self._order:
                self._order = torch.randperm(len(self.rows), generator=self.generator).tolist()
            picked.append(self.rows[self._order.pop()])
        return _pad(picked, self.pad_id)

    def fixed(self, batch_size: int | None = None) -> list:
        """Every row once, in order, in batches (the validation set)."""
        b = batch_size or self.batch_size
        return [_pad(self.rows[i: i + b], self.pad_id) for i in range(0, len(self.rows), b)]


# ---------------------------------------------------------------------------------------------
# counting and measuring


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` as PEFT's ``get_nb_trainable_parameters`` counts them: each tensor once, and a
    bitsandbytes 4-bit ``Params4bit`` (two 4-bit numbers packed in each byte of its storage) as
    ``numel * 2 * element_size`` parameters."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if type(p).__name__ == "Params4bit":
            n *= 2 * p.element_size()
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def _quant_state_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The tensors of every bitsandbytes quantization state (absmax per block, its own absmax and code with
    double quantization): not parameters or buffers, but memory the 4-bit weights need."""
    out = []
    for p in model.parameters():
        qs = getattr(p, "quant_state", None)
        while qs is not None:
            out += [t for t in (getattr(qs, "absmax", None), getattr(qs, "code", None), getattr(qs, "offset", None))
                    if isinstance(t, torch.Tensor)]
            qs = getattr(qs, "state2", None)
    return out


def _storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a view or a tied weight counts once)."""
    seen = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def resident_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """What stays in memory between training steps: ``weights`` (parameters, buffers and 4-bit quantization
    states, distinct storages) and ``optimizer`` (every tensor in ``optimizer.state``: AdamW's two moments)."""
    weights = _storage_bytes([*model.parameters(), *model.buffers(), *_quant_state_tensors(model)])
    opt = 0 if optimizer is None else reachable_tensor_bytes(optimizer, exclude=list(model.parameters()))
    return {"weights": weights, "optimizer": opt}


# ---------------------------------------------------------------------------------------------
# the three models


@contextlib.contextmanager
def quiet():
    """transformers', PEFT's and bitsandbytes' advice off stderr (warnings and log records)."""
    loggers = [logging.getLogger(n) for n in ("transformers", "peft", "bitsandbytes")]
    levels = [lg.level for lg in loggers]
    try:
        import transformers

        tl = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        tl = None
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)
        if tl is not None:
            transformers.logging.set_verbosity(tl)


def build_model(method: str, path: str | Path, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                target_modules=LLAMA_TARGETS, lora_impl: str = "peft") -> nn.Module:
    """The model ``method`` trains, from the Hugging Face folder ``path`` (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if lora_impl not in ("peft", "course"):
        raise ValueError(f"lora_impl must be 'peft' or 'course', not {lora_impl!r}")
    with quiet():
        import peft
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        if method == "qlora":
            q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.float32)
            model = AutoModelForCausalLM.from_pretrained(path, quantization_config=q, device_map="cpu")
            fix_cpu_4bit(model)  # bitsandbytes 0.50's CPU dequantization and repacking: see finetune.bnb_cpu
            model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        if method == "full":
            for p in model.parameters():
                p.requires_grad_(True)
        elif method == "lora" and lora_impl == "course":
            inject_lora(model, list(target_modules), r=r, alpha=alpha, dropout=dropout)
        else:
            cfg = peft.LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
            model = peft.get_peft_model(model, cfg)
    return model.train()


# ---------------------------------------------------------------------------------------------
# generation and the verifier


@torch.no_grad()
def generate_responses(model: nn.Module, tokenizer, examples, max_new_tokens: int = 32, batch_size: int = 16,
                       system: str | None = None) -> list[str]:
    """Greedy answers to each example's prompt (left-padded batches; stops at ``<|end|>`` or ``<|endoftext|>``)."""
    was = model.training
    model.eval()
    stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out = []
    try:
        for i in range(0, len(examples), batch_size):
            prompts = [tokenizer.apply_chat_template(ex.messages(system)[:-1], add_generation_prompt=True,
                                                     tokenize=False) for ex in examples[i: i + batch_size]]
            enc = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
            with quiet():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                     pad_token_id=tokenizer.pad_token_id)
            out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was)
    return [s.strip() for s in out]


# ---------------------------------------------------------------------------------------------
# one method, then all of them


@dataclass
class CompareConfig:
    steps: int = 60
    batch_size: int = 8
    lr: dict = field(default_factory=lambda: {"full": 1e-3, "lora": 3e-3, "qlora": 3e-3})
    warmup_steps: int = 5
    weight_decay: float = 0.0
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple = LLAMA_TARGETS
    lora_impl: str = "peft"  # or "course": llmlab.finetune.lora for the LoRA run (QLoRA always uses PEFT)
    max_len: int | None = None  # None: the model's max_position_embeddings
    max_new_tokens: int = 32
    n_samples: int = 3  # validation answers kept for the side-by-side
    seed: int = 0
    progress: bool = True


@dataclass
class RunResult:
    method: str
    trainable: int
    total: int
    weights_bytes: int  # resident between steps
    optimizer_bytes: int
    step_peak_bytes: int  # the most bytes a training step allocates at once (activations, gradients, temporaries)
    peak_bytes: int  # weights + optimizer + step peak
    step_s: float  # median wall time of a training step
    val_loss_before: float
    val_loss: float
    pass_rate: float
    samples: list = field(default_factory=list)  # (prompt, response, passed)
    train_losses: list = field(default_factory=list)
    train_s: float = 0.0

    def asdict(self) -> dict:
        return asdict(self)


def run_method(method: str, path: str | Path, train_examples, val_examples, cfg: CompareConfig | None = None,
               tokenizer=None) -> RunResult:
    """Train one method on ``train_examples`` and measure it (see the module docstring for what and how)."""
    from ..config import set_seed
    from ..tasks import verify
    from ..train import TrainConfig, Trainer
    from ..train.trainer import Callback

    cfg = cfg or CompareConfig()
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    set_seed(cfg.seed)  # the same LoRA initialisation for lora and qlora
    model = build_model(method, path, cfg.r, cfg.alpha, cfg.dropout, cfg.target_modules,
                        cfg.lora_impl if method == "lora" else "peft")
    max_len = cfg.max_len or model.config.max_position_embeddings
    rows = [r for r in (encode_example(tokenizer, ex, max_len) for ex in train_examples) if r is not None]
    val_pairs = [(ex, r) for ex in val_examples for r in [encode_example(tokenizer, ex, max_len)] if r is not None]
    val_ex, val_rows = [ex for ex, _ in val_pairs], [r for _, r in val_pairs]
    batches = ChatBatches(rows, cfg.batch_size, tokenizer.pad_token_id, seed=cfg.seed)
    val_batches = ChatBatches(val_rows, cfg.batch_size, tokenizer.pad_token_id).fixed()
    lr = cfg.lr[method] if isinstance(cfg.lr, dict) else cfg.lr
    tcfg = TrainConfig(out_dir=None, max_steps=cfg.steps, batch_size=cfg.batch_size, block_size=max_len, max_lr=lr,
                       min_lr=lr / 10, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
                       eval_interval=cfg.steps, device="cpu", progress=cfg.progress, seed=cfg.seed)

    class _Clock(Callback):
        def __init__(self):
            self.dt = []

        def on_step_end(self, trainer, row):
            self.dt.append(row["dt_ms"] / 1000)

    clock = _Clock()
    with quiet():
        trainer = Trainer(tcfg, model=model, batches=batches, eval_sets={"val": lambda: val_batches}, log=None,
                          callbacks=[clock])
        t0 = time.perf_counter()
        trainer.run()
        train_s = time.perf_counter() - t0
    history = trainer.history
    # memory of one more step, now that the optimizer states exist (this step is not part of the results)
    trainer.optimizer.zero_grad(set_to_none=True)
    resident = resident_bytes(model, trainer.optimizer)
    tracker = PeakMemory()
    with quiet(), tracker:
        trainer.train_step(lr)
    trainer.optimizer.zero_grad(set_to_none=True)

    responses = generate_responses(model, tokenizer, val_ex, cfg.max_new_tokens)
    verdicts = [verify(ex, resp) for ex, resp in zip(val_ex, responses)]
    trainable, total = count_parameters(model)
    return RunResult(
        method=method, trainable=trainable, total=total, weights_bytes=resident["weights"],
        optimizer_bytes=resident["optimizer"], step_peak_bytes=tracker.peak,
        peak_bytes=resident["weights"] + resident["optimizer"] + tracker.peak,
        step_s=statistics.median(clock.dt[1:] or clock.dt), val_loss_before=history["val_loss"][0],
        val_loss=history["val_loss"][-1], pass_rate=sum(v.passed for v in verdicts) / max(1, len(verdicts)),
        samples=[(ex.prompt, resp, v.passed) for ex, resp, v in list(zip(val_ex, responses, verdicts))[: cfg.n_samples]],
        train_losses=list(history["step_loss"]), train_s=train_s)


def compare(path: str | Path, train_examples, val_examples, cfg: CompareConfig | None = None,
            methods=METHODS) -> list[RunResult]:
    """:func:`run_method` for each of ``methods``, with the same data, steps and seed."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    return [run_method(m, path, train_examples, val_examples, cfg, tokenizer) for m in methods]


def results_table(results: list[RunResult], baseline: str = "full") -> list[dict]:
    """One row per method: parameters, memory (MiB), step time (ms), quality, and the ratios to ``baseline``."""
    base = next((r for r in results if r.method == baseline), results[0])
    mib = 2 ** 20
    return [{"method": r.method, "trainable": r.trainable, "trainable %": 100 * r.trainable / r.total,
             "weights MiB": r.weights_bytes / mib, "optimizer MiB": r.optimizer_bytes / mib,
             "step peak MiB": r.step_peak_bytes / mib, "peak MiB": r.peak_bytes / mib,
             "peak vs " + base.method: r.peak_bytes / base.peak_bytes, "step ms": 1000 * r.step_s,
             "step time vs " + base.method: r.step_s / base.step_s, "val loss": r.val_loss,
             "pass rate": r.pass_rate} for r in results]
