"""``python -m llmlab.evaluate --models ... --out report/``: see :mod:`llmlab.evaluate`."""

import argparse
import os
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llmlab.evaluate", description="Write the Week 7 evaluation report.")
    ap.add_argument("--models", nargs="+", required=True,
                    help="zoo names, Hugging Face folders, or openai:<model>@<base_url>")
    ap.add_argument("--out", default="report", help="output folder (default: report/)")
    ap.add_argument("--size", choices=["fast", "full"], default=None,
                    help="fast: a few examples per metric (default when LLMLAB_FAST=1); full: more")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .report import evaluate_models, write_report

    size = args.size or ("fast" if os.environ.get("LLMLAB_FAST", "") not in ("", "0") else "full")
    results = evaluate_models(args.models, size=size, seed=args.seed, log=lambda s: print(s, flush=True))
    paths = write_report(results, args.out)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
