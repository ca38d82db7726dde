"""PPO and DPO throughput: the course's loops (llmlab.align.train) against TRL's trainers, same model and batch.

    python benchmarks/bench_rlhf.py [--model llama-chat] [--tier fast|cpu] [--prompts 16] [--iters 3]
                                    [--max-new 16] [--pairs 32] [--epochs 1] [--batch 16]

PPO: ``llmlab.align.train.train_ppo`` and ``trl.experimental.ppo.PPOTrainer`` (TRL 1.12) on the same food
prompts, the same SFT model, a reward model trained once for both (TRL gets it as an
``AutoModelForSequenceClassification``), the same rollouts per iteration, minibatches, PPO epochs and response
length. DPO: ``llmlab.align.train.train_dpo`` and ``trl.DPOTrainer`` on the same checkable pairs, batch size and
epochs. Printed per implementation: seconds per step (wall and CPU), prompts (or pairs) per second and
tokens per second (sampled response tokens for PPO; prompt + response tokens of both halves for DPO), and the
ratio ours / TRL (the course's expectation: within 1.5x of TRL's time per step). Set-up (model loading, TRL's
dataset tokenisation) is excluded; TRL's trainers are timed inside ``train()``. Numbers only, no assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch


class Clock:
    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="llama-chat")
    ap.add_argument("--tier", default=None, help="zoo tier (default: the current one, LLMLAB_FAST=1 -> fast)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--max-new", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    import datasets
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    with contextlib.redirect_stderr(io.StringIO()):
        from trl import DPOConfig, DPOTrainer
        from trl.experimental.ppo import PPOConfig, PPOTrainer

    from llmlab import tasks, zoo
    from llmlab.align import encode_pairs, preference_dataset
    from llmlab.align.train import rm_reward, train_dpo, train_ppo, train_reward_model

    path = zoo.pretrained(a.model, tier=a.tier)
    tok = AutoTokenizer.from_pretrained(path)
    tok.model_max_length = 10 ** 6
    sft = AutoModelForCausalLM.from_pretrained(path).eval()
    n_params = sum(p.numel() for p in sft.parameters())
    print(f"{a.model} ({path.name}): {n_params:,} parameters; {a.threads} thread(s); torch {torch.__version__}")

    # ---- PPO
    pairs = preference_dataset("train", a.pairs // 4 or 1, seed=0)
    rm, _ = train_reward_model(sft, tok, pairs, epochs=1, batch_size=8, max_length=128)
    hf_rm = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    hf_rm.load_state_dict(rm.state_dict())
    hf_rm.config.pad_token_id = tok.pad_token_id
    qs = [e.messages(None, False) for e in tasks.generate("food", "train")][: a.prompts * a.iters]
    mini = max(1, a.prompts // 2)
    ours = copy.deepcopy(sft)
    with Clock() as c_ours:
        log = train_ppo(ours, sft, tok, qs, rm_reward(rm), iters=a.iters, batch_size=a.prompts, minibatch=mini,
                        epochs=4, max_new_tokens=a.max_new, lr=1e-4, seed=0)
    ours_tokens = sum(log["length"]) * a.prompts
    ds = datasets.Dataset.from_list([{"input_ids": tok(tok.apply_chat_template(q, tokenize=False,
                                                                               add_generation_prompt=True),
                                                       add_special_tokens=False)["input_ids"]} for q in qs])
    args = PPOConfig("bench_ppo_out", per_device_train_batch_size=a.prompts, num_mini_batches=a.prompts // mini,
                     num_ppo_epochs=4, total_episodes=a.prompts * a.iters, response_length=a.max_new,
                     learning_rate=1e-4, report_to=[], use_cpu=True, save_strategy="no", seed=0, stop_token="eos",
                     num_sample_generations=0, logging_steps=1)
    with contextlib.redirect_stderr(io.StringIO()):
        trainer = PPOTrainer(args=args, processing_class=tok, model=copy.deepcopy(sft), ref_model=copy.deepcopy(sft),
                             reward_model=hf_rm, train_dataset=ds, value_model=copy.deepcopy(hf_rm))
    with Clock() as c_trl, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        trainer.train()
    trl_tokens = a.prompts * a.iters * a.max_new  # TRL samples response_length tokens (then masks after the stop)
    report("PPO", a.iters, a.prompts, "prompts", (c_ours, ours_tokens, "sampled tokens"), (c_trl, trl_tokens, "sampled tokens"))

    # ---- DPO
    dpo_pairs = preference_dataset("train", a.pairs // 4 or 1, seed=1)
    steps = a.epochs * -(-len(dpo_pairs) // a.batch)
    b = encode_pairs(tok, dpo_pairs, 192)
    tokens = int(b["chosen_attention_mask"].sum() + b["rejected_attention_mask"].sum()) * a.epochs
    pol = copy.deepcopy(sft)
    with Clock() as c_ours:
        train_dpo(pol, sft, tok, dpo_pairs, epochs=a.epochs, batch_size=a.batch, max_length=192, seed=0)
    rows = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in dpo_pairs])
    args = DPOConfig("bench_dpo_out", per_device_train_batch_size=a.batch, num_train_epochs=a.epochs, max_length=192,
                     report_to=[], use_cpu=True, save_strategy="no", seed=0, logging_steps=1)
    with contextlib.redirect_stderr(io.StringIO()):
        trainer = DPOTrainer(copy.deepcopy(sft), copy.deepcopy(sft), args=args, train_dataset=rows, processing_class=tok)
    with Clock() as c_trl, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        trainer.train()
    report("DPO", steps, a.batch, "pairs", (c_ours, tokens, "tokens"), (c_trl, tokens, "tokens"))
    import shutil

    for d in ("bench_ppo_out", "bench_dpo_out"):
        shutil.rmtree(d, ignore_errors=True)


def report(name, steps, per_step, unit, ours, theirs):
    print(f"\n{name}: {steps} steps of {per_step} {unit}")
    print(f"  {'':6s} {'s/step (wall)':>14s} {'s/step (CPU)':>13s} {unit + '/s':>10s} {'tokens/s':>10s}")
    for label, (clock, tokens, _) in (("ours", ours), ("TRL", theirs)):
        print(f"  {label:6s} {clock.wall / steps:14.3f} {clock.cpu / steps:13.3f} {steps * per_step / clock.wall:10.1f} "
              f"{tokens / clock.wall:10.0f}")
    print(f"  ours / TRL time per step: {ours[0].wall / theirs[0].wall:.2f}x wall, {ours[0].cpu / theirs[0].cpu:.2f}x CPU "
          f"(expectation: within 1.5x)")


if __name__ == "__main__":
    main()
