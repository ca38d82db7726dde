"""Week 3 benchmark: memory and time of tiled (FlashAttention-style) vs naive attention on the CPU.

    python benchmarks/bench_attention.py                 # T = 1024, 2048, 4096; forward + backward
    python benchmarks/bench_attention.py --no-rss        # skip the per-process RSS cross-check (faster)
    python benchmarks/bench_attention.py --threads 0     # every core (default: one thread)

Both versions compute causal attention on q, k, v of shape (B, H, T, D) and then backpropagate
``out.sum()``. Three memory figures per row:

- saved:  bytes of the tensors autograd keeps between forward and backward (``saved_tensors_hooks``),
          q, k and v included when the graph keeps them.
- peak:   the peak of live tensor bytes added during forward + backward, counted operator by operator
          (``llmlab.systems.memory.PeakMemory``, a TorchDispatchMode). Exact for tensor data.
- rss:    the rise of the process's peak resident set size (``ru_maxrss``) in a fresh process that runs
          only that one case: what the operating system saw, allocator and all (coarse: ~1 MiB pages,
          plus whatever the allocator keeps; the peak is reset through /proc/self/clear_refs; skipped
          with --no-rss).

``tracemalloc`` is not used: it sees only Python's own allocator, and torch allocates tensor memory
with ``posix_memalign`` (a 64 MiB tensor shows up as ~0 bytes). Times are wall and CPU (user + sys)
seconds per forward + backward, median of ``--repeat`` runs; on a shared machine trust CPU time more.
No assertions: this script prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from llmlab.config import set_threads
from llmlab.systems.flash_attention import flash_attention, naive_attention, peak_tensor_memory, saved_tensor_bytes

MiB = 2**20


def make_inputs(T, args):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(args.batch, args.heads, T, args.head_dim, generator=g).requires_grad_() for _ in range(3)]


def step(kind, q, k, v, args):
    if kind == "naive":
        out = naive_attention(q, k, v, causal=True)
    else:
        out = flash_attention(q, k, v, True, args.block, args.block)
    out.sum().backward()
    for x in (q, k, v):
        x.grad = None


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def peak_rss_kib(reset=False):
    """The process's peak RSS in KiB. Linux: VmHWM, which ``reset`` sets back to the current RSS."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        # ru_maxrss cannot be reset, and a child forked from a big parent starts at the parent's size:
        # the rise can then read 0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(kind, T, args):
    """Run one case in this (fresh) process; print the rise of peak RSS as JSON."""
    q, k, v = make_inputs(T, args)
    step(kind, *make_inputs(64, args), args)  # warm up the code paths at a tiny size
    before = peak_rss_kib(reset=True)
    step(kind, q, k, v, args)
    after = peak_rss_kib()
    print(json.dumps({"rss_rise": (after - before) * 1024}))


def rss_in_child(kind, T, args):
    cmd = [sys.executable, __file__, "--child", kind, str(T), "--batch", str(args.batch), "--heads", str(args.heads),
           "--head-dim", str(args.head_dim), "--block", str(args.block), "--threads", str(args.threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["rss_rise"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--T", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--block", type=int, default=128, help="query and key block size of the tiled version")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads, 0 = every core. Default 1: the tiled loop runs thousands of small "
                        "operators, where the thread pool's synchronisation costs more than it gains (on a busy "
                        "2-core machine, 2 threads made the tiled version ~15x slower in wall time, naive ~2x)")
    p.add_argument("--no-rss", action="store_true", help="skip the fresh-process RSS measurement")
    p.add_argument("--child", nargs=2, metavar=("KIND", "T"), help=argparse.SUPPRESS)
    args = p.parse_args()
    threads = set_threads(args.threads or None)
    if args.child:
        child(args.child[0], int(args.child[1]), args)
        return

    print(f"causal attention, B={args.batch} H={args.heads} D={args.head_dim}, float32, forward + backward of out.sum(); "
          f"tiled block {args.block}x{args.block}; torch {torch.__version__}, {threads} thread(s)")
    header = f"{'T':>5} {'method':>6} {'saved MiB':>10} {'peak MiB':>9} {'rss MiB':>8} {'wall s':>7} {'cpu s':>6}"
    print(header)
    print("-" * len(header))
    rows = []
    for T in args.T:
        for kind in ("naive", "tiled"):
            q, k, v = make_inputs(T, args)
            fn = naive_attention if kind == "naive" else (lambda q, k, v: flash_attention(q, k, v, True, args.block, args.block))
            _, saved = saved_tensor_bytes(fn, q, k, v) if kind == "tiled" else saved_tensor_bytes(fn, q, k, v, True)
            peak = peak_tensor_memory(step, kind, q, k, v, args)
            step(kind, q, k, v, args)  # warm-up
            walls, cpus = [], []
            for _ in range(args.repeat):
                w, c = time.perf_counter(), cpu_seconds()
                step(kind, q, k, v, args)
                walls.append(time.perf_counter() - w)
                cpus.append(cpu_seconds() - c)
            wall, cpu = sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]
            rss = None if args.no_rss else rss_in_child(kind, T, args)
            rss_txt = "-" if rss is None else f"{rss / MiB:.1f}"
            print(f"{T:>5} {kind:>6} {saved / MiB:>10.1f} {peak / MiB:>9.1f} {rss_txt:>8} {wall:>7.3f} {cpu:>6.3f}", flush=True)
            rows.append(dict(T=T, kind=kind, saved=saved, peak=peak, rss=rss, wall=wall, cpu=cpu))
    by = {(r["T"], r["kind"]): r for r in rows}
    print()
    for T in args.T:
        n, t = by[(T, "naive")], by[(T, "tiled")]
        print(f"T={T}: tiled/naive peak memory {t['peak'] / n['peak']:.3f}, saved {t['saved'] / n['saved']:.3f}, "
              f"cpu time {t['cpu'] / max(n['cpu'], 1e-9):.2f}x")
    if len(args.T) > 1:
        T0, T1 = args.T[0], args.T[-1]
        for kind in ("naive", "tiled"):
            growth = by[(T1, kind)]["peak"] / by[(T0, kind)]["peak"]
            print(f"{kind}: peak grows {growth:.1f}x from T={T0} to T={T1} (linear: {T1 / T0:.0f}x, quadratic: {(T1 / T0) ** 2:.0f}x)")


if __name__ == "__main__":
    main()
