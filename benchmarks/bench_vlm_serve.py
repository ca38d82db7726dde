"""Week 8: VLM answers/s through the server (food-vlm, OpenAI image content parts, 1 and 4 concurrent clients)."""

import argparse
import concurrent.futures as cf
import time

import openai
import torch

from llmlab.serve.server import build_app, running
from llmlab.serve.vision_backend import encode_image
from llmlab.vision import instructions


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="food-vlm", help="zoo VLM name or LLaVA folder")
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = instructions.visual_instructions("test", args.requests, seed=0)
    msgs = [[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": encode_image(e.image)}},
                                          {"type": "text", "text": e.question}]}] for e in data]
    with running(build_app(args.model)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)

        def ask(m):
            return client.chat.completions.create(model=args.model, messages=m, temperature=0,
                                                  max_tokens=args.max_tokens).choices[0].message.content

        ask(msgs[0])  # warm-up
        for workers in (1, 4):
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(workers) as pool:
                answers = list(pool.map(ask, msgs))
            dt = time.perf_counter() - t0
            right = sum(instructions.correct(e, a) for e, a in zip(data, answers))
            print(f"{args.model}: {len(msgs)} answers with {workers} client(s) in {dt:.2f} s = "
                  f"{len(msgs) / dt:.1f} answers/s (greedy, <= {args.max_tokens} tokens; {right} right)")
    print("the vision backend runs one request per step (transformers.generate): more clients queue, not batch")


if __name__ == "__main__":
    main()
