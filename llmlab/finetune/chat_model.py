"""The course chat model: LoRA-SFT of the Llama base model on the course tasks, merged, in Hugging Face format.

:func:`build_chat` is the whole recipe, used both by the zoo (``zoo.pretrained("llama-chat")``) and by Week 4's
notebook 4 (which at the default size *is* the run that publishes the zoo model)::

    base (llama-base folder) --score with the verifiers--> pass rates before
         --peft.LoraConfig + trl.SFTTrainer (assistant-only loss) on tasks.chat_dataset("train")-->
    PeftModel --save--> adapter/ (adapter_config.json + adapter_model.safetensors)
             --score--> pass rates after
             --merge_and_unload--> LlamaForCausalLM --save--> config.json, model.safetensors, tokenizer, generation_config

The folder written: the merged model and the base's tokenizer (chat template included, ``model_max_length`` raised
to the SFT length), ``generation_config.json`` whose ``eos_token_id`` lists ``<|endoftext|>`` and ``<|end|>``,
``adapter/`` (the LoRA adapter alone, for reloading onto the base), ``metrics.csv`` (the loss of every step),
``eval.jsonl`` (every validation prompt with its responses before and after) and the returned metadata
(written as ``zoo.json`` by the zoo), which records the pass rates before and after per task.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .chat_eval import assistant_loss, evaluate, stop_ids
from .sft_trl import SFTSettings, quiet, train_sft

__all__ = ["build_chat", "ADAPTER_DIR", "MERGE_TOLERANCE"]

ADAPTER_DIR = "adapter"
CONTEXT = 1024  # tokens: the chat model's max_position_embeddings and tokenizer.model_max_length (at least)
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")  # llmlab.zoo.CHAT_SPECIALS
MERGE_TOLERANCE = 1e-4  # merged vs unmerged logits: W + (alpha/r) B A summed once instead of twice (~1e-6 here)


def build_chat(base_path, out_dir, s: SFTSettings, progress: bool = False, log=print, name: str = "llama-chat",
               data_seed: int = 0) -> dict:
    """SFT the base model at ``base_path`` with settings ``s`` and write the merged chat model to ``out_dir``.

    Returns the metadata (settings, pass rates before/after per task, losses, timings, the largest logit
    difference between the adapter model and the merged one, and between the merged one and its reloaded copy).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from .. import tasks
    from ..config import set_seed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    threads = torch.get_num_threads()
    if s.threads:
        torch.set_num_threads(s.threads)
    try:
        set_seed(s.seed)
        with quiet():
            tok = AutoTokenizer.from_pretrained(base_path)
            model = AutoModelForCausalLM.from_pretrained(base_path)
        # RoPE has no hard length limit; the base was pretrained on short blocks (FAST: 64 tokens), the chat model
        # reads whole conversations: say so in the config and tokenizer (and keep transformers' length advice quiet)
        context = max(CONTEXT, s.max_length + s.max_new_tokens)
        tok.model_max_length = context
        model.config.max_position_embeddings = context
        model.generation_config.max_length = None
        train_rows = tasks.chat_dataset("train", s.n_per_task, seed=data_seed)
        val_ex = tasks.mixture("validation", s.eval_per_task, seed=data_seed)
        val_rows = [{"messages": ex.messages()} for ex in val_ex]
        log(f"[sft] {name}: {len(train_rows)} training conversations, {len(val_ex)} validation prompts")

        before = evaluate(model, tok, val_ex, s.max_new_tokens, progress=progress)
        loss_before = assistant_loss(model, tok, val_rows, s.max_length)
        t_train, c_train = time.perf_counter(), time.process_time()
        peft_model, history = train_sft(model, tok, train_rows, s, progress=progress, desc=name)
        train_wall, train_cpu = time.perf_counter() - t_train, time.process_time() - c_train
        after = evaluate(peft_model, tok, val_ex, s.max_new_tokens, progress=progress)
        loss_after = assistant_loss(peft_model, tok, val_rows, s.max_length)
        for label, res, loss in (("before", before, loss_before), ("after", after, loss_after)):
            rates = " ".join(f"{t} {r:.0%}" for t, r in res["pass_rate"].items())
            log(f"[sft] {name} {label}: assistant loss {loss['loss']:.3f} | pass rates {rates}")

        # the adapter alone, then merged into the weights; both must give the same logits
        with quiet():
            peft_model.save_pretrained(out / ADAPTER_DIR)
        device = next(peft_model.parameters()).device
        probe = torch.tensor([tok.apply_chat_template(val_rows[0]["messages"], tokenize=True, return_dict=True)
                              ["input_ids"][: s.max_length]], device=device)
        with torch.no_grad():
            logits_adapter = peft_model(probe).logits
            merged = peft_model.merge_and_unload().eval()
            merge_diff = (merged(probe).logits - logits_adapter).abs().max().item()
        if not merge_diff <= MERGE_TOLERANCE:
            raise RuntimeError(f"{name}: merged logits differ from the adapter model's by {merge_diff:.2e}")
        ids = dict(bos_token_id=tok.eos_token_id, eos_token_id=stop_ids(tok)[::-1], pad_token_id=tok.pad_token_id)
        merged.config.update(ids)
        merged.generation_config = GenerationConfig(**ids)
        with quiet():
            merged.save_pretrained(out)
            tok.save_pretrained(out, save_jinja_files=False)  # the chat template inside tokenizer_config.json
            re_model = AutoModelForCausalLM.from_pretrained(out).eval().to(device)
            re_tok = AutoTokenizer.from_pretrained(out)
        with torch.no_grad():
            reload_diff = (re_model(probe).logits - merged(probe).logits).abs().max().item()
        if not reload_diff <= 1e-5 or re_tok.apply_chat_template(val_rows[0]["messages"][:-1], tokenize=True,
                                                                 add_generation_prompt=True) is None:
            raise RuntimeError(f"{name}: the saved model does not reload ({reload_diff:.2e})")
    finally:
        torch.set_num_threads(threads)

    keys = ["step", "loss", "learning_rate", "grad_norm", "mean_token_accuracy", "num_tokens"]
    (out / "metrics.csv").write_text(",".join(keys) + "\n" + "".join(
        ",".join(str(h.get(k, "")) for k in keys) + "\n" for h in history))
    with open(out / "eval.jsonl", "w", encoding="utf-8") as f:
        for b, a in zip(before["rows"], after["rows"]):
            f.write(json.dumps({"task": b["task"], "id": b["id"], "prompt": b["prompt"],
                                "before": {k: b[k] for k in ("response", "passed", "score", "reason")},
                                "after": {k: a[k] for k in ("response", "passed", "score", "reason")}},
                               ensure_ascii=False) + "\n")
    n_params = sum(p.numel() for p in merged.parameters())
    n_lora = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    total_passed = {k: sum(r["passed"] for r in res["rows"]) / len(res["rows"]) for k, res in
                    (("before", before), ("after", after))}
    return {
        "name": name, "arch": "llama", "base": str(base_path), "sft": s.to_dict(),
        "train_conversations": len(train_rows), "validation_prompts": len(val_ex), "data_seed": data_seed,
        "pass_rate_before": before["pass_rate"], "pass_rate_after": after["pass_rate"],
        "score_before": before["score"], "score_after": after["score"], "n_eval": after["n"],
        "pass_rate_all_before": total_passed["before"], "pass_rate_all_after": total_passed["after"],
        "val_loss_before": loss_before["loss"], "val_loss": loss_after["loss"], "val_ppl": loss_after["ppl"],
        "val_bits_per_char": loss_after["bits_per_char"], "val_tokens_scored": loss_after["tokens"],
        "train_loss_first": history[0]["loss"] if history else math.nan,
        "train_loss_last": history[-1]["loss"] if history else math.nan,
        "n_params": n_params, "lora_params": n_lora, "tokens_seen": int(history[-1].get("num_tokens", 0)) if history else 0,
        "vocab_size": len(tok), "special_tokens": {"eos": tok.eos_token, "pad": tok.pad_token,
                                                   "chat": [t for t in CHAT_TOKENS if t in tok.get_vocab()]},
        "merge_max_abs_logit_diff": merge_diff, "hf_max_abs_logit_diff": reload_diff,
        "train_wall_s": train_wall, "train_cpu_s": train_cpu,
        "build_wall_s": time.perf_counter() - t0, "build_cpu_s": time.process_time() - c0,
        "threads": s.threads or threads, "device": "cpu" if not torch.cuda.is_available() else "cuda",
        "sample": "\n---\n".join(f"{r['prompt']}\n=> {r['response']}" for r in after["rows"][:3]),
    }
