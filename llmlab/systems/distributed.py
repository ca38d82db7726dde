"""Run a function on N CPU processes joined by ``torch.distributed`` (gloo): the course's launcher.

Weeks 3's ZeRO and tensor-parallel exercises need several *ranks*. In a script you would use
``torchrun``; in a notebook the function is defined in a cell, so :func:`run_on_ranks` **forks** the
kernel (the children inherit the cell's function, nothing is pickled) and joins them into a
process group::

    def step(rank, world_size, x):
        t = torch.full((2,), float(rank))
        dist.all_reduce(t)                # sum over ranks
        print("my sum", t)                # captured, printed by the parent as "[rank 0] my sum ..."
        return t

    results = run_on_ranks(step, 2, x)    # [result of rank 0, result of rank 1]

What it guarantees, so one exercise cannot break the next:

- **Nothing leaks.** Rendezvous uses ``init_method="tcp://127.0.0.1:<free port>"``: no ``RANK``,
  ``WORLD_SIZE`` or ``MASTER_PORT`` is ever written to the notebook's environment; each call picks a
  fresh free port.
- **Clean up even on error.** Every child destroys its process group in ``finally``; if one rank
  raises, the others are terminated and the parent raises :class:`RankError` with each failing
  rank's traceback (no hung kernel waiting for a collective that will never come).
- **Quiet.** Each child's stdout and stderr (Python *and* C++ level, e.g. gloo warnings) go to a
  file; the parent prints them on *stdout*, prefixed by rank. (A test cell that writes to stderr
  gets 0 points from nbgrader.)
- **Deterministic.** Each child runs with ``threads`` intra-op threads (default 1: two ranks on two
  cores) and the seed the caller sets inside ``fn``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import socket
import sys
import tempfile
import time
import traceback
from datetime import timedelta

import torch
import torch.distributed as dist

DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class RankError(RuntimeError):
    """One or more ranks raised or did not finish in time.

    The message's first line names the first failing rank and its exception (``rank 1 raised
    ValueError: boom``), then every failing rank's traceback follows. ``exc_type`` is that first
    exception's class name (``None`` for a timeout), so a test can tell e.g. an unfilled answer cell
    (``NotImplementedError``) from a wrong one."""

    def __init__(self, headline: str, details: list[str], exc_type: str | None = None):
        super().__init__("\n".join([headline, *details]))
        self.headline, self.exc_type = headline, exc_type


def free_port() -> int:
    """A TCP port that is free now on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def scrubbed_env():
    """Temporarily remove the torch.distributed variables from ``os.environ``, restore them after.

    Use it around anything that starts child processes (``subprocess``, the ``deepspeed`` launcher)
    so that a stale ``RANK``/``MASTER_PORT`` from an earlier cell cannot reach them."""
    saved = {k: os.environ.pop(k) for k in DIST_ENV if k in os.environ}
    try:
        yield
    finally:
        for k in DIST_ENV:
            os.environ.pop(k, None)
        os.environ.update(saved)


def _child(fn, rank, world_size, port, threads, args, kwargs, out_path, result_path):
    # Redirect fds 1 and 2 (C++ warnings too) and sys.stdout/err into one file.
    log = open(out_path, "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    status, payload, failed_at = "ok", None, None
    try:
        torch.set_num_threads(threads)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=60))
        payload = fn(rank, world_size, *args, **kwargs)
    except BaseException:  # noqa: BLE001 - report everything, including KeyboardInterrupt
        status, payload, failed_at = "error", traceback.format_exc(), time.time()  # before the group closes
    finally:
        with contextlib.suppress(Exception):
            if dist.is_initialized():
                dist.destroy_process_group()
    try:
        blob = pickle.dumps((status, payload, failed_at))
    except Exception:  # noqa: BLE001 - an unpicklable return value is the caller's error
        blob = pickle.dumps(("error", "the return value could not be pickled:\n" + traceback.format_exc(), time.time()))
    with open(result_path + ".part", "wb") as f:
        f.write(blob)
    os.replace(result_path + ".part", result_path)  # the parent never reads a half-written file
    log.flush()
    os._exit(0)  # skip the parent's atexit handlers and buffered output (inherited by fork)


def run_on_ranks(fn, world_size: int = 2, *args, timeout: float = 120.0, threads: int = 1,
                 echo: bool = True, **kwargs) -> list:
    """Run ``fn(rank, world_size, *args, **kwargs)`` on ``world_size`` forked gloo processes.

    Returns the list of return values, indexed by rank. Raises :class:`RankError` if any rank
    raised or the ranks did not finish within ``timeout`` seconds. ``echo`` prints each rank's
    captured output (prefixed ``[rank r]``) on stdout."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    ctx = mp.get_context("fork")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="llmlab-ranks-") as tmp, scrubbed_env():
        outs = [os.path.join(tmp, f"rank{r}.log") for r in range(world_size)]
        res = [os.path.join(tmp, f"rank{r}.pkl") for r in range(world_size)]
        sys.stdout.flush()
        procs = [ctx.Process(target=_child, args=(fn, r, world_size, port, threads, args, kwargs, outs[r], res[r]),
                             daemon=True) for r in range(world_size)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        try:
            while any(p.is_alive() for p in procs):
                failed = [r for r in range(world_size) if os.path.exists(res[r]) and not procs[r].is_alive()
                          and _load(res[r])[0] == "error"]
                if failed or time.monotonic() > deadline:
                    break  # one rank failed: the others may wait forever in a collective
                time.sleep(0.02)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join(5)
        results, errors, first = [], [], None
        for r in range(world_size):
            text = open(outs[r]).read() if os.path.exists(outs[r]) else ""
            if echo and text.strip():
                for line in text.rstrip("\n").splitlines():
                    print(f"[rank {r}] {line}")
            if not os.path.exists(res[r]):
                errors.append(f"rank {r}: did not finish within {timeout:.0f} s (killed); it was probably waiting "
                              "in a collective that another rank never called, or an earlier rank failed")
                results.append(None)
                continue
            status, payload, failed_at = _load(res[r])
            if status == "error":
                errors.append(f"rank {r} raised:\n{payload}")
                results.append(None)
                # the headline: the rank that failed *first* (the others often fail because of it, e.g.
                # "Connection closed by peer"), named by the last line of its traceback
                if first is None or failed_at < first[0]:
                    last = [ln for ln in payload.splitlines() if ln.strip()][-1]
                    exc_type = last.split(":", 1)[0].rsplit(".", 1)[-1]
                    if exc_type == "NotImplementedError":
                        last += " (an answer cell that runs on the ranks is not filled in yet)"
                    first = (failed_at, f"rank {r} raised {last}", exc_type)
            else:
                results.append(payload)
        if errors:
            _, headline, exc_type = first or (None, errors[0].splitlines()[0], None)
            raise RankError(headline, errors, exc_type)
        return results


def _load(path):
    with open(path, "rb") as f:
        return pickle.loads(f.read())
