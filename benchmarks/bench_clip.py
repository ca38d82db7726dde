"""Week 8 benchmark: CLIP training images/s, the course implementation vs open_clip with the same configuration.

    python benchmarks/bench_clip.py                    # width 64, 2 layers, batch 128, 32-pixel images
    python benchmarks/bench_clip.py --width 128 --layers 4 --threads 0

Both models get the same shapes: a ViT over 32-pixel images in 4-pixel patches and a causal text Transformer
over 24 tokens, projected to one joint width; open_clip's is registered as a config (``open_clip.add_model_config``)
and built with random weights (no download). Each step is forward + symmetric InfoNCE + backward + AdamW on the
same batch of food images and captions (``make bench-clip``). Measured on the course machine (2 cores, loaded, one
thread, width 64, batch 128): 203 ms CPU per step for the course model against 222 ms for open_clip (0.92x),
the same 237,121 parameters in both. Median wall and CPU seconds per step over ``--steps`` steps after two
warm-up steps; the expectation to report against is the course model within 1.3x of open_clip. No assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from llmlab.config import set_threads
from llmlab.vision import images
from llmlab.vision.clip import clamp_logit_scale, clip_loss
from llmlab.vision.pretrained import clip_config
from llmlab.vision.text import caption_tokenizer
from llmlab.vision.clip import CLIP


def open_clip_model(width, layers, vocab, context):
    import logging

    import open_clip

    logging.getLogger().setLevel(logging.ERROR)  # "No pretrained weights loaded": random weights are what we want

    cfg = {"embed_dim": width,
           "vision_cfg": {"image_size": 32, "patch_size": 4, "width": width, "layers": layers, "head_width": width // 4,
                          "mlp_ratio": 4.0},
           "text_cfg": {"context_length": context, "vocab_size": vocab, "width": width, "heads": 4, "layers": layers}}
    with tempfile.TemporaryDirectory() as d:
        Path(d, "llmlab-bench-clip.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(d)
        return open_clip.create_model("llmlab-bench-clip", pretrained=None)


def time_steps(step, steps):
    for _ in range(2):
        step()
    walls, cpus = [], []
    for _ in range(steps):
        w, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - w), cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: every core)")
    a = ap.parse_args()
    set_threads(a.threads or None)
    import open_clip

    tok = caption_tokenizer()
    data = images.food_dataset("train", a.batch, seed=0)
    x = data["pixel_values"]
    ids, mask = tok.encode([images.captions(o)[0] for o in data["objects"]], 24)
    torch.manual_seed(0)
    ours = CLIP(clip_config(a.width, a.layers, len(tok)))
    theirs = open_clip_model(a.width, a.layers, len(tok), 24)
    loss_fn = open_clip.loss.ClipLoss()
    opt_o, opt_t = torch.optim.AdamW(ours.parameters(), 1e-3), torch.optim.AdamW(theirs.parameters(), 1e-3)

    def step_ours():
        loss = clip_loss(ours.encode_image(x), ours.encode_text(ids, mask), ours.logit_scale.exp())
        opt_o.zero_grad(), loss.backward(), opt_o.step(), clamp_logit_scale(ours)

    def step_theirs():
        image_features, text_features, logit_scale = theirs(x, ids)[:3]  # open_clip's CLIP returns a tuple
        loss = loss_fn(image_features, text_features, logit_scale)
        opt_t.zero_grad(), loss.backward(), opt_t.step()

    n_o, n_t = (sum(p.numel() for p in m.parameters()) for m in (ours, theirs))
    print(f"CLIP width {a.width}, {a.layers} layers, batch {a.batch}, 32 px / 4 px patches, {torch.get_num_threads()} thread(s)")
    rows = {"llmlab.vision.clip": (n_o, *time_steps(step_ours, a.steps)), "open_clip": (n_t, *time_steps(step_theirs, a.steps))}
    for name, (n, wall, cpu) in rows.items():
        print(f"  {name:20s} {n:>9,} params  {wall * 1e3:7.1f} ms/step wall  {cpu * 1e3:7.1f} ms CPU  {a.batch / wall:7.0f} images/s")
    ratio = rows["llmlab.vision.clip"][1] / rows["open_clip"][1]
    print(f"  course / open_clip wall time per step: {ratio:.2f}x (expectation: within 1.3x)")


if __name__ == "__main__":
    main()
