"""Weeks 1-3 reference: a GPT in the shape of GPT-2 (and of nanoGPT's model.py), split as ``transformers`` splits it.

::

    GPT (the LM head model)                    GPT2LMHeadModel
    ├── transformer: GPTModel (the base)       GPT2Model
    │   ├── wte, wpe, drop      embed()        token + learned position embeddings
    │   ├── h: Block x n_layer                 pre-norm blocks: CausalSelfAttention, MLP
    │   └── ln_f                               the final LayerNorm
    └── lm_head (tied to wte)   head()         logits and the loss

Parameter names follow GPT-2 / Hugging Face (``transformer.wte``, ``transformer.h.0.attn.c_attn``,
``lm_head``...), so :func:`to_hf_gpt2` ports the weights into ``transformers.GPT2LMHeadModel``
(transposing the Linear weights, which GPT-2 stores as ``Conv1D``) and the logits agree.

``GPT.forward(idx, targets)`` returns ``(logits, loss)`` as nanoGPT's does; the keyword arguments later
weeks need are those of ``transformers``: ``attention_mask`` (1 = a real token, 0 = padding),
``position_ids``, ``past_key_values`` + ``use_cache`` (a KV cache: one ``(k, v)`` pair per block, each
(B, H, S, D)), ``inputs_embeds`` (vectors instead of token ids, e.g. image features), and
``output_hidden_states``; the result also carries them as attributes (``out.logits``, ``out.loss``,
``out.past_key_values``, ``out.hidden_states``). ``GPTConfig.attn_implementation`` chooses the attention
kernel: "sdpa" (PyTorch's fused ``scaled_dot_product_attention``) or "eager" (Week 1's
:func:`llmlab.attention.scaled_dot_product_attention`, which materialises the (T, S) scores);
:func:`attention_implementation` switches it for a ``with`` block.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64  # longest context
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # GPT-2 has biases in Linear and LayerNorm
    attn_implementation: str = "sdpa"  # "sdpa" (fused) or "eager" (explicit scores); same outputs


class _Rebuildable:
    """Tuple outputs that libraries can take apart and rebuild as they do namedtuples: DeepSpeed ZeRO-3's
    module hooks call ``type(out)(*elements)`` when ``_fields``/``_asdict`` exist, and ``type(out)(list)``
    (which would put the whole list in the first field) otherwise. Rebuilt that way, only the tuple's
    elements survive (no cache, no hidden states: nothing a training step needs)."""

    def _asdict(self) -> dict:
        return dict(zip(self._fields, self))


class ModelOutput(_Rebuildable, tuple):
    """``(logits, loss)`` -- unpacks like nanoGPT's return value -- with ``transformers``-style attributes:
    ``logits``, ``loss``, ``past_key_values`` (with ``use_cache``) and ``hidden_states`` (with
    ``output_hidden_states``: the embeddings and every block's output, the last one after ``ln_f``)."""

    _fields = ("logits", "loss")

    def __new__(cls, logits, loss=None, past_key_values=None, hidden_states=None):
        out = super().__new__(cls, (logits, loss))
        out.logits, out.loss, out.past_key_values, out.hidden_states = logits, loss, past_key_values, hidden_states
        return out


class BaseModelOutput(_Rebuildable, tuple):
    """``GPTModel``'s output: ``(last_hidden_state,)`` with ``past_key_values`` and ``hidden_states`` attributes."""

    _fields = ("last_hidden_state",)

    def __new__(cls, last_hidden_state, past_key_values=None, hidden_states=None):
        out = super().__new__(cls, (last_hidden_state,))
        out.last_hidden_state, out.past_key_values, out.hidden_states = last_hidden_state, past_key_values, hidden_states
        return out


class CausalSelfAttention(MultiHeadAttention):
    """Week 1's :class:`~llmlab.attention.MultiHeadAttention` (same parameters) as a decoder uses it:
    causal, with padding masks, a KV cache, and a choice of attention kernel."""

    def __init__(self, cfg: GPTConfig):
        super().__init__(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias)
        if cfg.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {cfg.attn_implementation!r}")
        self.attn_implementation = cfg.attn_implementation

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None,
                past_key_value: tuple[torch.Tensor, torch.Tensor] | None = None, use_cache: bool = False):
        """x (B, T, C); attention_mask (B, S) with 1 at real tokens, S = past + T. Returns y (B, T, C),
        and with ``use_cache`` also this layer's (k, v) for the next call, each (B, H, S, D)."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, H, T, D)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past_key_value is not None:  # the keys and values of the earlier tokens, cached
            k, v = torch.cat([past_key_value[0], k], dim=2), torch.cat([past_key_value[1], v], dim=2)  # (B, H, S, D)
        S = k.size(2)
        mask = None  # (B or 1, 1, T, S), True = may attend
        if attention_mask is not None or S != T or self.attn_implementation == "eager":
            mask = causal_mask(T, S, device=x.device)  # bottom-right aligned: the T new queries are the last ones
            if attention_mask is not None:
                mask = mask & attention_mask.bool()[:, None, None, :]
        p = self.dropout if self.training else 0.0
        if self.attn_implementation == "eager":
            y = scaled_dot_product_attention(q, k, v, mask, self.dropout, self.training)
        elif mask is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        else:
            # a query with no key to attend to (padding) would give NaN: let it attend everywhere, its
            # output is never used (it is masked out of the loss)
            mask = mask | ~mask.any(dim=-1, keepdim=True)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads
        y = self.resid_dropout(self.c_proj(y))
        return (y, (k, v)) if use_cache else y


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
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, attention_mask=None, past_key_value=None, use_cache: bool = False):
        """(B, T, C) -> (B, T, C); with ``use_cache``, ``(x, (k, v))``."""
        a = self.attn(self.ln_1(x), attention_mask, past_key_value, use_cache)
        a, present = a if use_cache else (a, None)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return (x, present) if use_cache else x


class GPTModel(nn.Module):
    """The base model: embeddings, the blocks and the final LayerNorm; returns hidden states (B, T, C).

    Heads go on top of it: :class:`GPT` (next-token logits), or a scalar head for a reward or value model.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # token embeddings
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)  # learned positions, as GPT-2
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)

    def embed(self, idx: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
              inputs_embeds: torch.Tensor | None = None, past_length: int = 0) -> torch.Tensor:
        """Token (or given) embeddings + position embeddings, then dropout: (B, T) ids -> (B, T, C).

        Positions default to ``past_length, ..., past_length + T - 1`` (after a KV cache of ``past_length``)."""
        if (idx is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of idx (token ids) and inputs_embeds")
        T = idx.size(1) if idx is not None else inputs_embeds.size(1)
        if past_length + T > self.config.block_size:
            raise ValueError(f"sequence of length {past_length + T} is longer than block_size={self.config.block_size}")
        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + T, device=(idx if idx is not None else inputs_embeds).device)
        tok = self.wte(idx) if idx is not None else inputs_embeds
        return self.drop(tok + self.wpe(position_ids))  # (B, T, C)

    def forward(self, idx: torch.Tensor | None = None, *, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values=None, inputs_embeds: torch.Tensor | None = None,
                use_cache: bool = False, output_hidden_states: bool = False) -> BaseModelOutput:
        past_length = 0 if past_key_values is None else past_key_values[0][0].size(2)
        x = self.embed(idx, position_ids, inputs_embeds, past_length)
        hidden, presents = [x] if output_hidden_states else None, [] if use_cache else None
        for i, block in enumerate(self.h):
            past = None if past_key_values is None else past_key_values[i]
            if use_cache or past is not None or attention_mask is not None:
                out = block(x, attention_mask, past, use_cache)
                x, present = out if use_cache else (out, None)
                if use_cache:
                    presents.append(present)
            else:
                x = block(x)
            if output_hidden_states:
                hidden.append(x)
        x = self.ln_f(x)
        if output_hidden_states:
            hidden[-1] = x  # as transformers: the last hidden state is after the final LayerNorm
        return BaseModelOutput(x, tuple(presents) if use_cache else None, tuple(hidden) if output_hidden_states else None)


class GPT(nn.Module):
    """The language model: :class:`GPTModel` + a linear head to the vocabulary, tied to the token embedding."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.transformer = GPTModel(cfg)
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

    def head(self, hidden: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, vocab) of final hidden states (after ``ln_f``), and with targets the mean cross-entropy
        (targets -1 are ignored). Returns ``(logits, loss)``."""
        logits = self.lm_head(hidden)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def forward(self, idx: torch.Tensor | None = None, targets: torch.Tensor | None = None, **kwargs) -> ModelOutput:
        """idx (B, T) token ids -> ``(logits, loss)``: logits (B, T, vocab), the loss with targets (else None).

        Keyword arguments as :meth:`GPTModel.forward` (attention_mask, position_ids, past_key_values,
        inputs_embeds, use_cache, output_hidden_states)."""
        base = self.transformer(idx, **kwargs)
        logits, loss = self.head(base.last_hidden_state, targets)
        return ModelOutput(logits, loss, base.past_key_values, base.hidden_states)

    def set_attn_implementation(self, name: str) -> None:
        """Every attention layer to "sdpa" or "eager" (see :func:`attention_implementation`)."""
        set_attn_implementation(self, name)
        self.config.attn_implementation = name

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


def set_attn_implementation(module: nn.Module, name: str) -> None:
    """Set the kernel of every :class:`CausalSelfAttention` inside ``module`` (a GPT, a GPTModel, a Block)."""
    if name not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {name!r}")
    for m in module.modules():
        if isinstance(m, CausalSelfAttention):
            m.attn_implementation = name


@contextlib.contextmanager
def attention_implementation(module: nn.Module, name: str):
    """Inside the ``with``, every attention layer of ``module`` uses kernel ``name`` ("eager": the explicit
    path that materialises the (T, T) scores; "sdpa": the fused kernel). Same outputs, different memory."""
    layers = [m for m in module.modules() if isinstance(m, CausalSelfAttention)]
    before = [m.attn_implementation for m in layers]
    set_attn_implementation(module, name)
    try:
        yield module
    finally:
        for m, b in zip(layers, before):
            m.attn_implementation = b


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
