"""QLoRA fine-tuning of any Hugging Face causal LM directory on chat data: the Week 4 recipe for one 24 GB GPU.

::

    python -m llmlab.finetune.recipe --model ~/models/Meta-Llama-3-8B --chat-template-from \\
        ~/models/Meta-Llama-3-8B-Instruct --data course --output runs/llama3-qlora
    python -m llmlab.finetune.recipe --model ~/models/Mistral-7B-Instruct-v0.2 --data my_chats.jsonl --output runs/mistral
    python -m llmlab.finetune.recipe --make-tiny llama /tmp/tiny-llama     # a tiny random model to try it on CPU

What it does, in order:

1. prints the memory budget (:mod:`llmlab.finetune.budget`) for the model's own shapes and the settings given;
2. loads the model in 4 bits: ``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
   bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=bf16 on a GPU / float32 on CPU)``;
3. ``peft.prepare_model_for_kbit_training`` (norms and embeddings in float32, gradient checkpointing,
   input gradients enabled) and a LoRA adapter on all seven linear layers of a Llama/Mistral block
   (``q_proj k_proj v_proj o_proj gate_proj up_proj down_proj``);
4. trains with a plain loop: loss on the assistant tokens only (the chat template's prompt part is masked),
   AdamW (bitsandbytes' paged 32-bit AdamW on CUDA, whose states page to CPU memory under pressure;
   ``torch.optim.AdamW`` elsewhere), linear warmup, cosine decay, gradient accumulation, gradient clipping;
5. writes the adapter (``adapter_model.safetensors`` + ``adapter_config.json``: reload with
   ``peft.PeftModel.from_pretrained``), the tokenizer, ``budget.json`` and ``train_log.json`` to ``--output``.

The data: ``course`` (the chat view of :mod:`llmlab.tasks`, all five families) or a JSONL file with one
``{"messages": [{"role": ..., "content": ...}, ...]}`` per line, the last message the assistant's answer.
The model's tokenizer must have a chat template (the base Llama-3/Mistral checkpoints ship none: pass
``--chat-template-from`` an instruct model's folder, or use the course template with ``course``).

The defaults (r=16, sequence 1024, batch 1 x 16 accumulation, checkpointing) fit Llama-3-8B and Mistral-7B in
24 GB (an RTX 3090/4090) with room to spare; the printed budget says how much.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import torch

from .bnb_cpu import fix_cpu_4bit
from .budget import GiB, ModelShape, format_budget, qlora_budget
from .lora import LLAMA_TARGETS
from .sft import IGNORE_INDEX, encode_chat, pad_collate

__all__ = ["build_examples", "load_chat_rows", "main", "make_tiny", "parse_args", "run"]


# ----------------------------------------------------------------------------- quiet imports
def _quiet():
    """Keep library chatter (bitsandbytes' kernel-hub notice, renamed-method warnings, load bars) off stderr."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed (imported by transformers) would announce it
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    warnings.filterwarnings("ignore", message=".*use_reentrant.*")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if not torch.cuda.is_available():
        # bitsandbytes' CPU path torch.compiles a helper for odd shapes: slow to compile, noisy without CUDA
        torch._dynamo.config.disable = True


# ----------------------------------------------------------------------------- tiny models for CPU tests
def make_tiny(arch: str, out_dir: str | os.PathLike, tokenizer_from: str | os.PathLike | None = None,
              seed: int = 0) -> Path:
    """A tiny random-weight ``LlamaForCausalLM`` / ``MistralForCausalLM`` with Llama-3-8B's / Mistral-7B's
    structure and layer names (32 heads -> 4, 8 KV heads -> 1: the same 4:1 grouping; untied embeddings;
    SwiGLU; Mistral's sliding window), and a tokenizer with a chat template (the course's llama-base one)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    from .. import zoo

    tok = AutoTokenizer.from_pretrained(tokenizer_from or zoo.pretrained("llama-base", "fast", progress=False))
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=224, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
                  tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
    if arch == "llama":
        config, cls = LlamaConfig(rope_theta=500000.0, **common), LlamaForCausalLM
    elif arch == "mistral":
        config, cls = MistralConfig(sliding_window=256, rope_theta=10000.0, **common), MistralForCausalLM
    else:
        raise ValueError(f"arch must be 'llama' or 'mistral', got {arch!r}")
    torch.manual_seed(seed)
    model = cls(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


# ----------------------------------------------------------------------------- data
def load_chat_rows(data: str, n_per_task: int = 200, seed: int = 0) -> list[dict]:
    """``course``: :func:`llmlab.tasks.chat_dataset` (train split); else a JSONL file of ``{"messages": [...]}``."""
    if data == "course":
        from .. import tasks

        return tasks.chat_dataset("train", n_per_task=n_per_task, seed=seed)
    rows = []
    with open(data, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                msgs = row.get("messages")
                if not msgs or msgs[-1].get("role") != "assistant":
                    raise ValueError(f"{data}:{i}: expected {{'messages': [..., {{'role': 'assistant', ...}}]}}")
                rows.append(row)
    if not rows:
        raise ValueError(f"{data}: no examples")
    return rows


def build_examples(rows: list[dict], tokenizer, max_len: int) -> list[dict]:
    """Encoded conversations ``{"input_ids", "attention_mask", "labels"}``, labels -100 except on the answer.

    A template with ``{% generation %}`` markers (the course's) gives the assistant mask directly
    (:func:`llmlab.finetune.sft.encode_chat`); other templates (Llama-3's, Mistral's) are masked up to the end
    of the prompt rendered with ``add_generation_prompt=True``, when it is a prefix of the whole conversation.
    Truncated to ``max_len``; rows left without answer tokens are dropped.
    """
    out = []
    for row in rows:
        msgs = row["messages"]
        try:
            feat = encode_chat(tokenizer, msgs, max_len)
        except ValueError:  # no generation markers in this template
            full = list(tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=False))
            prompt = list(tokenizer.apply_chat_template(msgs[:-1], tokenize=True, add_generation_prompt=True,
                                                        return_dict=False))
            n_prompt = len(prompt) if full[: len(prompt)] == prompt else 0  # not a prefix: learn every token
            ids = full[:max_len]
            feat = {"input_ids": ids, "attention_mask": [1] * len(ids),
                    "labels": ([IGNORE_INDEX] * n_prompt + full[n_prompt:])[:max_len]}
        if any(t != IGNORE_INDEX for t in feat["labels"][1:]):
            out.append(feat)
    return out


def _batches(examples, batch_size: int, pad_id: int, rng: random.Random):
    """Endless shuffled, right-padded batches (:func:`llmlab.finetune.sft.pad_collate`)."""
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield pad_collate([examples[j] for j in order[i:i + batch_size]], pad_id)


# ----------------------------------------------------------------------------- the recipe
def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m llmlab.finetune.recipe", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model", help="a Hugging Face causal LM folder (config.json, weights, tokenizer)")
    ap.add_argument("--data", default="course", help="'course' (llmlab.tasks chat data) or a .jsonl of {'messages': [...]}")
    ap.add_argument("--output", help="where the adapter, tokenizer, budget.json and train_log.json go")
    ap.add_argument("--r", type=int, default=16, help="LoRA rank")
    ap.add_argument("--alpha", type=float, default=32.0, help="LoRA alpha (scale alpha / r)")
    ap.add_argument("--dropout", type=float, default=0.05, help="dropout on the LoRA path")
    ap.add_argument("--targets", default=",".join(LLAMA_TARGETS), help="comma-separated target_modules")
    ap.add_argument("--seq-len", type=int, default=1024, help="longest example in tokens (longer ones are truncated)")
    ap.add_argument("--batch-size", type=int, default=1, help="sequences per micro-batch")
    ap.add_argument("--grad-accum", type=int, default=16, help="micro-batches per optimizer step")
    ap.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (QLoRA paper: 2e-4 for 7B-13B)")
    ap.add_argument("--warmup", type=float, default=0.03, help="warmup as a fraction of the steps")
    ap.add_argument("--max-steps", type=int, default=500, help="optimizer steps")
    ap.add_argument("--n-per-task", type=int, default=400, help="examples per task family with --data course")
    ap.add_argument("--no-double-quant", action="store_true", help="keep the scales in float32")
    ap.add_argument("--no-checkpointing", action="store_true", help="turn gradient checkpointing off")
    ap.add_argument("--chat-template-from", help="a folder whose tokenizer's chat template to use (base models have none)")
    ap.add_argument("--gpu-gib", type=float, default=24.0, help="the GPU the budget is compared with")
    ap.add_argument("--log-every", type=int, default=10, help="print the loss every N optimizer steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    ap.add_argument("--budget-only", action="store_true", help="print the budget and stop")
    ap.add_argument("--make-tiny", nargs=2, metavar=("ARCH", "DIR"),
                    help="write a tiny random llama|mistral model with the real layer names to DIR and exit")
    a = ap.parse_args(argv)
    if not a.make_tiny and not a.model:
        ap.error("--model is required")
    if not a.make_tiny and not a.budget_only and not a.output:
        ap.error("--output is required")
    return a


def _optimizer(params, lr: float, cuda: bool):
    if cuda:
        try:
            import bitsandbytes as bnb

            return bnb.optim.PagedAdamW32bit(params, lr=lr, weight_decay=0.0), "bitsandbytes PagedAdamW32bit"
        except Exception as e:  # pragma: no cover - GPU only
            print(f"paged AdamW unavailable ({e}); using torch.optim.AdamW")
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.0), "torch.optim.AdamW"


def run(a: argparse.Namespace, log=print) -> dict:
    """The whole recipe (see the module docstring); returns the training log."""
    _quiet()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = torch.cuda.is_available()
    targets = [t for t in a.targets.split(",") if t]
    config = AutoConfig.from_pretrained(a.model)
    shape = ModelShape.from_config(config, name=Path(a.model).name)
    budget = qlora_budget(shape, r=a.r, target_modules=targets, seq_len=a.seq_len, batch=a.batch_size,
                          checkpointing=not a.no_checkpointing, double_quant=not a.no_double_quant)
    log(format_budget(budget, f"QLoRA memory budget for {shape.name} ({type(config).__name__}, "
                              f"{sum(shape.n_params().values()) / 1e9:.3g}B parameters): r={a.r}, seq {a.seq_len}, "
                              f"batch {a.batch_size}, checkpointing {'off' if a.no_checkpointing else 'on'}", a.gpu_gib))
    if a.budget_only:
        return {"budget": budget}

    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    torch.manual_seed(a.seed)
    compute_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else (torch.float16 if cuda else torch.float32)
    bnb_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                    bnb_4bit_use_double_quant=not a.no_double_quant, bnb_4bit_compute_dtype=compute_dtype)
    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, quantization_config=bnb_config, dtype=compute_dtype,
                                                 device_map={"": 0} if cuda else "cpu")
    model.config.use_cache = False  # no KV cache while training (and checkpointing needs it off)
    fix_cpu_4bit(model)  # bitsandbytes 0.50's CPU 4-bit kernels: see llmlab.finetune.bnb_cpu (no-op on a GPU)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=not a.no_checkpointing)
    lora = LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"loaded {a.model} in 4-bit NF4 ({'double quant' if not a.no_double_quant else 'float32 scales'}, compute "
        f"{str(compute_dtype).replace('torch.', '')}, {'cuda' if cuda else 'cpu'}) in {time.time() - t0:.1f} s; "
        f"LoRA r={a.r} on {','.join(targets)}: {trainable:,} trainable parameters ({100 * trainable / total:.2f} % "
        f"of the {total:,} stored)")

    tok = AutoTokenizer.from_pretrained(a.chat_template_from or a.model)
    if a.chat_template_from:
        tok_model = AutoTokenizer.from_pretrained(a.model)
        tok_model.chat_template = tok.chat_template
        tok = tok_model
    if not tok.chat_template:
        raise SystemExit(f"{a.model}: the tokenizer has no chat template; pass --chat-template-from FOLDER")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    rows = load_chat_rows(a.data, a.n_per_task, a.seed)
    examples = build_examples(rows, tok, a.seq_len)
    n_tok = sum(sum(t != IGNORE_INDEX for t in f["labels"]) for f in examples)
    log(f"data: {a.data}, {len(rows)} conversations -> {len(examples)} examples, {n_tok:,} answer tokens")
    if len(examples) < a.batch_size:
        raise SystemExit("fewer examples than one batch")

    params = [p for p in model.parameters() if p.requires_grad]
    opt, opt_name = _optimizer(params, a.lr, cuda)
    warm = max(1, int(a.warmup * a.max_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, s - warm) / max(1, a.max_steps - warm))))))
    device = next(p.device for p in params)
    batches = _batches(examples, a.batch_size, pad_id, random.Random(a.seed))
    log(f"training {a.max_steps} steps x {a.grad_accum} micro-batches of {a.batch_size}, {opt_name}, lr {a.lr:g}")
    history, t0, tokens = [], time.time(), 0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model.train()
    for step in range(1, a.max_steps + 1):
        total_loss = 0.0
        for _ in range(a.grad_accum):
            batch = {k: v.to(device) for k, v in next(batches).items()}
            loss = model(**batch).loss / a.grad_accum
            loss.backward()
            total_loss += loss.item()
            tokens += int(batch["attention_mask"].sum())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        history.append(total_loss)
        if step % a.log_every == 0 or step in (1, a.max_steps):
            log(f"step {step:5d}/{a.max_steps}  loss {total_loss:.4f}  lr {sched.get_last_lr()[0]:.2e}  "
                f"{tokens / (time.time() - t0):,.0f} tokens/s")
    elapsed = time.time() - t0
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    result = dict(model=str(a.model), data=a.data, steps=a.max_steps, loss=history, seconds=elapsed,
                  tokens_per_s=tokens / elapsed, trainable_params=trainable, stored_params=total,
                  peak_gpu_gib=torch.cuda.max_memory_allocated() / GiB if cuda else None,
                  args={k: v for k, v in vars(a).items()})
    (out / "budget.json").write_text(json.dumps({k: v / GiB for k, v in budget.items()}, indent=1) + "\n")
    (out / "train_log.json").write_text(json.dumps(result, indent=1) + "\n")
    peak = f", peak GPU memory {result['peak_gpu_gib']:.2f} GiB (budget {budget['total'] / GiB:.2f})" if cuda else ""
    log(f"done in {elapsed:.1f} s, loss {history[0]:.3f} -> {history[-1]:.3f}{peak}; adapter in {out}")
    return result


def main(argv=None) -> None:
    a = parse_args(argv)
    if a.make_tiny:
        _quiet()
        print(f"wrote {make_tiny(a.make_tiny[0], a.make_tiny[1])}")
        return
    run(a)


if __name__ == "__main__":
    sys.exit(main())
