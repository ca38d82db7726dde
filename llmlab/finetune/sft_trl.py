"""SFT with PEFT and TRL: ``peft.LoraConfig`` + ``trl.SFTTrainer`` on the course's chat data, loss on the assistant.

::

    from llmlab.finetune.sft_trl import SFTSettings, train_sft
    s = SFTSettings(max_steps=200, r=16)
    model, history = train_sft(base_model, tokenizer, tasks.chat_dataset("train", 60), s)  # a PeftModel

What TRL 1.12 does with ``assistant_only_loss=True`` on a conversational dataset (``{"messages": [...]}`` rows), read
from its source and checked in ``tests/test_sft.py``: it renders each row with the tokenizer's chat template and
``return_assistant_tokens_mask=True``, turns the mask into a ``labels`` column (the input id on assistant tokens,
``-100`` elsewhere: exactly :func:`llmlab.finetune.sft.encode_chat`), truncates to ``max_length`` (keep the start)
and drops rows left without a label. ``packing=True`` packs rows best-fit-decreasing into lines of ``max_length`` and
restarts ``position_ids`` per row, but on CPU (``sdpa`` attention, no FlashAttention) nothing stops a packed row
attending to its neighbours, and TRL says so on stderr. The course runs therefore pad (``packing=False``, the
default here); :mod:`llmlab.finetune.sft` shows packing done right, with a block-diagonal mask.

Everything runs quietly (:func:`quiet`): no progress bars, advice or deprecation warnings from transformers, TRL,
datasets, PEFT or bitsandbytes on stderr (nbgrader gives 0 to a test cell that writes there); the loss goes to the
returned history and, if asked, to a :mod:`llmlab.progress` bar.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field

import torch

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

__all__ = ["SFTSettings", "quiet", "lora_config", "sft_config", "train_sft", "LLAMA_TARGETS"]


@dataclass
class SFTSettings:
    """One SFT run: data, LoRA, optimisation. The zoo's ``llama-chat`` tiers are instances of it."""

    n_per_task: int | dict = 50  # training rows per task family (llmlab.tasks.chat_dataset)
    eval_per_task: int = 10  # validation examples per family for the verifier pass rates
    max_steps: int = 200
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 10
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple = LLAMA_TARGETS  # all linear layers of a Llama block
    max_length: int = 384  # tokens per row (longer rows are cut at the end)
    packing: bool = False  # see the module docstring: on CPU, padding is the correct choice
    max_new_tokens: int = 96  # generation budget when scoring with the verifiers
    seed: int = 1337
    threads: int | None = None  # torch threads during the run (None: leave as is)
    extra: dict = field(default_factory=dict)  # more SFTConfig fields

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@contextlib.contextmanager
def quiet():
    """Silence the libraries' stderr chatter (warnings, progress bars, advice) for the duration of the block."""
    import datasets
    import transformers

    loggers = {name: logging.getLogger(name) for name in ("trl", "peft", "bitsandbytes", "accelerate", "datasets")}
    levels = {name: lg.level for name, lg in loggers.items()}
    tf_level, tf_bars = transformers.logging.get_verbosity(), transformers.utils.logging.is_progress_bar_enabled()
    ds_bars = datasets.utils.logging.is_progress_bar_enabled()
    for lg in loggers.values():
        lg.setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, lg in loggers.items():
            lg.setLevel(levels[name])
        transformers.logging.set_verbosity(tf_level)
        if tf_bars:
            transformers.utils.logging.enable_progress_bar()
        if ds_bars:
            datasets.enable_progress_bars()


def lora_config(s: SFTSettings):
    """The ``peft.LoraConfig`` of a run: rank ``r``, scale ``alpha / r``, dropout on the LoRA path, the targets."""
    from peft import LoraConfig

    return LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=list(s.target_modules),
                      bias="none", task_type="CAUSAL_LM")


def sft_config(s: SFTSettings, output_dir: str):
    """The ``trl.SFTConfig`` of a run: assistant-only loss, cosine schedule with warm-up, one loss entry per step,
    CPU unless CUDA is there, no checkpoints, no reporting, no tqdm (the caller shows progress).

    Two of TRL's defaults differ from ``transformers.TrainingArguments`` and are set back here: ``bf16=True``
    (on CPU, accelerate then wraps ``forward`` in a bfloat16 autocast that stays after training: logits ~1e-2
    off) and ``gradient_checkpointing=True`` (recomputes every block: slower, for memory a small model does not
    need). bf16 stays on where a GPU supports it.
    """
    with quiet():
        from trl import SFTConfig

    cuda = torch.cuda.is_available()
    return SFTConfig(bf16=cuda and torch.cuda.is_bf16_supported(), gradient_checkpointing=False,output_dir=output_dir, max_steps=s.max_steps, per_device_train_batch_size=s.batch_size,
                     learning_rate=s.lr, lr_scheduler_type="cosine", warmup_steps=s.warmup_steps, weight_decay=0.0,
                     logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True,
                     use_cpu=not torch.cuda.is_available(), seed=s.seed, data_seed=s.seed,
                     assistant_only_loss=True, packing=s.packing, max_length=s.max_length,
                     dataloader_num_workers=0, **s.extra)


def _history_callback(history: list, bar):
    from transformers import TrainerCallback

    class History(TrainerCallback):  # one row per logged step: step, loss, lr, grad norm, tokens
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                history.append({"step": state.global_step, **{k: float(v) for k, v in logs.items()
                                                              if isinstance(v, (int, float))}})
                if bar is not None:
                    bar.set_postfix(loss=f"{logs['loss']:.3f}")

        def on_step_end(self, args, state, control, **kwargs):
            if bar is not None:
                bar.update(1)

    return History()


def make_trainer(model, tokenizer, rows: list[dict], s: SFTSettings, output_dir: str, history: list | None = None,
                 bar=None):
    """A ``trl.SFTTrainer`` for ``rows`` (``{"messages"}`` dicts) with LoRA from :func:`lora_config` and the
    arguments of :func:`sft_config`; its ``train_dataset`` holds TRL's tokenised rows (``input_ids``, ``labels``)."""
    with quiet():  # importing TRL imports bitsandbytes, which logs that it has no "kernels" package
        from datasets import Dataset
        from transformers.trainer_callback import PrinterCallback
        from trl import SFTTrainer

        ds = Dataset.from_list([{"messages": r["messages"]} for r in rows])
        trainer = SFTTrainer(model=model, args=sft_config(s, output_dir), train_dataset=ds,
                             processing_class=tokenizer, peft_config=lora_config(s))
    trainer.remove_callback(PrinterCallback)  # the loss goes to `history`, not to stdout
    if history is not None:
        trainer.add_callback(_history_callback(history, bar))
    return trainer


def train_sft(model, tokenizer, rows: list[dict], s: SFTSettings, progress: bool = False, desc: str = "SFT"):
    """LoRA-SFT ``model`` (a Hugging Face causal LM, modified in place) on chat ``rows`` with TRL.

    Returns ``(peft_model, history)``: the trained ``PeftModel`` (eval mode; ``merge_and_unload()`` folds the
    adapter in) and one dict per step (``step``, ``loss``, ``learning_rate``, ``grad_norm``, ...).
    """
    from ..progress import progress as bar_of

    threads = torch.get_num_threads()
    if s.threads:
        torch.set_num_threads(s.threads)
    history: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="llmlab-sft-") as out:
            bar = bar_of(total=s.max_steps, desc=desc, unit="step", disable=not progress)
            trainer = make_trainer(model, tokenizer, rows, s, os.path.join(out, "run"), history, bar)
            with quiet():
                trainer.train()
            bar.close()
    finally:
        torch.set_num_threads(threads)
    # without accelerate's wrappers (a mixed-precision autocast around forward, on a GPU)
    peft_model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    return peft_model, history
