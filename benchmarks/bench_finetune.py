"""Full fine-tuning vs LoRA vs QLoRA on the course's Llama base model: trainable parameters, peak memory, tokens/s.

    python benchmarks/bench_finetune.py [--tier cpu|fast|gpu] [--batch 8] [--seq 256] [--steps 5] [--threads N]

One run, the same model (``llmlab.zoo.pretrained("llama-base")``, the ``cpu`` tier by default: trained on the spot
if it is not cached, about 10-20 minutes on 2 cores, then cached), the same batches, the same AdamW:

- **full**: every parameter trained, float32;
- **LoRA**: PEFT LoRA r=8, alpha 16, on all 7 linear layers of every block, float32 base frozen;
- **QLoRA**: the base loaded in 4 bits (``BitsAndBytesConfig`` NF4 + double quantization, float32 compute on CPU),
  ``prepare_model_for_kbit_training`` (which turns gradient checkpointing on, as the recipe does), the same LoRA.

For each it prints the trainable parameters, the peak training memory (the weights with bitsandbytes' quantization
state + the optimizer state, measured, plus the peak of everything a training step allocates: activations, gradients,
temporaries, from ``llmlab.systems.memory.PeakMemory``; ``torch.cuda.max_memory_allocated`` on a GPU), and the step
time (best of ``--steps``, wall and CPU) as tokens/s. Then the NF4 bytes vs bf16 with double quantization: of this
model's linear layers, of one 4096 x 4096 matrix, and of Llama-3-8B (from ``llmlab.finetune.budget``). The issue's
expectations are printed beside the measurements. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import time
import warnings

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed (imported by transformers) would announce its fallback
    torch._dynamo.config.disable = True  # bitsandbytes torch.compiles a CPU helper for odd shapes: not measured here
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
warnings.filterwarnings("ignore", message=".*use_reentrant.*")

MiB = 2**20
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def model_bytes(model) -> int:
    """Parameters and buffers, each storage once, with bitsandbytes' 4-bit quantization state."""
    import bitsandbytes as bnb

    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.untyped_storage().data_ptr() in seen:
            continue
        seen.add(t.untyped_storage().data_ptr())
        total += t.numel() * t.element_size()
        if isinstance(t, bnb.nn.Params4bit):
            s = t.quant_state
            parts = [s.absmax, s.code] + ([s.offset, s.state2.absmax, s.state2.code] if s.nested else [])
            total += sum(p.numel() * p.element_size() for p in parts)
    return total


def optimizer_bytes(opt) -> int:
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
               if isinstance(v, torch.Tensor))


def step_fn(model, opt, batches):
    it = iter(batches)

    def step():
        x = next(it)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()
    return step


def measure(name, model, batches, steps, device):
    from llmlab.systems.memory import PeakMemory

    params = [p for p in model.parameters() if p.requires_grad]
    trainable, total = sum(p.numel() for p in params), sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    model.train()
    step = step_fn(model, opt, batches)
    step()  # warm-up: creates the AdamW states
    static = model_bytes(model) + optimizer_bytes(opt)
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        transient = torch.cuda.max_memory_allocated() - base
    else:
        with PeakMemory() as mem:
            step()
        transient = mem.peak
    walls, cpus = [], []
    for _ in range(steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    tokens = batches[0].numel()
    return dict(name=name, trainable=trainable, total=total, static=static, transient=transient,
                peak=static + transient, wall=min(walls), cpu=min(cpus), tok_s=tokens / min(walls),
                tok_cpu_s=tokens / min(cpus))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tier", default="cpu", choices=["fast", "cpu", "gpu"], help="zoo tier of llama-base")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (best of) after 2 untimed ones")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)

    import peft
    import transformers
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from llmlab import zoo
    from llmlab.data import load_text
    from llmlab.finetune.bnb_cpu import fix_cpu_4bit
    from llmlab.finetune.budget import GiB, LLAMA3_8B, weight_bytes_4bit
    from llmlab.finetune.nf4 import quantize_nf4

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    path = zoo.pretrained("llama-base", a.tier)
    print(f"llama-base ({a.tier} tier) at {path} ({time.time() - t0:.0f} s to load or build); device {device}, "
          f"{torch.get_num_threads()} threads; batch {a.batch} x {a.seq} tokens, AdamW")
    tok = AutoTokenizer.from_pretrained(path)
    ids = torch.tensor(tok(load_text("tinyshakespeare")[:400_000])["input_ids"])
    g = torch.Generator().manual_seed(0)
    n_batches = a.steps + 3
    starts = torch.randint(len(ids) - a.seq, (n_batches, a.batch), generator=g)
    batches = [torch.stack([ids[s:s + a.seq] for s in row]).to(device) for row in starts]

    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    lora_cfg = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    results = [measure("full fine-tuning", copy.deepcopy(base), batches, a.steps, device),
               measure("LoRA r=8, all linear", get_peft_model(copy.deepcopy(base), LoraConfig(**lora_cfg)), batches,
                       a.steps, device)]
    bnb_cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    q = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb_cfg, device_map={"": 0} if device == "cuda"
                                             else "cpu", dtype=torch.float32)
    fix_cpu_4bit(q)  # bitsandbytes 0.50's CPU kernels (llmlab.finetune.bnb_cpu); nothing on a GPU
    q = get_peft_model(prepare_model_for_kbit_training(q, use_gradient_checkpointing=True), LoraConfig(**lora_cfg))
    results.append(measure("QLoRA (NF4 + DQ, ckpt)", q, batches, a.steps, device))

    full = results[0]
    print(f"\n{'':24s} {'trainable':>12s} {'%':>6s} {'weights+opt':>12s} {'step peak':>10s} {'peak':>9s} "
          f"{'vs full':>8s} {'step wall':>10s} {'step CPU':>9s} {'tokens/s':>9s}")
    for r in results:
        print(f"{r['name']:24s} {r['trainable']:12,} {100 * r['trainable'] / r['total']:5.2f}% {r['static'] / MiB:9.1f} MiB "
              f"{r['transient'] / MiB:6.1f} MiB {r['peak'] / MiB:5.1f} MiB {r['peak'] / full['peak']:7.2f}x "
              f"{1e3 * r['wall']:7.0f} ms {1e3 * r['cpu']:6.0f} ms {r['tok_s']:9,.0f}")
    lora = results[1]
    print("\nexpectations (issue 12)                          measured")
    print(f"  LoRA peak memory <= 0.5 x full                  {lora['peak'] / full['peak']:.2f} x")
    print(f"  LoRA trainable parameters < 2 %                 {100 * lora['trainable'] / lora['total']:.2f} % "
          f"(Llama-3-8B, same recipe: {100 * 20_971_520 / 8_030_261_248:.2f} %)")
    print(f"  LoRA step time no worse than full               {lora['wall'] / full['wall']:.2f} x full's (wall), "
          f"{lora['cpu'] / full['cpu']:.2f} x (CPU)")
    print("  (at this size activations and logits dominate the peak, and LoRA only removes the weights' gradients and\n"
          "   AdamW states; try ARGS=\"--batch 1 --seq 32\". At 8B scale, from llmlab.finetune.budget, T=2048, batch 1:")
    from llmlab.finetune.budget import full_finetune_bytes, qlora_budget
    q8 = qlora_budget(LLAMA3_8B)
    full8 = full_finetune_bytes(LLAMA3_8B) + q8["logits"] + q8["overhead"]  # + activations, not counted
    lora8 = q8["total"] - q8["weights"] + 2 * sum(LLAMA3_8B.n_params().values())
    print(f"   Llama-3-8B full FT >= {full8 / GiB:.0f} GiB before activations, LoRA on bf16 {lora8 / GiB:.1f} GiB "
          f"({lora8 / full8:.2f} x), QLoRA {q8['total'] / GiB:.1f} GiB)")

    bf16 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    q4 = AutoModelForCausalLM.from_pretrained(path, quantization_config=bnb_cfg, device_map="cpu", dtype=torch.bfloat16)
    lin16 = sum(m.weight.numel() * 2 for n, m in bf16.named_modules() if n.endswith(tuple(TARGETS)))
    lin4 = sum(model_bytes(m) for n, m in q4.named_modules() if n.endswith(tuple(TARGETS)))
    big = quantize_nf4(torch.randn(4096, 4096)).nbytes + 4 * (16 + 256)
    shape8 = LLAMA3_8B
    w8 = weight_bytes_4bit(shape8, dtype_bytes=2)
    n8 = sum(shape8.n_params().values())
    print(f"  NF4 bytes ~0.28 x bf16 (double quant)           this model's linear layers {lin4 / lin16:.3f} x "
          f"(whole model {model_bytes(q4) / model_bytes(bf16):.3f} x: the embedding stays bf16)")
    print(f"                                                  one 4096 x 4096 matrix {big / (2 * 4096 ** 2):.4f} x; "
          f"Llama-3-8B linear layers {w8['nf4'] / (2 * shape8.n_params()['linear']):.4f} x, whole model "
          f"{w8['total'] / (2 * n8):.3f} x ({w8['total'] / GiB:.2f} GiB vs {2 * n8 / GiB:.2f} GiB)")
    print(f"  (wide matrices approach 4.127 / 16 = {4.127 / 16:.4f}: 4 bits + 8/64 + 32/(64*256) for the scales; small\n"
          f"   ones also pay the two code tables bitsandbytes keeps per matrix, 1,092 bytes; without double\n"
          f"   quantization the asymptote is 4.5 / 16 = {4.5 / 16:.4f})")


if __name__ == "__main__":
    main()
