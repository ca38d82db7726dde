"""The GPU tier of Week 6: the same OpenAI client against vLLM and TensorRT-LLM, on a CUDA machine.

::

    python -m llmlab.serve.gpu_tier vllm   --model meta-llama/Meta-Llama-3-8B-Instruct [--draft ...] [--run]
    python -m llmlab.serve.gpu_tier trtllm --model /path/to/Meta-Llama-3-8B-Instruct [--run]

Each prints the commands of its recipe (vLLM: ``vllm serve`` with prefix caching, fp8 weights and a draft
model for speculative decoding; TensorRT-LLM: fp8 quantization of the checkpoint, ``trtllm-build`` of the
engine, ``trtllm-serve`` on the same ``/v1`` API; CUDA graphs are on by default in both servers' decode loops).
It first checks the hardware and the tools, and says plainly what it skips and why: neither vLLM nor
TensorRT-LLM runs without an NVIDIA GPU, and TensorRT-LLM's fp8 needs compute capability 8.9 or more (Ada,
Hopper). With ``--run`` and everything present it runs them (the last one, the server, in the foreground);
otherwise it exits 0 after the report, so a CPU machine (CI, a laptop) can call it safely. The weights are
the user's own (a local folder, or a Hugging Face id they have access to): the course downloads none.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys


def hardware() -> dict:
    """What the GPU tier depends on: a CUDA device, its compute capability, and the tools on PATH."""
    import torch

    info = {"cuda": torch.cuda.is_available(), "device": None, "capability": None,
            "tools": {t: shutil.which(t) for t in ("vllm", "trtllm-build", "trtllm-serve")}}
    if info["cuda"]:
        info["device"] = torch.cuda.get_device_name(0)
        info["capability"] = torch.cuda.get_device_capability(0)
    return info


def vllm_commands(model: str, draft: str | None, k: int, port: int) -> list[list[str]]:
    cmd = ["vllm", "serve", model, "--port", str(port), "--enable-prefix-caching", "--quantization", "fp8"]
    if draft:
        cmd += ["--speculative-config", f'{{"model": "{draft}", "num_speculative_tokens": {k}}}']
    return [cmd]


def trtllm_commands(model: str, port: int, work: str = "trtllm") -> list[list[str]]:
    ckpt, engine = f"{work}/ckpt-fp8", f"{work}/engine-fp8"
    return [
        # TensorRT-LLM's examples/quantization/quantize.py (ModelOpt): fp8 weights/activations and an fp8 KV cache
        ["python", "examples/quantization/quantize.py", "--model_dir", model, "--dtype", "bfloat16", "--qformat", "fp8",
         "--kv_cache_dtype", "fp8", "--output_dir", ckpt],
        ["trtllm-build", "--checkpoint_dir", ckpt, "--output_dir", engine, "--gemm_plugin", "auto",
         "--max_batch_size", "64"],
        ["trtllm-serve", engine, "--tokenizer", model, "--port", str(port)],
    ]


def report(backend: str, info: dict) -> list[str]:
    """The reasons the recipe cannot run here (empty: it can)."""
    missing = []
    if not info["cuda"]:
        missing.append("no CUDA GPU (vLLM and TensorRT-LLM need an NVIDIA GPU; the course engine covers CPU)")
    tools = ["vllm"] if backend == "vllm" else ["trtllm-build", "trtllm-serve"]
    missing += [f"{t} is not installed (pip install -r requirements-gpu.txt on a CUDA machine)"
                for t in tools if not info["tools"][t]]
    if backend == "trtllm" and info["cuda"] and tuple(info["capability"]) < (8, 9):
        missing.append(f"fp8 needs compute capability >= 8.9 (this {info['device']} has "
                       f"{'.'.join(map(str, info['capability']))}): build with --qformat int8_wo or full precision")
    return missing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m llmlab.serve.gpu_tier", description=__doc__.splitlines()[0])
    ap.add_argument("backend", choices=["vllm", "trtllm"])
    ap.add_argument("--model", default="meta-llama/Meta-Llama-3-8B-Instruct", help="your weights: folder or HF id")
    ap.add_argument("--draft", default="meta-llama/Llama-3.2-1B-Instruct", help="vLLM's draft model ('' for none)")
    ap.add_argument("--num-speculative-tokens", type=int, default=4)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--run", action="store_true", help="run the commands if the hardware and tools are there")
    a = ap.parse_args(argv)
    info = hardware()
    cmds = (vllm_commands(a.model, a.draft or None, a.num_speculative_tokens, a.port) if a.backend == "vllm"
            else trtllm_commands(a.model, a.port))
    print(f"GPU: {info['device'] or 'none'}" + (f" (compute capability {info['capability'][0]}.{info['capability'][1]})"
                                                  if info["cuda"] else ""))
    print(f"{a.backend} recipe:\n" + "\n".join("  " + shlex.join(c) for c in cmds))
    print(f"then: openai.OpenAI(base_url='http://127.0.0.1:{a.port}/v1', api_key='none') as with llmlab.serve")
    missing = report(a.backend, info)
    if missing:
        print("skipped: " + "; ".join(missing))
        return 0
    if not a.run:
        print("everything is here: add --run to run it")
        return 0
    for c in cmds:
        print("$ " + shlex.join(c), flush=True)
        subprocess.run(c, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
