"""Command line for the course trainer (:class:`llmlab.train.Trainer` building a GPT from a config).

    python -m llmlab.train.cli CONFIG.json|yaml [--resume] [--overwrite] [--set KEY=VALUE ...]
    python -m llmlab.train.cli --print-defaults        # every valid key with its default, as JSON

Examples::

    python -m llmlab.train.batches --corpus tinyshakespeare --tokenizer char --out runs/data/shakespeare_char
    python -m llmlab.train.cli --print-defaults > runs/char.json      # every key; its data_dir is the folder above
    python -m llmlab.train.cli runs/char.json --set max_steps=200 --set lr_decay_steps=200 --set out_dir=runs/try
    python -m llmlab.train.cli runs/char.json --resume --set max_steps=300 --set lr_decay_steps=200 --set out_dir=runs/try

(``python -m llmlab.train_cli`` and ``python -m llmlab.tokendata``, the old names, still work for one release.)

Bad input (unknown config key, missing or corrupt checkpoint, a checkpoint of another model shape,
an empty corpus) ends with a one-paragraph error on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from .batches import TokenDataError
from .config import ConfigError, TrainConfig, parse_override
from .trainer import CheckpointError, TrainingDiverged, Trainer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llmlab.train.cli", description="Train a llmlab GPT on a tokenised dataset.")
    ap.add_argument("config", nargs="?", help="a JSON or YAML file of TrainConfig keys")
    ap.add_argument("--resume", action="store_true", help="continue out_dir/ckpt.pt (bit-for-bit)")
    ap.add_argument("--overwrite", action="store_true", help="start over even if out_dir holds a checkpoint")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config key (value read as JSON, else as a string: --set max_steps=50 --set device=cpu)")
    ap.add_argument("--print-defaults", action="store_true", help="print every config key and its default, then exit")
    args = ap.parse_args(argv)
    if args.print_defaults:
        print(json.dumps(asdict(TrainConfig()), indent=1))
        return 0
    if args.config is None:
        ap.error("a config file is required (see --print-defaults for the keys)")
    try:
        overrides = dict(parse_override(s) for s in args.overrides)
        cfg = TrainConfig.from_file(args.config, overrides)
        summary = Trainer(cfg, resume=args.resume, overwrite=args.overwrite).run()
    except (ConfigError, CheckpointError, TokenDataError, TrainingDiverged, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint (if any) is intact; continue with --resume", file=sys.stderr)
        return 130
    val = summary.get("val_loss")
    print(f"done: step {summary['step']}/{summary['max_steps']}"
          + (f" | val loss {val:.4f} | val ppl {summary['val_ppl']:.2f}" if val is not None else "")
          + f" | logs in {cfg.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
