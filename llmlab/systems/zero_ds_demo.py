"""Week 3: every ZeRO stage of DeepSpeed in one launch, with each rank's memory *measured*.

``llmlab.systems.ds_train`` trains with one configuration per launch and reports the process's peak memory
(which, for a small model, is mostly PyTorch itself). This script instead builds one DeepSpeed engine
after another in the same two processes (stage 0, 1, 2, 3, then 2 with the optimizer offloaded to the
CPU), trains each for a few steps on the same batches, and weighs what each rank keeps: the
parameters it holds, the fp32 master partition and Adam's m and v. Those numbers are what the ZeRO
formulas predict (``llmlab.systems.zero.zero_state_bytes``)::

    deepspeed --num_gpus 2 --module llmlab.systems.zero_ds_demo --steps 5 --out /tmp/zero_demo

From Python, :func:`run` launches it in a subprocess (no ``RANK``/``MASTER_PORT`` leak, a free port)
and returns the metrics. The model is the course GPT (``llmlab.models.gpt``) in fp32, PyTorch's AdamW
(``"torch_adam": true``, no compiled Adam).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from llmlab.models.gpt import GPT, GPTConfig

CONFIGS = {  # name -> zero_optimization section
    "stage 0": {"stage": 0},
    "stage 1": {"stage": 1},
    "stage 2": {"stage": 2},
    "stage 3": {"stage": 3},
    "stage 2 + offload": {"stage": 2, "offload_optimizer": {"device": "cpu"}},
}


def ds_config(zero: dict, micro_batch: int, world_size: int, lr: float, log_level: str = "warning") -> dict:
    cfg = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "train_batch_size": micro_batch * world_size,
        "gradient_accumulation_steps": 1,
        "optimizer": {"type": "AdamW", "params": {"lr": lr, "betas": [0.9, 0.95], "weight_decay": 0.1, "torch_adam": True}},
        "zero_optimization": dict(zero),
        "steps_per_print": 10**9,
        "log_level": log_level,  # "info": DeepSpeed says what it builds (the notebook reads rank 0's lines)
    }
    if "offload_optimizer" in zero:
        cfg["zero_force_ds_cpu_optimizer"] = False  # else DeepSpeed insists on its compiled CPU Adam
    return cfg


def _bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def measure(engine) -> dict:
    """Bytes this rank keeps: parameters (ZeRO-3: its partition ``ds_tensor``), the optimizer's fp32
    weights when they are a separate copy (the master partition), and Adam's m and v."""
    params = list(engine.module.parameters())
    held = [p.ds_tensor if hasattr(p, "ds_tensor") else p.data for p in params]
    opt = engine.optimizer
    inner = getattr(opt, "optimizer", opt)  # ZeRO wraps a torch.optim.AdamW over its flat partitions
    own = {t.untyped_storage().data_ptr() for t in held}
    opt_params = [p for g in inner.param_groups for p in g["params"]]
    if hasattr(opt, "fp32_partitioned_groups_flat"):  # ZeRO-3 swaps its flat fp32 partition in only during step()
        opt_params = list(opt.fp32_partitioned_groups_flat)
    master = [p for p in opt_params if p.untyped_storage().data_ptr() not in own]
    moments = [v for s in inner.state.values() for k, v in s.items() if torch.is_tensor(v) and k in ("exp_avg", "exp_avg_sq")]
    return dict(params=_bytes(held), master=_bytes(master), moments=_bytes(moments),
                optimizer_numel=sum(p.numel() for p in opt_params), optimizer_class=type(opt).__name__)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="llmlab.systems.zero_ds_demo")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    p.add_argument("--out", default="runs/zero_ds_demo")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import warnings

    import deepspeed
    import torch.distributed as dist

    # DeepSpeed calls torch.distributed's old collective names: one FutureWarning per call site, noise here
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.distributed")

    from llmlab.tokenization.char import CharTokenizer
    from llmlab.train.batches import get_batch
    from llmlab.data import load_text

    deepspeed.init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    text = load_text("tinyshakespeare")
    tok = CharTokenizer.from_text(text)
    data = tok.encode_tensor(text)
    mcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                     n_head=max(1, args.n_embd // 32), n_embd=args.n_embd, dropout=0.0)
    results = {}
    for name in args.configs.split(","):
        torch.manual_seed(0)  # the same initial weights on every rank and for every configuration
        model = GPT(mcfg)
        n_params = sum(q.numel() for q in model.parameters())
        if rank == 0:
            print(f"[zero_ds_demo] ===== {name}: deepspeed.initialize =====", flush=True)
        t0 = time.perf_counter()
        engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                               config=ds_config(CONFIGS[name], args.batch_size, world, args.lr,
                                                                 "info" if rank == 0 else "warning"))
        t_init = time.perf_counter() - t0
        gen = torch.Generator().manual_seed(1000 + rank)  # each rank its own batches, the same for every config
        losses, t0 = [], time.perf_counter()
        for _ in range(args.steps):
            x, y = get_batch(data, mcfg.block_size, args.batch_size, generator=gen)
            _, loss = engine(x.to(engine.device), y.to(engine.device))
            engine.backward(loss)
            engine.step()
            lv = loss.detach().clone()
            dist.all_reduce(lv)
            losses.append(lv.item() / world)
        t_train = time.perf_counter() - t0
        mem = measure(engine)
        mems = [None] * world
        dist.all_gather_object(mems, mem)
        results[name] = dict(zero=CONFIGS[name], n_params=n_params, losses=losses, init_s=t_init, train_s=t_train,
                             tokens_per_s=args.steps * world * args.batch_size * mcfg.block_size / t_train, per_rank=mems)
        if rank == 0:
            print(f"[zero_ds_demo] {name}: losses {' '.join(f'{v:.4f}' for v in losses)} | "
                  f"rank 0 keeps params {mem['params']:,} B, master {mem['master']:,} B, m+v {mem['moments']:,} B", flush=True)
        del engine, model
    if rank == 0:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(dict(world_size=world, config=vars(args), results=results), indent=1))
    dist.barrier()
    return 0


def run(args: list[str] = (), num_procs: int = 2, timeout: float = 600, echo=print) -> tuple[dict, list[str]]:
    """Launch ``deepspeed --num_gpus num_procs --module llmlab.systems.zero_ds_demo *args`` in a subprocess.

    Returns ``(metrics, log_lines)``. Each output line is passed to ``echo`` as it arrives (``None``:
    silent). :func:`llmlab.systems.ds_train.launch` does the launching: no ``RANK``/``WORLD_SIZE``/``MASTER_PORT``
    leak, a free ``--master_port``, the venv's ``ninja`` first on ``PATH``."""
    from llmlab.systems.ds_train import launch

    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="llmlab-zero-ds-") as tmp:
        metrics = launch([*map(str, args), "--out", tmp], num_procs=num_procs, timeout=timeout, echo=echo or False,
                         module="llmlab.systems.zero_ds_demo", log=lines)
    return metrics, lines


if __name__ == "__main__":
    sys.exit(main())
