"""Byte-level BPE: the course's from-scratch trainer (llmlab.tokenization.bpe) against HF ``tokenizers`` (Rust).

    python benchmarks/bench_tokenizers.py [--vocab-size 5000] [--repeats 3] [--corpus tinyshakespeare]

Both train on the same text with the same settings (GPT-2 pre-tokenizer regex, no prefix space,
no normalizer, all 256 bytes, no special tokens), in this one process, one after the other, so
the ratio compares like with like on this machine. Reported per trainer: wall time and CPU time
(HF's trainer may use several threads; other processes sharing the cores inflate wall time
only), the best of ``--repeats`` runs; then encode throughput in MB/s of UTF-8 text (ours with a
cold and with a warm word cache), bytes per token, and how many leading merges the two agree on
(they part at the first tie in pair counts, which the two libraries break differently).
Prints figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from llmlab.tokenization.bpe import Tokenizer, hf_merges, hf_train_bpe, train_bpe  # noqa: E402
from llmlab.data import load_text  # noqa: E402


def timed(fn, repeats: int = 1):
    """(result, best wall seconds, CPU seconds of that run) over ``repeats`` calls."""
    best = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if best is None or wall < best[1]:
            best = (out, wall, cpu)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3, help="training runs per trainer (best wall time kept)")
    ap.add_argument("--corpus", default="tinyshakespeare")
    args = ap.parse_args()

    text = load_text(args.corpus)
    mb = len(text.encode("utf-8")) / 1e6
    print(f"corpus {args.corpus}: {len(text):,} characters, {mb:.2f} MB UTF-8; vocab_size={args.vocab_size}; "
          f"{os.cpu_count()} CPUs visible")

    (vocab, merges), ours_wall, ours_cpu = timed(lambda: train_bpe(text, args.vocab_size), args.repeats)
    hf, hf_wall, hf_cpu = timed(lambda: hf_train_bpe(text, args.vocab_size), args.repeats)
    print("\ntraining (best of %d)         wall s    CPU s   merges" % args.repeats)
    print(f"  llmlab.tokenization.bpe (Python)     {ours_wall:9.2f} {ours_cpu:8.2f} {len(merges):8d}")
    print(f"  HF tokenizers (Rust)    {hf_wall:9.2f} {hf_cpu:8.2f} {len(hf_merges(hf)):8d}")
    print(f"  ratio ours / HF         {ours_wall / hf_wall:9.1f}x {ours_cpu / max(hf_cpu, 1e-9):7.1f}x")

    tok = Tokenizer(vocab, merges)
    ours_ids, cold_wall, cold_cpu = timed(lambda: tok.encode(text))
    _, warm_wall, warm_cpu = timed(lambda: tok.encode(text))
    hf_ids, hfe_wall, hfe_cpu = timed(lambda: hf.encode(text).ids)
    lines = text.splitlines(keepends=True)
    _, hfb_wall, hfb_cpu = timed(lambda: hf.encode_batch(lines))
    print("\nencoding the corpus            MB/s (wall)  MB/s (CPU)  bytes/token")
    print(f"  llmlab.tokenization.bpe, cold cache   {mb / cold_wall:12.2f} {mb / cold_cpu:11.2f} {mb * 1e6 / len(ours_ids):12.3f}")
    print(f"  llmlab.tokenization.bpe, warm cache   {mb / warm_wall:12.2f} {mb / warm_cpu:11.2f}")
    print(f"  HF encode (one string)   {mb / hfe_wall:12.2f} {mb / max(hfe_cpu, 1e-9):11.2f} {mb * 1e6 / len(hf_ids):12.3f}")
    print(f"  HF encode_batch (lines)  {mb / hfb_wall:12.2f} {mb / max(hfb_cpu, 1e-9):11.2f}")
    assert tok.decode(ours_ids) == text  # a sanity check of the run, not a timing

    theirs = hf_merges(hf)
    same = next((i for i, (a, b) in enumerate(zip(merges, theirs)) if a != b), min(len(merges), len(theirs)))
    print(f"\nmerges: the first {same} agree exactly; then a tie in pair counts "
          f"(ours {merges[same] if same < len(merges) else None}, HF {theirs[same] if same < len(theirs) else None})")
    print(f"        {len(set(merges) & set(theirs))} of {len(merges)} merges are in both lists")


if __name__ == "__main__":
    main()
