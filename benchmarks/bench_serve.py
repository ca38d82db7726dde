"""Week 6 benchmark: the course inference engine against sequential transformers.generate, speculative decoding, paged-KV waste, server overhead.

    python benchmarks/bench_serve.py                       # the zoo's llama-chat (tier from LLMLAB_FAST / the machine)
    python benchmarks/bench_serve.py --model PATH --tokens 64 --concurrency 1 8 32 64
    python benchmarks/bench_serve.py --threads 0           # every core (default: one thread)

Four measurements, one run, same model:

1. total output tokens/s of ``llmlab.serve.LLMEngine`` with 1, 8, 32 and 64 requests in flight (greedy,
   ``--tokens`` each, EOS ignored) against ``transformers`` ``generate`` called once per request, in sequence
   (the issue's expectation: >= 8x at 32 concurrent on a GPU-sized model; on a tiny CPU model Python overhead
   per step weighs more, so expect less);
2. speculative decoding with the draft ``--draft`` (default: the zoo's ``llama-draft-chat`` for llama-chat: llama-draft,
   trained like llama-base with its tokenizer, after llama-chat's SFT): one sequence (``llmlab.serve.speculative``) against plain decoding through the same
   code (``k = 0``) and ``generate``; then the batched engine with and without the draft at 1 and 8 concurrent
   requests; greedy output checked identical, acceptance rate, tokens per target call, CPU-time speedup;
3. paged-KV memory waste (blocks of 16) vs contiguous preallocation to the context length, on a realistic mix
   of prompt/output lengths (lognormal prompts, geometric outputs);
4. server overhead: the same concurrent load through HTTP with the ``openai`` client (streaming) vs calling the
   async engine directly in-process.

Wall and CPU (user + sys) seconds are printed; on a shared machine trust CPU time more. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    w, c = time.perf_counter(), cpu_s()
    out = fn()
    return out, time.perf_counter() - w, cpu_s() - c


def prompts_for(tok, n, seed=0):
    rng = np.random.default_rng(seed)
    words = "to be or not that is the question whether tis nobler in the mind to suffer 明月 光 霜 春 风".split()
    return [tok.encode(" ".join(rng.choice(words, size=int(rng.integers(3, 12)))), add_special_tokens=False)
            for _ in range(n)]


def bench_throughput(model, tok, args):
    from llmlab.serve import LLMEngine, SamplingParams

    print(f"\n1. throughput, {args.tokens} greedy tokens per request")
    n_seq = min(8, max(args.concurrency))
    ps = prompts_for(tok, n_seq)

    def sequential():
        for p in ps:
            ids = torch.tensor([p])
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                           min_new_tokens=args.tokens, do_sample=False, pad_token_id=1)
    _, w, c = timed(sequential)
    base = n_seq * args.tokens / w
    print(f"   transformers.generate, one at a time ({n_seq} requests): {base:8.1f} tokens/s  (wall {w:.1f} s, CPU {c:.1f} s)")
    for conc in args.concurrency:
        ps = prompts_for(tok, conc, seed=conc)
        eng = LLMEngine(model, tok, num_blocks=max(256, conc * (args.tokens + 16) // 16 + 8), block_size=16,
                        max_num_seqs=conc, max_num_batched_tokens=max(512, conc * 16))
        params = SamplingParams(max_tokens=args.tokens, temperature=0, ignore_eos=True)
        _, w, c = timed(lambda: eng.generate(ps, params))
        tps = conc * args.tokens / w
        print(f"   course engine, {conc:3d} in flight: {tps:8.1f} tokens/s = {tps / base:5.1f}x  (wall {w:.1f} s, "
              f"CPU {c:.1f} s, {eng.num_steps} steps)")


def bench_speculative(model, tok, args):
    from llmlab.serve import LLMEngine, SamplingParams
    from llmlab.serve.engine import load_model
    from llmlab.serve.speculative import speculative_generate

    draft, dtok, dpath = load_model(args.draft)
    if dtok.get_vocab() != tok.get_vocab():
        print(f"\n2. speculative decoding: skipped, the draft {args.draft} does not share the model's tokenizer")
        return
    n_t, n_d = (sum(p.numel() for p in m.parameters()) / 1e6 for m in (model, draft))
    print(f"\n2. speculative decoding ({args.tokens} greedy tokens; draft {args.draft}: {n_d:.2f}M parameters, "
          f"target {n_t:.2f}M)")
    p = prompts_for(tok, 1, seed=99)[0]
    ids = torch.tensor([p])
    # eos_token_id=None: run through end-of-turn tokens as speculative_generate does (min_new_tokens would instead
    # forbid them, which changes the greedy path)
    ref, w0, c0 = timed(lambda: model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                                               do_sample=False, eos_token_id=None, pad_token_id=1)[0, len(p):].tolist())
    _, wp, cp = timed(lambda: speculative_generate(model, draft, p, args.tokens, k=0))     # plain, same code path
    _, wd, cd = timed(lambda: speculative_generate(draft, draft, p, args.tokens, k=0))
    print(f"   generate: wall {w0:.2f} s, CPU {c0:.2f} s; plain cached decoding (k=0): CPU {cp:.2f} s; "
          f"the draft alone: CPU {cd:.2f} s (cost ratio {cd / cp:.2f})")
    for k in (2, 4, 6):
        (out, st), w, c = timed(lambda: speculative_generate(model, draft, p, args.tokens, k=k))
        print(f"   k={k}: identical to the target: {out == ref}; acceptance {st.acceptance_rate:.2f}, "
              f"{st.tokens_per_target_call:.2f} tokens per target call; CPU {c:.2f} s: {cp / c:.2f}x plain, "
              f"{c0 / c:.2f}x generate")
    params = SamplingParams(max_tokens=args.tokens, temperature=0.0, ignore_eos=True)
    for conc in (1, 8):
        ps = prompts_for(tok, conc, seed=7)
        outs = {}
        for name, kw in (("plain", {}), ("draft k=4", {"draft_model": draft, "num_speculative_tokens": 4})):
            eng = LLMEngine(model, tok, num_blocks=1024, block_size=16, **kw)
            res, w, c = timed(lambda: eng.generate(ps, params))
            outs[name] = ([r.token_ids for r in res], c)
            extra = (f", acceptance {eng.spec.stats.acceptance_rate:.2f}, "
                     f"{(eng.spec.stats.accepted + eng.spec.stats.rounds) / max(eng.spec.stats.rounds, 1):.2f} tokens "
                     f"per round") if eng.spec else ""
            print(f"   engine, {conc:2d} concurrent, {name:9s}: {conc * args.tokens / c:7.1f} tokens per CPU-s "
                  f"({eng.num_steps} steps{extra})")
        print(f"   engine, {conc:2d} concurrent: greedy outputs identical: {outs['plain'][0] == outs['draft k=4'][0]}; "
              f"speedup {outs['plain'][1] / outs['draft k=4'][1]:.2f}x (CPU time)")


def bench_waste(args):
    from llmlab.serve.block_manager import BlockManager
    from llmlab.serve.request import Sequence

    print("\n3. KV memory waste on 1000 requests (prompts lognormal, median ~90; outputs geometric, mean ~120)")
    rng = np.random.default_rng(0)
    prompts = np.clip(rng.lognormal(4.5, 0.8, 1000).astype(int), 4, 1500)
    outputs = np.clip(rng.geometric(1 / 120, 1000), 1, 2000)
    used = prompts + outputs
    for ctx in (2048, 4096):
        print(f"   contiguous, {ctx}-token reservation: {1 - used.sum() / (len(used) * ctx):6.1%} wasted")
    bm = BlockManager(num_blocks=int((used // 16 + 1).sum()) + 1, block_size=16, enable_prefix_caching=False)
    held = 0
    for u in used:
        s = Sequence(list(range(int(u))))
        bm.ensure(s, len(s))
        held += len(s.block_table) * 16
    print(f"   paged, blocks of 16 (counted by the block manager): {1 - used.sum() / held:6.1%} wasted")


def bench_server(args):
    import openai

    from llmlab.serve.server import build_app, running

    conc = max(args.concurrency)
    print(f"\n4. server overhead: {conc} concurrent requests of {args.tokens} tokens")
    app = build_app(args.model, num_blocks=max(256, conc * (args.tokens + 32) // 16 + 8), max_num_seqs=conc,
                    max_num_batched_tokens=max(512, conc * 16))
    ae = app.state.engine
    from llmlab.serve import SamplingParams
    ps = prompts_for(ae.engine.tokenizer, conc, seed=7)
    params = SamplingParams(max_tokens=args.tokens, temperature=0, ignore_eos=True)

    async def direct():
        await ae.start()
        async def one(p):
            async for _ in ae.generate(p, params):
                pass
        await asyncio.gather(*[one(p) for p in ps])
        await ae.stop()
    _, w1, c1 = timed(lambda: asyncio.run(direct()))
    print(f"   engine directly (asyncio): {conc * args.tokens / w1:8.1f} tokens/s  (wall {w1:.2f} s, CPU {c1:.2f} s)")
    with running(app) as url:
        async def http():
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
            async def one(p):
                stream = await client.completions.create(model=args.model, prompt=p, max_tokens=args.tokens,
                                                         temperature=0, stream=True, extra_body={"ignore_eos": True})
                async for _ in stream:
                    pass
            await asyncio.gather(*[one(p) for p in ps])
            await client.close()
        _, w2, c2 = timed(lambda: asyncio.run(http()))
    print(f"   through HTTP + openai client (streaming): {conc * args.tokens / w2:8.1f} tokens/s  (wall {w2:.2f} s, "
          f"CPU {c2:.2f} s, client and server in this process): overhead {w2 / w1 - 1:+.0%}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="llama-chat", help="zoo name or HF folder")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--draft", default=None, help="draft model of speculative decoding (zoo name or folder; default: "
                    "llama-draft-chat for llama-chat, llama-draft otherwise)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip", nargs="*", default=[], choices=["throughput", "speculative", "waste", "server"])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers
    transformers.logging.set_verbosity_error()
    from llmlab.serve.engine import load_model
    model, tok, path = load_model(args.model)
    args.draft = args.draft or ("llama-draft-chat" if args.model == "llama-chat" else "llama-draft")
    print(f"model {args.model} ({path}): {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"{torch.get_num_threads()} thread(s)")
    if "throughput" not in args.skip:
        bench_throughput(model, tok, args)
    if "speculative" not in args.skip:
        bench_speculative(model, tok, args)
    if "waste" not in args.skip:
        bench_waste(args)
    if "server" not in args.skip:
        bench_server(args)


if __name__ == "__main__":
    main()
