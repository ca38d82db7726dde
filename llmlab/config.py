"""Run-time settings shared by every notebook: size tier, device, seeds, threads.

Two sizes, chosen by the environment variable ``LLMLAB_FAST``:

- ``LLMLAB_FAST=1`` (CI and autograding): every notebook finishes in about a minute on 2 CPU cores.
- unset / ``0`` (a learner's laptop): the real run, under about 10 minutes on a CPU; a GPU scales up.

Notebooks pick their sizes with :func:`pick`::

    cfg = pick(fast=dict(max_iters=60), cpu=dict(max_iters=2000), gpu=dict(max_iters=5000))
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


FAST: bool = _truthy(os.environ.get("LLMLAB_FAST"))


def is_fast() -> bool:
    """True when ``LLMLAB_FAST`` is set (read at call time, so tests may toggle it)."""
    return _truthy(os.environ.get("LLMLAB_FAST"))


def device() -> torch.device:
    """The accelerator if there is one (CUDA, then Apple MPS), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def tier() -> str:
    """``"fast"``, ``"gpu"`` or ``"cpu"``: which size of every experiment to run."""
    if is_fast():
        return "fast"
    return "gpu" if device().type != "cpu" else "cpu"


def pick(*, fast, cpu, gpu=None):
    """Return the setting for the current tier (``gpu`` falls back to ``cpu``)."""
    t = tier()
    if t == "fast":
        return fast
    if t == "gpu" and gpu is not None:
        return gpu
    return cpu


def set_seed(seed: int = 1337) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that runs repeat."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op CPU threads (default: ``$OMP_NUM_THREADS`` if set, else every core this process may use)."""
    if n is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        n = int(os.environ["OMP_NUM_THREADS"])  # a parallel test run or a batch job already chose
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS
            n = os.cpu_count() or 1
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def describe() -> str:
    """One line for the top of each notebook: what will run, and where."""
    d = device()
    name = torch.cuda.get_device_name(0) if d.type == "cuda" else d.type
    return f"LLM Lab | tier={tier()} | device={name} | torch {torch.__version__} | threads={torch.get_num_threads()}"
