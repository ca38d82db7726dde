"""Week 3 reference: where the time of a training step goes, and how much of the hardware it uses.

- :func:`flops_per_token`: the FLOPs of one training step (forward + backward) per token of the
  course GPT, ``6 N + 12 L T C`` (Kaplan et al. 2020; PaLM, appendix B): every weight of a matmul
  does one multiply-add (2 FLOPs) per token forward and two backward (gradient of the input and of
  the weight), and attention's two (T x T) matmuls add ``4 T C`` per token per layer forward.
- :func:`mfu`: model FLOPs utilisation, achieved FLOP/s over the hardware's peak.
- :func:`peak_flops`: the dense bf16 tensor-core peak of common GPUs (datasheets); on a CPU,
  :func:`measure_matmul_flops` gives the best matmul rate actually reachable, a fair stand-in.
- :func:`op_table` / :func:`op_category`: ``torch.profiler`` results as a top-k table and as time
  per operator category.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

import torch

from ..models.gpt import GPTConfig

# Dense (no sparsity) bf16 tensor-core peak FLOP/s, from NVIDIA's datasheets. Keys are matched as
# substrings of ``torch.cuda.get_device_name()``, longest first.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM
    "A100": 312e12,
    "A800": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
    "V100": 125e12,  # fp16 (V100 has no bf16 tensor cores)
    "T4": 65e12,  # fp16 (likewise)
}


def matmul_params(cfg: GPTConfig) -> int:
    """Weights that take part in a matmul: 12 C^2 per block (c_attn, c_proj, c_fc, mlp.c_proj) and
    the (tied) LM head V C. Biases, LayerNorms and the position table are left out (no matmul)."""
    return 12 * cfg.n_layer * cfg.n_embd**2 + cfg.vocab_size * cfg.n_embd


def flops_per_token(cfg: GPTConfig, seq_len: int | None = None, backward: bool = True) -> int:
    """FLOPs per token of a forward (+ backward) pass of ``llmlab.models.gpt.GPT(cfg)`` at length ``seq_len``.

    Forward: ``2 N + 4 L T C`` with N = :func:`matmul_params`; the attention term counts the full
    (T x T) score matrix, as the fused kernels' FLOP counters do (a causal kernel skips about half of
    it). Backward costs twice the forward, so a training step is ``6 N + 12 L T C`` per token."""
    T = cfg.block_size if seq_len is None else seq_len
    fwd = 2 * matmul_params(cfg) + 4 * cfg.n_layer * T * cfg.n_embd
    return 3 * fwd if backward else fwd


def peak_flops(device: torch.device | str | None = None) -> float | None:
    """Datasheet dense bf16 peak FLOP/s of a CUDA device, or None (CPU, or a GPU not in the table)."""
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_FLOPS[key]
    return None


def measure_matmul_flops(n: int = 1024, dtype: torch.dtype = torch.float32, device="cpu", repeats: int = 5) -> float:
    """Best FLOP/s of an (n x n) @ (n x n) matmul over ``repeats`` runs (after one warm-up)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def mfu(tokens_per_s: float, flops_per_tok: float, peak: float) -> float:
    """Model FLOPs utilisation: (tokens/s x FLOPs/token) / peak FLOP/s, a fraction in [0, 1]."""
    return tokens_per_s * flops_per_tok / peak


# ---------------------------------------------------------------------------------------------
# torch.profiler results

CATEGORIES = ("matmul", "attention", "elementwise", "normalization", "loss/softmax", "embedding", "optimizer",
              "memory/copy", "communication", "framework", "other")


_CATEGORY_RULES = (  # (category, substrings of the bare operator name), first match wins
    ("communication", ("all_reduce", "allreduce", "all_gather", "allgather", "reduce_scatter", "broadcast", "gloo",
                       "nccl", "c10d")),
    ("attention", ("attention", "sdpa", "flash")),
    ("matmul", ("addmm", "bmm", "matmul", "linear", "gemm")),
    ("normalization", ("norm",)),
    ("loss/softmax", ("softmax", "cross_entropy", "nll_loss")),
    ("embedding", ("embedding",)),
    ("optimizer", ("adam", "optimizer", "_foreach", "lerp", "addcdiv", "addcmul")),
    ("memory/copy", ("copy", "clone", "contiguous", "cat", "stack", "fill", "zero", "empty", "transpose", "view",
                     "reshape", "permute", "expand", "split", "slice", "select", "unfold", "index", "gather",
                     "narrow", "as_strided", "detach", "squeeze", "to", "resize", "set_", "alias", "lift")),
    ("elementwise", ("gelu", "tanh", "add", "mul", "div", "sub", "sqrt", "pow", "exp", "relu", "silu", "neg", "sum",
                     "mean", "where", "masked", "dropout", "threshold", "clamp", "abs", "max", "min", "norm")),
)


def op_category(name: str) -> str:
    """A coarse category for an operator name from ``torch.profiler`` (``aten::addmm`` -> matmul).

    ``aten::mm`` and ``aten::t`` are matched exactly (as substrings they would match half the list);
    names without ``::`` (``record_function`` labels such as "forward", autograd nodes such as
    ``AddmmBackward0``: Python and autograd bookkeeping) are "framework"."""
    if "::" not in name:
        return "optimizer" if name.startswith("Optimizer.") else "framework"
    op = name.split("::", 1)[1].lower()
    if op in ("mm", "dot", "mv"):
        return "matmul"
    if op in ("t", "_to_copy", "to"):
        return "memory/copy"
    for category, keys in _CATEGORY_RULES:
        if any(k in op for k in keys):
            return category
    return "other"


def op_table(prof, k: int = 10, sort_by: str = "self_cpu_time_total") -> list[dict]:
    """The top-``k`` operators of a finished ``torch.profiler.profile`` by ``sort_by``.

    Rows: ``{"name", "calls", "self_us", "total_us", "self_pct"}``; times in microseconds."""
    avgs = list(prof.key_averages())
    attr = {"self_cpu_time_total": "self_cpu_time_total", "cpu_time_total": "cpu_time_total",
            "self_device_time_total": "self_device_time_total", "device_time_total": "device_time_total"}[sort_by]
    total_self = sum(getattr(e, "self_device_time_total" if "device" in sort_by else "self_cpu_time_total") for e in avgs)
    avgs.sort(key=lambda e: getattr(e, attr), reverse=True)
    rows = []
    for e in avgs[:k]:
        self_us = e.self_device_time_total if "device" in sort_by else e.self_cpu_time_total
        total_us = e.device_time_total if "device" in sort_by else e.cpu_time_total
        rows.append(dict(name=e.key, calls=e.count, self_us=float(self_us), total_us=float(total_us),
                         self_pct=100.0 * self_us / total_self if total_self else 0.0))
    return rows


def time_by_category(prof, device: bool = False) -> dict[str, float]:
    """Self time (microseconds) summed per :func:`op_category` over every event of a profile.

    Self times add up to the profiled wall time without double counting (a parent's self time
    excludes its children), so the categories partition the step."""
    out = {c: 0.0 for c in CATEGORIES}
    for e in prof.key_averages():
        out[op_category(e.key)] += float(e.self_device_time_total if device else e.self_cpu_time_total)
    return out


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 (C++ logging: Kineto's "profiler_start" lines) and Python warnings to
    /dev/null inside the block. nbgrader gives 0 to a test cell that writes anything to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def profile_steps(step, steps: int = 2, warmup: int = 1, trace_path=None, record_shapes: bool = False):
    """Run ``step()`` ``warmup`` times, then ``steps`` times under ``torch.profiler.profile`` (CPU, and
    CUDA when available), quietly; optionally write a Chrome trace. Returns the finished profiler."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(warmup):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with quiet_stderr():
        with profile(activities=activities, record_shapes=record_shapes) as prof:
            for _ in range(steps):
                step()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        if trace_path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(trace_path)), exist_ok=True)
            prof.export_chrome_trace(str(trace_path))
    return prof
