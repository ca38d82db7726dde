"""Week 1 benchmark: wall time for the reference char-level trainer to FIRST reach a val loss of 1.88.

    python benchmarks/bench_week01.py            # the course configuration (the default of notebook 04)
    python benchmarks/bench_week01.py --anchor   # ... then nanoGPT's documented CPU example, in a child process

Everything is timed from the start of the process (interpreter start-up, ``import torch``, reading and
encoding the corpus, building the model, training, evaluating), because that is what a learner waits for.
CPU time (user + sys) is printed next to wall time: on a shared machine wall time is noisy.

Validation is honest but cheap. Every ``eval_interval`` steps the model is scored on a fixed set of
windows spread evenly over the validation split (``--gate-tokens``, 8,192 tokens in 128 windows by default:
standard error about 0.02 nats). Only when that estimate comes within ``--gate-margin`` (0.04) of the target is the whole
validation split scored (111,540 tokens); the run stops at the first whole-split score <= target. The loss
reported is always the whole-split one.

The anchor is nanoGPT's CPU example (README, "I only have a macbook"): 4 layers, 4 heads, 128 dims,
block 64, batch 12, lr 1e-3 (100 warm-up steps, cosine to 1e-4), 2000 iterations, no dropout, evaluated
as nanoGPT does (20 random batches every 250 steps). It took 85 s (whole process) on the course's 2-core
machine and ended at val loss 1.886.
"""

from __future__ import annotations

import os
import time

T_IMPORT = time.perf_counter()  # the first thing that runs; see process_age() for the time before it


def process_age() -> float:
    """Seconds since this process started (Linux: /proc), so interpreter start-up counts too."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - T_IMPORT


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# OpenMP threads that spin while they wait for each other turn a busy machine (other processes on the same
# cores) into a 10-50x slowdown; waiting passively avoids that. It must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402

from llmlab.train.simple import CharTokenizer, TrainConfig, split_loss, train, train_val_split  # noqa: E402
from llmlab.data import load_text  # noqa: E402
from llmlab.models.gpt import GPT, GPTConfig  # noqa: E402

# The course configuration: notebook 04's default CPU run uses the same model, batch and learning rate (and trains
# 3000 steps; here the cosine ends at 1000 so that the run is short).
FAST = dict(
    model=dict(n_layer=3, n_head=4, n_embd=128, block_size=64, dropout=0.0),
    train=dict(batch_size=16, learning_rate=1e-2, min_lr=1e-3, warmup_iters=50, max_iters=1000,
               eval_interval=50, grad_clip=1.0, weight_decay=0.1, betas=(0.9, 0.99)),
)
ANCHOR = dict(
    model=dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0),
    train=dict(batch_size=12, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100, max_iters=2000,
               eval_interval=250, eval_iters=20, grad_clip=1.0, weight_decay=0.1, betas=(0.9, 0.99)),
)


def run(name: str, spec: dict, target: float, threads: int, gate_tokens: int, gate_margin: float,
        stop_at_target: bool) -> dict:
    torch.set_num_threads(threads)
    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    train_data, val_data = train_val_split(tok.encode_tensor(text))
    torch.manual_seed(1337)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, **spec["model"]))
    T = model.config.block_size
    # the gate: gate_tokens // T windows spread evenly over the validation split (fixed for the whole run)
    starts = torch.linspace(0, len(val_data) - T - 1, max(1, gate_tokens // T)).long()
    windows = val_data.unfold(0, T + 1, 1)[starts]  # (n, T+1)
    gate_x, gate_y = windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
    full_evals = []

    @torch.no_grad()
    def gate_loss(m) -> float:
        m.eval()
        loss = sum(m(x, y)[1].item() * len(x) for x, y in zip(gate_x.split(256), gate_y.split(256))) / len(gate_x)
        m.train()
        return loss

    def evaluate(m):
        est = gate_loss(m)
        if est > target + gate_margin:
            return {"val": est}
        full = split_loss(m, val_data, T)  # the whole validation split
        full_evals.append(full)
        return {"val": full}

    cfg = TrainConfig(seed=1337, progress=False, target_loss=target if stop_at_target else None, **spec["train"])
    t_train, c_train = time.perf_counter(), cpu_seconds()
    hist = train(model, train_data, val_data, cfg, evaluate=None if name == "anchor" else evaluate)
    train_wall, train_cpu = time.perf_counter() - t_train, cpu_seconds() - c_train
    if name == "anchor":  # nanoGPT's own estimate decided nothing; score the end point on the whole split
        hist["reached_target"] = any(v <= target for v in hist["val_loss"])
    wall, cpu = process_age(), cpu_seconds()  # the whole process up to here
    final_full = full_evals[-1] if full_evals and hist["reached_target"] else split_loss(model, val_data, T)
    tokens = hist["stopped_at"] * cfg.batch_size * T
    return dict(name=name, spec=spec, threads=threads, iters=hist["stopped_at"], tokens=tokens,
                reached_target=hist["reached_target"], val_estimates=list(zip(hist["iter"], hist["val_loss"])),
                full_val_evals=len(full_evals), wall_s=wall, cpu_s=cpu, train_wall_s=train_wall,
                train_cpu_s=train_cpu, tokens_per_s=tokens / train_wall, final_val_full=final_full,
                val_tokens=len(val_data) - 1, gate_tokens=gate_tokens)


def report(r: dict, target: float) -> None:
    m, t = r["spec"]["model"], r["spec"]["train"]
    print(f"[{r['name']}] model: {m['n_layer']} layers x {m['n_head']} heads x {m['n_embd']} dims, block {m['block_size']}"
          f" | batch {t['batch_size']}, lr {t['learning_rate']:g} (warm-up {t['warmup_iters']}, cosine to "
          f"{t['min_lr']:g} at {t['max_iters']}), clip {t['grad_clip']}, wd {t['weight_decay']}, threads {r['threads']}")
    reached = "reached" if r["reached_target"] else "did NOT reach"
    print(f"[{r['name']}] {reached} val loss {target} | iterations {r['iters']} | tokens seen {r['tokens']:,}")
    print(f"[{r['name']}] wall {r['wall_s']:.1f} s whole process (training {r['train_wall_s']:.1f} s) | "
          f"CPU {r['cpu_s']:.1f} s user+sys (training {r['train_cpu_s']:.1f} s) | {r['tokens_per_s']:,.0f} tokens/s while training")
    est = ", ".join(f"{i}:{v:.3f}" for i, v in r["val_estimates"])
    print(f"[{r['name']}] val estimates (iter:loss) {est}")
    print(f"[{r['name']}] final val loss {r['final_val_full']:.4f} on the whole val split ({r['val_tokens']:,} tokens)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchor", action="store_true", help="also run nanoGPT's CPU example (child process) and print the ratio")
    ap.add_argument("--config", choices=["fast", "anchor"], default="fast", help=argparse.SUPPRESS)
    ap.add_argument("--target", type=float, default=1.88)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gate-tokens", type=int, default=8192, help="val tokens scored at every cheap evaluation")
    ap.add_argument("--gate-margin", type=float, default=0.04, help="score the whole val split when the cheap estimate is this close")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override the course configuration, e.g. --set model.n_layer=4 --set train.max_iters=900")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args(argv)

    spec = json.loads(json.dumps(FAST if args.config == "fast" else ANCHOR))  # a deep copy
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        spec[section][name] = json.loads(value)
    r = run(args.config, spec, args.target, args.threads, args.gate_tokens, args.gate_margin,
            stop_at_target=args.config == "fast")
    if args.config == "anchor" and not args.anchor:  # the child process: hand the numbers to the parent
        if args.json:
            with open(args.json, "w") as f:
                json.dump(r, f)
        report(r, args.target)
        return 0
    report(r, args.target)
    results = [r]
    if args.anchor:
        out = f"/tmp/bench_week01_anchor_{os.getpid()}.json"
        subprocess.run([sys.executable, __file__, "--config", "anchor", "--threads", str(args.threads),
                        "--target", str(args.target), "--json", out], check=True)
        with open(out) as f:
            a = json.load(f)
        os.remove(out)
        results.append(a)
        print(f"ratio (anchor / course config): wall {a['wall_s'] / r['wall_s']:.2f}x, CPU {a['cpu_s'] / r['cpu_s']:.2f}x, "
              f"tokens/s {r['tokens_per_s'] / a['tokens_per_s']:.2f}x; tokens to target {a['tokens']:,} (anchor, "
              f"{'reached' if a['reached_target'] else 'not reached'}) vs {r['tokens']:,}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if r["reached_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
