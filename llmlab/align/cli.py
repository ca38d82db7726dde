"""The RLHF pipeline as one command: reward model -> PPO, and SFT model -> DPO, on a causal LM and preferences.

::

    python -m llmlab.align --out runs/rlhf                          # the course's base model and pairs
    python -m llmlab.align --model path/to/hf_model --prefs my_pairs.jsonl --out runs/mine

``--model`` is a Hugging Face causal LM folder with a tokenizer that has a chat template (default: the zoo's
``llama-base`` of the current tier). ``--prefs`` is a JSONL file of preference pairs, conversational (TRL's format)
or plain ``prompt``/``chosen``/``rejected`` strings (default: the course's checkable pairs,
:mod:`llmlab.align.preferences`, written to ``<out>/prefs.jsonl``). A tenth of the pairs is held out.

Steps: (1) a reward model (the model's backbone + a scalar head, Bradley-Terry) and its held-out pairwise
accuracy; (2) PPO of the model against that reward model on the pairs' prompts, with the reward before and after
on held-out prompts; (3) DPO of the model on the pairs, with its held-out implicit-reward accuracy. The reward
model is saved as an ``AutoModelForSequenceClassification`` folder, the two policies as causal LM folders, and
the figures in ``<out>/summary.json``. On a GPU the same command takes a real model (``--device cuda``).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path


def _quiet():
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def run(model: str | None, prefs: str | None, out: str, n_per_task: int = 40, rm_epochs: int = 2,
        ppo_iters: int = 10, dpo_epochs: int = 2, batch_size: int = 16, max_length: int = 192,
        max_new_tokens: int = 32, seed: int = 0, device: str = "cpu", log=print) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from .. import zoo
    from .dpo import dpo_loss
    from .logprobs import sequence_logprob
    from .preferences import preference_dataset, read_jsonl, write_jsonl
    from .reward import pairwise_accuracy
    from .batches import concat_pairs, encode_pairs
    from .train import mean_reward, rm_reward, score_pairs, train_dpo, train_ppo, train_reward_model

    _quiet()
    t0 = time.time()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = model or str(zoo.pretrained("llama-base"))
    tok = AutoTokenizer.from_pretrained(model_path)
    tok.model_max_length = 10 ** 6
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    base = AutoModelForCausalLM.from_pretrained(model_path).to(device).eval()
    if prefs:
        rows = read_jsonl(prefs)
    else:
        rows = preference_dataset("train", n_per_task, seed)
        write_jsonl(rows, out_dir / "prefs.jsonl")
    random.Random(seed).shuffle(rows)
    n_held = max(1, len(rows) // 10)
    held, train = rows[:n_held], rows[n_held:]
    log(f"[rlhf] {model_path}: {sum(p.numel() for p in base.parameters()):,} parameters; "
        f"{len(train)} training pairs, {n_held} held out")

    # 1. reward model
    rm, rm_log = train_reward_model(base, tok, train, rm_epochs, batch_size, lr=1e-3, max_length=max_length, seed=seed)
    rm_acc = pairwise_accuracy(*score_pairs(rm, tok, held, max_length))
    log(f"[rlhf] reward model: held-out pairwise accuracy {rm_acc:.0%} (loss {rm_log['loss'][0]:.3f} -> "
        f"{rm_log['loss'][-1]:.3f})")
    hf_rm = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1)
    hf_rm.load_state_dict(rm.state_dict())
    hf_rm.config.pad_token_id = tok.pad_token_id
    hf_rm.save_pretrained(out_dir / "reward_model")
    tok.save_pretrained(out_dir / "reward_model")

    # 2. PPO against the reward model
    prompts = [r["prompt"] for r in train]
    held_prompts = [r["prompt"] for r in held]
    reward = rm_reward(rm)
    before = mean_reward(base, tok, held_prompts, reward, max_new_tokens)
    policy = copy.deepcopy(base)
    ppo_log = train_ppo(policy, base, tok, prompts, reward, iters=ppo_iters, batch_size=batch_size,
                        minibatch=max(1, batch_size // 2), max_new_tokens=max_new_tokens, seed=seed)
    after = mean_reward(policy, tok, held_prompts, reward, max_new_tokens)
    log(f"[rlhf] PPO: held-out reward {before:.3f} -> {after:.3f}, KL {ppo_log['kl'][-1]:.2f} nats per response")
    policy.save_pretrained(out_dir / "ppo_policy")
    tok.save_pretrained(out_dir / "ppo_policy")

    # 3. DPO on the pairs
    dpo_policy = copy.deepcopy(base)
    dpo_log = train_dpo(dpo_policy, base, tok, train, epochs=dpo_epochs, batch_size=batch_size,
                        max_length=max_length, seed=seed)
    with torch.no_grad():
        ids, am, resp = concat_pairs(encode_pairs(tok, held, max_length))
        pc, pr = sequence_logprob(dpo_policy(input_ids=ids, attention_mask=am).logits, ids, resp).chunk(2)
        rc, rr = sequence_logprob(base(input_ids=ids, attention_mask=am).logits, ids, resp).chunk(2)
        _, ch, rj = dpo_loss(pc, pr, rc, rr)
    dpo_acc = pairwise_accuracy(ch, rj)
    log(f"[rlhf] DPO: held-out implicit-reward accuracy {dpo_acc:.0%} (loss {dpo_log['loss'][0]:.3f} -> "
        f"{dpo_log['loss'][-1]:.3f})")
    dpo_policy.save_pretrained(out_dir / "dpo_policy")
    tok.save_pretrained(out_dir / "dpo_policy")

    summary = {"model": model_path, "pairs": len(rows), "held_out": n_held,
               "reward_model": {"held_out_accuracy": rm_acc, "loss": rm_log["loss"]},
               "ppo": {"held_out_reward_before": before, "held_out_reward_after": after, **ppo_log},
               "dpo": {"held_out_accuracy": dpo_acc, "loss": dpo_log["loss"]},
               "wall_s": time.time() - t0}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"[rlhf] done in {summary['wall_s']:.0f} s: {out_dir}/reward_model, ppo_policy, dpo_policy, summary.json")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmlab.align", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a Hugging Face causal LM folder (default: the zoo's llama-base)")
    p.add_argument("--prefs", help="a preference JSONL file (default: the course's checkable pairs)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n-per-task", type=int, default=40, help="course pairs per task family (without --prefs)")
    p.add_argument("--rm-epochs", type=int, default=2)
    p.add_argument("--ppo-iters", type=int, default=10)
    p.add_argument("--dpo-epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    run(a.model, a.prefs, a.out, a.n_per_task, a.rm_epochs, a.ppo_iters, a.dpo_epochs, a.batch_size,
        a.max_length, a.max_new_tokens, a.seed, a.device)
    return 0
