"""The GPU memory of QLoRA fine-tuning, term by term, from a model's shapes (Week 4, notebook 7).

For a Llama/Mistral-style decoder (Hugging Face config names) fine-tuned with QLoRA::

    weights      every linear layer of the blocks in NF4: 4 bits + the quantization state
                 (double quantization: 8/64 + 32/(64*256) bits per weight, + 16 + 256 code floats per matrix);
                 embeddings, lm_head and the RMSNorm gains stay in the compute dtype (bitsandbytes quantizes
                 nn.Linear layers only, and transformers keeps the output layer unquantized)
    lora         r * (in + out) per targeted layer, float32 (PEFT's default), and as much again for the
                 gradients and 2x for AdamW's two moments: 16 bytes per LoRA parameter
    activations  with gradient checkpointing, each block keeps only its input (batch * seq * hidden in the
                 compute dtype), plus one block's full activations while it is recomputed in the backward pass
    logits       batch * seq * vocab: bf16 from lm_head, their float32 upcast for the loss, and its gradient
    overhead     the CUDA context, cuBLAS workspaces and allocator fragmentation: a fixed allowance

There is no KV cache in training (``use_cache=False``); :func:`kv_cache_bytes` gives it for generation.
The per-block activation count is this course's own tally for a Llama block with SDPA/flash attention
(no seq x seq attention matrix is stored), in elements per token:

    attention  input x, normed x, q, k, v, rotated q and k, attention output        5h + 3 kv
    MLP        input, normed input, gate, up, silu(gate), silu(gate) * up            2h + 4 i

(h: hidden size, kv: num_key_value_heads * head_dim, i: intermediate size). LoRA adds its ``x A^T``
(r per token per adapter: negligible). Without checkpointing every block keeps all of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .lora import LLAMA_TARGETS, lora_param_count, llama_linear_shapes

__all__ = ["GiB", "LLAMA3_8B", "MISTRAL_7B", "ModelShape", "activation_bytes", "block_activation_elements",
           "format_budget", "full_finetune_bytes", "kv_cache_bytes", "logits_bytes", "lora_bytes", "nf4_matrix_bytes", "qlora_budget", "weight_bytes_4bit"]

GiB = 2 ** 30


@dataclass(frozen=True)
class ModelShape:
    """The shapes that decide the memory of a Llama-style model (Hugging Face ``config.json`` names)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool = False
    head_dim: int | None = None
    name: str = "model"

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * (self.head_dim or self.hidden_size // self.num_attention_heads)

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """``{name: (in, out)}`` of the linear layers inside the blocks (the ones QLoRA quantizes)."""
        return llama_linear_shapes(**{**asdict(self), "vocab_size": None})

    def n_params(self) -> dict[str, int]:
        """Parameters by kind: the blocks' linear layers, embeddings, lm_head (0 if tied), RMSNorm gains."""
        linear = sum(i * o for i, o in self.linear_shapes().values())
        emb = self.vocab_size * self.hidden_size
        return dict(linear=linear, embed_tokens=emb, lm_head=0 if self.tie_word_embeddings else emb,
                    norms=(2 * self.num_hidden_layers + 1) * self.hidden_size)

    @classmethod
    def from_config(cls, config, name: str | None = None) -> "ModelShape":
        """From a ``transformers`` config (or its dict)."""
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        return cls(get("hidden_size"), get("intermediate_size"), get("num_hidden_layers"), get("num_attention_heads"),
                   get("num_key_value_heads") or get("num_attention_heads"), get("vocab_size"),
                   bool(get("tie_word_embeddings", False)), get("head_dim", None),
                   name or get("_name_or_path", None) or get("model_type", "model"))


# meta-llama/Meta-Llama-3-8B and mistralai/Mistral-7B-v0.1 config.json (v0.3: vocab_size 32768)
LLAMA3_8B = ModelShape(4096, 14336, 32, 32, 8, 128256, False, 128, "Llama-3-8B")
MISTRAL_7B = ModelShape(4096, 14336, 32, 32, 8, 32000, False, 128, "Mistral-7B")

def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def nf4_matrix_bytes(numel: int, blocksize: int = 64, double_quant: bool = True, blocksize2: int = 256) -> int:
    """What bitsandbytes stores for one NF4 matrix: the packed codes, the scales and the code tables.

    ~``numel * nf4_bits_per_param() / 8``; exactly: ceil(n/2) code bytes, one scale per block (float32, or a
    uint8 code + one float32 per ``blocksize2`` scales + the float32 offset), the 16-entry NF4 table and,
    with double quantization, the 256-entry 8-bit table (float32).
    """
    blocks = _ceil(numel, blocksize)
    if not double_quant:
        return _ceil(numel, 2) + 4 * blocks + 4 * 16
    return _ceil(numel, 2) + blocks + 4 * _ceil(blocks, blocksize2) + 4 + 4 * (16 + 256)


def weight_bytes_4bit(shape: ModelShape, blocksize: int = 64, double_quant: bool = True,
                      dtype_bytes: int = 2) -> dict[str, float]:
    """Bytes of the weights under QLoRA: NF4 linear layers (with their state) + the rest in ``dtype_bytes``.

    ``dtype_bytes``: 2 as loaded in bf16; PEFT's ``prepare_model_for_kbit_training`` upcasts the unquantized
    parameters (embeddings, lm_head, norms) to float32, i.e. 4.
    """
    p = shape.n_params()
    nf4 = sum(nf4_matrix_bytes(i * o, blocksize, double_quant) for i, o in shape.linear_shapes().values())
    rest = (p["embed_tokens"] + p["lm_head"] + p["norms"]) * dtype_bytes
    return dict(nf4=nf4, unquantized=rest, total=nf4 + rest)


def lora_bytes(shape: ModelShape, r: int = 16, target_modules=LLAMA_TARGETS, param_bytes: int = 4,
               optimizer_states: int = 2) -> dict[str, float]:
    """LoRA parameters, their gradients and AdamW's moments (``optimizer_states`` of them, float32)."""
    n = lora_param_count(shape.linear_shapes(), r, list(target_modules))
    return dict(n_params=n, params=n * param_bytes, grads=n * param_bytes, optimizer=n * 4 * optimizer_states,
                total=n * (2 * param_bytes + 4 * optimizer_states))


def block_activation_elements(shape: ModelShape) -> int:
    """Elements per token that one block keeps for its backward pass (see the module docstring)."""
    h, kv, i = shape.hidden_size, shape.kv_dim, shape.intermediate_size
    return (5 * h + 3 * kv) + (2 * h + 4 * i)


def activation_bytes(shape: ModelShape, seq_len: int, batch: int = 1, checkpointing: bool = True,
                     dtype_bytes: int = 2) -> float:
    """Activations of the blocks: checkpointed, L block inputs + one block recomputed; else all L blocks."""
    tokens = batch * seq_len
    one_block = tokens * block_activation_elements(shape) * dtype_bytes
    if not checkpointing:
        return shape.num_hidden_layers * one_block
    return shape.num_hidden_layers * tokens * shape.hidden_size * dtype_bytes + one_block


def logits_bytes(shape: ModelShape, seq_len: int, batch: int = 1, dtype_bytes: int = 2) -> float:
    """The output layer's logits (compute dtype), their float32 copy for the loss, and its float32 gradient."""
    return batch * seq_len * shape.vocab_size * (dtype_bytes + 4 + 4)


def kv_cache_bytes(shape: ModelShape, seq_len: int, batch: int = 1, dtype_bytes: int = 2) -> float:
    """For generation only (not training): K and V of every layer, ``2 * L * kv_dim`` per token."""
    return 2 * shape.num_hidden_layers * shape.kv_dim * batch * seq_len * dtype_bytes


def qlora_budget(shape: ModelShape, r: int = 16, target_modules=LLAMA_TARGETS, seq_len: int = 2048, batch: int = 1,
                 checkpointing: bool = True, blocksize: int = 64, double_quant: bool = True, dtype_bytes: int = 2,
                 unquantized_bytes: int = 4, overhead_gib: float = 1.0) -> dict[str, float]:
    """Every term of QLoRA's training memory in bytes (``total`` included), for one GPU.

    ``unquantized_bytes=4``: the embeddings/lm_head/norms after ``prepare_model_for_kbit_training`` (float32).
    """
    terms = dict(weights=weight_bytes_4bit(shape, blocksize, double_quant, unquantized_bytes)["total"],
                 lora=lora_bytes(shape, r, target_modules)["total"],
                 activations=activation_bytes(shape, seq_len, batch, checkpointing, dtype_bytes),
                 logits=logits_bytes(shape, seq_len, batch, dtype_bytes),
                 overhead=overhead_gib * GiB)
    terms["total"] = sum(terms.values())
    return terms


def full_finetune_bytes(shape: ModelShape, bytes_per_param: int = 16) -> float:
    """Full fine-tuning with mixed-precision AdamW, before activations: bf16 weights and gradients, float32
    master weights and two moments = 2 + 2 + 4 + 8 = 16 bytes per parameter."""
    return sum(shape.n_params().values()) * bytes_per_param


def format_budget(terms: dict[str, float], title: str = "", gpu_gib: float = 24.0) -> str:
    """A small table (GiB, or MiB for a toy model), with the verdict against a GPU of ``gpu_gib``."""
    small = max(v for k, v in terms.items() if k not in ("total", "overhead")) < 0.01 * GiB
    unit, div = ("MiB", 2 ** 20) if small else ("GiB", GiB)
    lines = [title] if title else []
    lines += [f"  {k:<12} {v / div:10.2f} {unit}" for k, v in terms.items() if k != "total"]
    total = terms["total"] / GiB
    verdict = "fits" if total <= gpu_gib else "does NOT fit"
    lines.append(f"  {'total':<12} {terms['total'] / div:10.2f} {unit}  ({verdict} in {gpu_gib:g} GiB, "
                 f"{100 * total / gpu_gib:.0f} %)")
    return "\n".join(lines)
