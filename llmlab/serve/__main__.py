"""``python -m llmlab.serve --model llama-chat [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--draft llama-draft]``

Serves a zoo model or any Hugging Face causal LM folder (Llama, Mistral, Qwen2, GPT-2) with the course
engine behind the OpenAI-compatible API of :mod:`llmlab.serve.api`. ``make serve`` runs it on llama-chat.
"""

from __future__ import annotations

import argparse
import os


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmlab.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-chat", help="zoo name (llama-chat, llama-base, ...) or HF folder")
    ap.add_argument("--served-model-name", default=None, help="the name clients pass as model (default: --model)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--api-key", default=os.environ.get("LLMLAB_API_KEY"), help="require 'Authorization: Bearer KEY'")
    ap.add_argument("--num-blocks", type=int, default=512, help="KV-cache blocks")
    ap.add_argument("--block-size", type=int, default=16, help="tokens per KV-cache block")
    ap.add_argument("--max-num-seqs", type=int, default=64, help="sequences per step")
    ap.add_argument("--max-num-batched-tokens", type=int, default=512, help="token budget per step")
    ap.add_argument("--max-queue", type=int, default=256, help="requests in flight before 429")
    ap.add_argument("--no-prefix-caching", action="store_true")
    ap.add_argument("--backend", choices=["engine", "hf"], default="engine",
                    help="engine: the course engine; hf: plain transformers.generate, one request at a time (comparison)")
    ap.add_argument("--draft", default=None,
                    help="speculative decoding: a draft model with the same tokenizer (zoo name, e.g. llama-draft, or folder)")
    ap.add_argument("--num-speculative-tokens", type=int, default=4, help="draft tokens proposed per step")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)

    import torch
    import uvicorn

    from .server import build_app

    if args.threads:
        torch.set_num_threads(args.threads)
    extra = {} if args.backend == "hf" else {"enable_prefix_caching": not args.no_prefix_caching,
                                             "draft": args.draft, "num_speculative_tokens": args.num_speculative_tokens}
    app = build_app(args.model, args.served_model_name, args.api_key, args.max_queue, args.num_blocks,
                    args.block_size, args.max_num_seqs, args.max_num_batched_tokens, backend=args.backend, **extra)
    print(f"llmlab.serve: {args.served_model_name or args.model} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
