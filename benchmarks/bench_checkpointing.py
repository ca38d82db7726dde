"""Step time and activation memory of a GPT against the number of checkpointed blocks.

    python benchmarks/bench_checkpointing.py [--n-layer 8] [--n-embd 256] [--seq 256] [--batch 8]
                                             [--reps 3] [--threads N] [--device cpu|cuda] [--plot out.png]

For k = 0 ... n_layer (the first k blocks checkpointed one by one, ``llmlab.systems.checkpointing.gpt_forward``),
then for every number of segments s (``gpt_forward_segments``, as ``checkpoint_sequential``), it prints:

- saved: bytes autograd saves in the forward pass (saved-tensor hooks), next to the formula
  ``llmlab.systems.memory.activation_bytes`` (equal on the CPU, where the formula is exact);
- peak: the most tensor memory alive during forward + backward, above the parameters
  (``llmlab.systems.memory.PeakMemory`` on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU);
- the best time (of ``--reps``) of a forward + backward pass, wall and CPU (CPU time is less disturbed when other
  processes share the cores; on a GPU only wall time, after ``torch.cuda.synchronize``).

Numbers only, no assertions on time: the expected shape is memory falling linearly in k and time
rising by about one block's forward per checkpointed block.
"""

from __future__ import annotations

import argparse
import time

import torch

from llmlab.systems.checkpointing import gpt_forward, gpt_forward_segments, segment_bounds
from llmlab.config import set_threads
from llmlab.systems.memory import PeakMemory, activation_bytes, measure_saved_activations
from llmlab.models.gpt import GPT, GPTConfig

MiB = 2**20


def timed(model, run, reps, device):
    walls, cpus = [], []
    for r in range(reps + 1):  # the first run warms up
        model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        run()[1].backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if r:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)  # best of reps: the least disturbed by other processes


def peak(model, run, device):
    model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()[1].backward()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with PeakMemory() as mem:
        loss = run()[1]
        loss.backward()
        del loss
    return mem.peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-layer", type=int, default=8)
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--n-head", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--plot", default=None, help="also save a figure (PNG) here")
    args = ap.parse_args(argv)
    threads = set_threads(args.threads)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=args.vocab, block_size=args.seq, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd)
    model = GPT(cfg).to(args.device)
    idx = torch.randint(cfg.vocab_size, (args.batch, cfg.block_size), device=args.device)
    tgt = torch.randint(cfg.vocab_size, (args.batch, cfg.block_size), device=args.device)
    n = sum(p.numel() for p in model.parameters())
    print(f"GPT {n / 1e6:.2f}M parameters: {cfg.n_layer} blocks, C={cfg.n_embd}, H={cfg.n_head}, V={cfg.vocab_size}; "
          f"batch {args.batch} x T={cfg.block_size}; float32 on {args.device}, {threads} threads; best of {args.reps}")
    print("wall time is noisy when other processes share the cores; CPU time less so (GPU: wall only)\n")

    rows = []
    print(f"{'checkpointed':>12} {'saved MiB':>10} {'formula MiB':>12} {'peak MiB':>9} {'wall ms':>8} {'CPU ms':>8}")
    for k in range(cfg.n_layer + 1):
        run = lambda: gpt_forward(model, idx, tgt, range(k))  # noqa: E731
        _, saved = measure_saved_activations(run, exclude=model.parameters())
        wall, cpu = timed(model, run, args.reps, args.device)
        rows.append((k, saved.bytes, peak(model, run, args.device), wall, cpu))
        formula = activation_bytes(cfg, args.batch, checkpointed=k)
        print(f"{k:>12} {saved.bytes / MiB:10.2f} {formula / MiB:12.2f} {rows[-1][2] / MiB:9.2f} {1e3 * wall:8.1f} {1e3 * cpu:8.1f}")
    k0, kL = rows[0], rows[-1]
    print(f"\nall {cfg.n_layer} blocks checkpointed: saved x{kL[1] / k0[1]:.2f}, peak x{kL[2] / k0[2]:.2f}, "
          f"wall {kL[3] / k0[3] - 1:+.0%}, CPU {kL[4] / k0[4] - 1:+.0%}\n")

    print(f"{'segments':>12} {'recomputed':>10} {'saved MiB':>10} {'peak MiB':>9} {'wall ms':>8} {'CPU ms':>8}")
    seg_rows = []
    for s in range(1, cfg.n_layer + 1):
        run = lambda: gpt_forward_segments(model, idx, tgt, s)  # noqa: E731
        _, saved = measure_saved_activations(run, exclude=model.parameters())
        wall, cpu = timed(model, run, args.reps, args.device)
        rec = sum(e - b for b, e, ck in segment_bounds(cfg.n_layer, s) if ck)
        seg_rows.append((s, rec, peak(model, run, args.device)))
        print(f"{s:>12} {rec:>10} {saved.bytes / MiB:10.2f} {seg_rows[-1][2] / MiB:9.2f} {1e3 * wall:8.1f} {1e3 * cpu:8.1f}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(11, 3.5))
        ax[0].plot([r[0] for r in rows], [r[1] / MiB for r in rows], "o-", label="saved (hooks)")
        ax[0].plot([r[0] for r in rows], [r[2] / MiB for r in rows], "s-", label="peak")
        ax[0].plot([r[1] for r in seg_rows], [r[2] / MiB for r in seg_rows], "^", label="peak, s segments (x = recomputed)")
        ax[0].set_xlabel("checkpointed / recomputed blocks"); ax[0].set_ylabel("MiB"); ax[0].legend()
        ax[1].plot([r[0] for r in rows], [1e3 * r[3] for r in rows], "o-", label="wall")
        ax[1].plot([r[0] for r in rows], [1e3 * r[4] for r in rows], "s-", label="CPU")
        ax[1].set_xlabel("checkpointed blocks"); ax[1].set_ylabel("ms per forward + backward"); ax[1].legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nfigure saved to {args.plot}")


if __name__ == "__main__":
    main()
