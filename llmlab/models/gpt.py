"""Week 1 reference: a GPT in the shape of GPT-2 (and of nanoGPT's model.py).

Parameter names follow GPT-2 / Hugging Face (``transformer.wte``, ``transformer.h.0.attn.c_attn``,
``lm_head``...), so :func:`to_hf_gpt2` ports the weights into ``transformers.GPT2LMHeadModel``
(transposing the Linear weights, which GPT-2 stores as ``Conv1D``) and the logits agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention import MultiHeadAttention


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64  # longest context
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # GPT-2 has biases in Linear and LayerNorm


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU (tanh approximation, as GPT-2) -> C."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = MultiHeadAttention(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),  # token embeddings
                wpe=nn.Embedding(cfg.block_size, cfg.n_embd),  # learned positions, as GPT-2
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
            )
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; tied lm_head counted once; position embeddings excluded if non_embedding."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, T) token ids -> logits (B, T, vocab); with targets also the mean cross-entropy."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size={self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to idx (B, T). temperature 0 means greedy."""
        was_training = self.training
        self.eval()
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -self.config.block_size:]  # crop to the context window
            logits = self(idx_cond)[0][:, -1, :]  # (B, vocab)
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        self.train(was_training)
        return idx


# ---------------------------------------------------------------------------------------------
# Hugging Face interop

_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_gpt2_config(cfg: GPTConfig):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
        # GPT2Config's default bos/eos id is GPT-2's <|endoftext|> = 50256: meaningless (and warned about) in a
        # smaller vocabulary; the caller sets its own special-token ids on hf.config if it has any
        bos_token_id=50256 if cfg.vocab_size > 50256 else None,
        eos_token_id=50256 if cfg.vocab_size > 50256 else None,
    )


def to_hf_gpt2(model: GPT):
    """A ``transformers.GPT2LMHeadModel`` holding the same weights (logits equal to ~1e-5)."""
    from transformers import GPT2LMHeadModel

    if not model.config.bias:
        raise ValueError("GPT-2 has biases; convert a model built with bias=True")
    hf = GPT2LMHeadModel(hf_gpt2_config(model.config))
    sd = model.state_dict()
    with torch.no_grad():
        for name, p in hf.state_dict().items():
            if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
                continue  # causal-mask buffers in older transformers
            src = sd[name]
            p.copy_(src.t() if name.endswith(_TRANSPOSED) else src)
    return hf.eval()


def from_hf_gpt2(hf) -> GPT:
    """The inverse of :func:`to_hf_gpt2`: a course GPT from a ``GPT2LMHeadModel``."""
    c = hf.config
    model = GPT(GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer,
                          n_head=c.n_head, n_embd=c.n_embd, dropout=0.0, bias=True))
    hsd = hf.state_dict()
    with torch.no_grad():
        for name, p in model.state_dict().items():
            src = hsd[name]
            p.copy_(src.t() if name.endswith(_TRANSPOSED) else src)
    return model


def config_dict(model: GPT) -> dict:
    return asdict(model.config)
