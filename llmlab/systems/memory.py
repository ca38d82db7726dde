"""Week 3 reference: where the bytes of a training step go.

Four kinds of memory, in the accounting of the ZeRO paper (Rajbhandari et al. 2020, section 3.1):

- **parameters** and **gradients**: one number each per parameter, in the training dtype;
- **optimizer states**: Adam's two moments (and, in mixed precision, the fp32 master weights);
- **activations**: the tensors that autograd saves in the forward pass for the backward pass.
  They grow with batch x sequence, and are what gradient checkpointing trades for compute.

The formulas here are exact for *this* course's GPT (``llmlab.models.gpt``) on the CPU, and are checked
against two measurements (``tests/test_week03_systems.py``): :func:`measure_saved_activations`
counts the tensors autograd saves (saved-tensor hooks), :class:`PeakMemory` records the largest
amount of tensor memory alive at once (the CPU stand-in for ``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..models.gpt import GPTConfig, attention_implementation

# Bytes per parameter, ZeRO's convention: "optimizer" holds everything the optimizer keeps.
#   fp32:  4 (fp32 weight) + 4 (fp32 grad) + 8 (Adam m and v, fp32)                      = 16
#   mixed: 2 (bf16/fp16 weight) + 2 (bf16/fp16 grad) + 12 (fp32 master weight + m + v)   = 16
BYTES_PER_PARAM = {
    "fp32": dict(params=4, grads=4, optimizer=8),
    "mixed": dict(params=2, grads=2, optimizer=12),
}


def param_count(cfg: GPTConfig) -> int:
    """Parameters of ``llmlab.models.gpt.GPT(cfg)``; the LM head shares the token embedding (counted once)."""
    C, b = cfg.n_embd, int(cfg.bias)
    ln = C * (1 + b)  # LayerNorm: weight (+ bias)
    attn = 3 * C * C + 3 * C * b + C * C + C * b  # c_attn (C -> 3C) and c_proj (C -> C)
    mlp = 4 * C * C + 4 * C * b + 4 * C * C + C * b  # c_fc (C -> 4C) and c_proj (4C -> C)
    block = 2 * ln + attn + mlp  # = 12 C^2 + 13 C with biases
    return cfg.vocab_size * C + cfg.block_size * C + cfg.n_layer * block + ln


def training_state_bytes(n_params: int, mode: str = "fp32") -> dict[str, int]:
    """Bytes of parameters, gradients and Adam's optimizer states (``mode`` "fp32" or "mixed")."""
    if mode not in BYTES_PER_PARAM:
        raise ValueError(f"mode must be one of {sorted(BYTES_PER_PARAM)}, got {mode!r}")
    out = {k: v * n_params for k, v in BYTES_PER_PARAM[mode].items()}
    out["total"] = sum(out.values())
    return out


def activation_bytes_per_layer(batch: int, seq: int, hidden: int, heads: int, dtype_bytes: int = 4,
                               attention: str = "sdpa") -> int:
    """Bytes autograd saves in one ``llmlab.models.gpt.Block`` (dropout 0), on the CPU.

    B = batch, T = seq, C = hidden, H = heads, b = dtype_bytes. Element counts of the saved tensors:

    ====================  ==============================  =====================================
    ln_1                  input x: BTC, mean, rstd: 2 BT   (b bytes each; 4 on CUDA for 16-bit)
    attn.c_attn           input ln_1(x): BTC
    attention ("sdpa")    q, k, v: 3 BTC (views of one    logsumexp: BHT, always float32
                          c_attn output), output: BTC     (the same storage feeds c_proj)
    attention ("naive")   copies of q, k, v: 3 BTC,       scores, exp, weights: 3 BHTT;
                          c_proj input: BTC               row max, sum, clamped sum: 3 BHT;
                                                          isfinite(max): BHT bool; ~mask: TT bool
    ln_2                  input: BTC, mean, rstd: 2 BT
    mlp.c_fc              input ln_2(x): BTC
    GELU                  input: 4 BTC
    mlp.c_proj            input GELU(h): 4 BTC
    ====================  ==============================  =====================================

    In total 16 BTC b + 4 BT b, plus 4 BHT (sdpa) or 3 BHTT b + 3 BHT b + BHT + TT (naive).
    Korthikanti et al. (2022) count 34 BTC + 5 B H T^2 bytes for 16-bit training *with* dropout:
    without the two dropout masks (2 BTC) that is our 32 BTC, and a fused kernel removes the T^2 terms.
    """
    B, T, C, H, b = batch, seq, hidden, heads, dtype_bytes
    common = 16 * B * T * C * b + 4 * B * T * b
    if attention == "sdpa":
        return common + 4 * B * H * T
    if attention == "naive":
        return common + 3 * B * H * T * T * b + 3 * B * H * T * b + B * H * T + T * T
    raise ValueError(f"attention must be 'sdpa' or 'naive', got {attention!r}")


def activation_bytes_outside_blocks(batch: int, seq: int, hidden: int, vocab: int, dtype_bytes: int = 4) -> int:
    """Bytes saved outside the blocks by ``GPT.forward(idx, targets)``: embeddings, ln_f, lm_head, loss.

    Token ids BT and positions T (int64, for the embedding backward); ln_f input BTC + mean, rstd 2 BT;
    lm_head input BTC; log-softmax output BTV; targets BT (int64); the loss's total weight (one scalar).
    """
    B, T, C, V, b = batch, seq, hidden, vocab, dtype_bytes
    return 8 * B * T + 8 * T + (2 * B * T * C + 2 * B * T) * b + B * T * V * b + 8 * B * T + b


def activation_bytes(cfg: GPTConfig, batch: int, seq: int | None = None, dtype_bytes: int = 4,
                     attention: str = "sdpa", checkpointed: int = 0) -> int:
    """Saved bytes of a whole training forward; ``checkpointed`` blocks keep only their input (BTC b)."""
    T = cfg.block_size if seq is None else seq
    per_layer = activation_bytes_per_layer(batch, T, cfg.n_embd, cfg.n_head, dtype_bytes, attention)
    kept = (cfg.n_layer - checkpointed) * per_layer + checkpointed * batch * T * cfg.n_embd * dtype_bytes
    return kept + activation_bytes_outside_blocks(batch, T, cfg.n_embd, cfg.vocab_size, dtype_bytes)


# ---------------------------------------------------------------------------------------------
# measuring


@dataclass
class SavedTensors:
    """What :func:`measure_saved_activations` saw: total bytes of distinct storages, and each tensor."""

    bytes: int = 0
    tensors: list[tuple[tuple[int, ...], torch.dtype, int]] = field(default_factory=list)  # shape, dtype, storage bytes

    def table(self) -> str:
        rows = [f"{str(tuple(s)):>22}  {str(d).replace('torch.', ''):>9}  {n:>12,}" for s, d, n in self.tensors]
        return "\n".join([f"{'shape':>22}  {'dtype':>9}  {'bytes':>12}"] + rows + [f"{'distinct storages':>34}  {self.bytes:>12,}"])


def measure_saved_activations(fn, exclude=()) -> tuple[object, SavedTensors]:
    """Run ``fn()`` and add up the tensors autograd saves for the backward pass.

    Several saved tensors may be views of one storage (q, k, v are slices of one c_attn output):
    each storage is counted once. Storages of the tensors in ``exclude`` (pass the model's
    parameters: a Linear saves its weight, which is not an activation) are not counted.
    Returns ``(fn(), SavedTensors)``.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    saved: list[torch.Tensor] = []  # keeping them alive: no storage can be freed and its address reused

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    report, seen = SavedTensors(), {}
    for t in saved:
        st = t.untyped_storage()
        if st.data_ptr() in skip:
            continue
        report.tensors.append((tuple(t.shape), t.dtype, st.nbytes()))
        seen[st.data_ptr()] = st.nbytes()
    report.bytes = sum(seen.values())
    return out, report


def saved_tensor_bytes(fn, *args, **kwargs) -> tuple[object, int]:
    """Run ``fn(*args, **kwargs)``; return (its output, bytes of the distinct storages autograd saved).

    :func:`measure_saved_activations` without exclusions: inputs that the graph saves count too (they
    are kept alive by it), as on a GPU's memory counter.
    """
    out, report = measure_saved_activations(lambda: fn(*args, **kwargs))
    return out, report.bytes


def list_saved_tensors(output: torch.Tensor, exclude=()) -> list[tuple[str, str, tuple[int, ...], torch.dtype, int]]:
    """The tensors saved in ``output``'s autograd graph, in the order the forward pass made them.

    Rows ``(node, argument, shape, dtype, storage bytes)``, e.g.
    ``("AddmmBackward0", "mat1", (32, 32), torch.float32, 4096)``; a storage shared with an earlier
    row (a view of the same memory) is shown with 0 bytes, and ``exclude``'s storages are skipped.
    Python numbers an operator keeps (e.g. the divisor of ``x / 8.0``, a 0-dim float64) appear too,
    although they are not activations and the saved-tensor hooks never see them. Reading a saved
    tensor of a checkpointed region would trigger its recomputation: list plain graphs only.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    nodes, stack, seen_nodes = [], [output.grad_fn], set()
    while stack:  # every node of the graph
        node = stack.pop()
        if node is None or node in seen_nodes:
            continue
        seen_nodes.add(node)
        nodes.append(node)
        stack.extend(nxt for nxt, _ in node.next_functions)
    rows, seen = [], set()
    for node in sorted(nodes, key=lambda n: n._sequence_nr()):  # creation order = forward order
        for attr in sorted(a for a in dir(node) if a.startswith("_saved_")):
            values = getattr(node, attr)
            for t in values if isinstance(values, (tuple, list)) else (values,):
                if not isinstance(t, torch.Tensor) or t.untyped_storage().data_ptr() in skip:
                    continue
                ptr = t.untyped_storage().data_ptr()
                rows.append((node.name(), attr[len("_saved_"):], tuple(t.shape), t.dtype, 0 if ptr in seen else t.untyped_storage().nbytes()))
                seen.add(ptr)
    return rows


def reachable_tensor_bytes(obj, exclude=()) -> int:
    """Bytes of the distinct tensor storages reachable from ``obj`` (attributes, dicts, lists, an
    optimizer's ``state``), not counting the storages of ``exclude`` (pass the model's parameters)
    nor any tensor's ``.grad``. A measurement of what an optimizer object keeps alive, whatever its layout."""
    skip = {t.untyped_storage().data_ptr() for t in exclude if isinstance(t, torch.Tensor)}
    seen_obj, storages = set(), {}

    def visit(x, depth=0):
        if depth > 6 or id(x) in seen_obj:
            return
        seen_obj.add(id(x))
        if isinstance(x, torch.Tensor):
            st = x.untyped_storage()
            if st.data_ptr() not in skip and st.nbytes():
                storages[st.data_ptr()] = st.nbytes()
            return  # its .grad is not followed: gradients are not optimizer state
        if isinstance(x, dict):
            for k, v in x.items():
                visit(k, depth + 1)
                visit(v, depth + 1)
        elif isinstance(x, (list, tuple, set)):
            for v in x:
                visit(v, depth + 1)
        elif isinstance(x, torch.optim.Optimizer):
            visit(x.state, depth + 1)
            visit(x.param_groups, depth + 1)
        elif hasattr(x, "__dict__") and not isinstance(x, (type, torch.nn.Module)):
            visit(vars(x), depth + 1)

    visit(obj)
    return sum(storages.values())


class PeakMemory(TorchDispatchMode):
    """Bytes of tensor storage allocated inside the ``with`` block: ``current`` and ``peak``.

    Every operator's new output storage is added when it is created and subtracted when it is
    freed (a weak-reference callback); views and in-place results share an input's storage and
    add nothing. Memory that existed before (the parameters) is not counted. On a GPU, prefer
    ``torch.cuda.max_memory_allocated``; this is the same idea for the CPU, at Python speed.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no torch.compile here: saves importing torch._dynamo (seconds) on first use

    def __init__(self):
        super().__init__()
        self.current = self.peak = 0
        self._live: dict[int, weakref.ref] = {}

    def _free(self, key: int, nbytes: int) -> None:
        if self._live.pop(key, None) is not None:
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = {a.untyped_storage().data_ptr() for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
        if func is torch.ops.aten.lift_fresh.default:
            inputs = set()  # torch.tensor(data): made outside the dispatcher, announced by lift_fresh: new memory
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key, n = st.data_ptr(), st.nbytes()
            if n == 0 or key in inputs or key in self._live:
                continue  # empty, a view / in-place result, or already counted
            self._live[key] = weakref.ref(st, lambda _, k=key, n=n: self._free(k, n))
            self.current += n
            self.peak = max(self.peak, self.current)
        return out


def peak_tensor_memory(fn, *args, **kwargs) -> int:
    """Peak bytes of tensors allocated while ``fn(*args, **kwargs)`` runs (see :class:`PeakMemory`)."""
    with PeakMemory() as tracker:
        fn(*args, **kwargs)
    return tracker.peak


def naive_attention(model: torch.nn.Module):
    """Deprecated name (one release) of ``attention_implementation(model, "eager")``: inside the ``with``,
    every attention layer of ``model`` takes the explicit path that materialises the (T, T) scores
    (:func:`llmlab.attention.scaled_dot_product_attention`) instead of the fused kernel. Same outputs, more memory."""
    return attention_implementation(model, "eager")
