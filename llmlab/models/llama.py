"""Week 4 reference: the Llama architecture (Llama 2/3, Mistral, Qwen2 share it), readable top to bottom.

What changes from GPT-2 (``llmlab.models.gpt``), one idea per class:

- :class:`RMSNorm` instead of LayerNorm: divide by the root-mean-square, no mean, no bias.
- :class:`RotaryEmbedding` instead of learned positions: q and k are rotated by an angle proportional to
  their position, so ``q_i . k_j`` depends on ``i - j`` only (Hugging Face's ``rotate_half`` layout).
- :class:`LlamaMLP`: SwiGLU, ``down(silu(gate(x)) * up(x))``.
- :class:`LlamaAttention`: grouped-query attention, ``num_key_value_heads`` K/V heads shared by
  ``num_attention_heads`` query heads; no biases anywhere.
- :class:`LlamaModel` (embeddings -> blocks -> final norm, returns hidden states) is split from its heads:
  :class:`LlamaForCausalLM` (``lm_head``, tied to the embeddings or not) and :class:`LlamaForScore`
  (a scalar ``score`` head for Week 5's reward and value models), as in ``transformers``.

Parameter names are exactly those of ``transformers.LlamaForCausalLM`` (``model.embed_tokens``,
``model.layers.N.self_attn.q_proj`` ... ``lm_head``), so state dicts load either way:
:func:`to_hf_llama` / :func:`from_hf_llama` convert with identical logits, and the PEFT ``target_modules``
(``q_proj k_proj v_proj o_proj gate_proj up_proj down_proj``) are those of Llama-3-8B.

Forward arguments follow ``transformers``: ``attention_mask`` (B, S) of 1 = token / 0 = padding, left or right;
``position_ids`` (B, T); ``past_key_values`` (a :class:`KVCache`, or the legacy tuple of ``(k, v)`` per layer);
``inputs_embeds`` (B, T, C) instead of ids (Week 8 splices image features in); ``output_hidden_states``;
``output_attentions`` (uses the explicit "eager" path, which returns the attention probabilities).

The causal rule, with T queries and S >= T keys (the last T of them new): query i sits at position
``S - T + i`` and sees keys ``0 .. S - T + i`` -- bottom-right alignment, :func:`llmlab.attention.causal_mask`.
That is what a KV cache needs: the new token is the last one and sees everything cached before it.

Shapes: B batch, T new tokens, S keys (cached + new), H query heads, K key/value heads, D head size, C width.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention import causal_mask, masked_softmax

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class LlamaConfig:
    """The course model's hyper-parameters, under ``transformers.LlamaConfig``'s field names."""

    vocab_size: int = 512
    hidden_size: int = 128
    intermediate_size: int = 352  # SwiGLU: about 8/3 of hidden_size (3 matrices instead of 2), a multiple of 32
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2  # = num_attention_heads: multi-head attention; 1: multi-query attention
    head_dim: int | None = None  # default hidden_size // num_attention_heads
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0  # Llama 2: 1e4, Llama 3: 5e5
    tie_word_embeddings: bool = True
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    attn_implementation: str = "sdpa"  # or "eager" (explicit softmax; can return the attention probabilities)
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                                 f"num_attention_heads={self.num_attention_heads}; give head_dim explicitly")
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads={self.num_attention_heads} must be a multiple of "
                             f"num_key_value_heads={self.num_key_value_heads} (each K/V head serves a group)")
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even: RoPE rotates pairs of coordinates")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, "
                             f"not {self.attn_implementation!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_hf(self):
        """The equivalent ``transformers.LlamaConfig``."""
        from transformers import LlamaConfig as HFLlamaConfig

        d = self.to_dict()
        attn = d.pop("attn_implementation")
        hf = HFLlamaConfig(**d, hidden_act="silu", attention_bias=False, mlp_bias=False)
        hf._attn_implementation = attn
        return hf

    @classmethod
    def from_hf(cls, hf_config) -> LlamaConfig:
        """From a ``transformers.LlamaConfig`` (or any config with its field names: Mistral without sliding window)."""
        rope = getattr(hf_config, "rope_parameters", None) or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"rope_type {rope['rope_type']!r} (frequency scaling, as in Llama 3.1) is not "
                             "implemented by the course model; only the original RoPE is")
        if getattr(hf_config, "attention_bias", False) or getattr(hf_config, "mlp_bias", False):
            raise ValueError("the course Llama has no biases; this config has attention_bias or mlp_bias")
        if getattr(hf_config, "hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {hf_config.hidden_act!r}: the course Llama uses SwiGLU (silu)")
        kw = {f.name: getattr(hf_config, f.name) for f in fields(cls)
              if f.name not in ("rope_theta", "attn_implementation") and hasattr(hf_config, f.name)}
        theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
        attn = getattr(hf_config, "_attn_implementation", None)
        return cls(**kw, rope_theta=theta, attn_implementation=attn if attn in ATTN_IMPLEMENTATIONS else "sdpa")


# ---------------------------------------------------------------------------------------------
# the building blocks


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, computed in float32 (as Hugging Face) and cast back."""

    def __init__(self, hidden_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [-x2, x1] on the two halves of the last dimension (pairs are (j, j + D/2))."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, heads, T, D) by the angles whose cos/sin are (B, T, D): each pair (j, j + D/2) turns by
    ``position * inv_freq[j]``."""
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


class RotaryEmbedding(nn.Module):
    """cos and sin of the rotation angles ``position * theta^(-2j/D)``, j = 0 .. D/2 - 1, for given positions."""

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (D/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # derived from the config: not saved

    def forward(self, position_ids: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        angles = position_ids[..., None].float() * self.inv_freq  # (B, T, D/2), always in float32
        emb = torch.cat((angles, angles), dim=-1)  # (B, T, D): the same angle for j and j + D/2
        return emb.cos().to(dtype), emb.sin().to(dtype)


class LlamaMLP(nn.Module):
    """SwiGLU feed-forward: down_proj(silu(gate_proj(x)) * up_proj(x))."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class KVCache:
    """The keys and values of every layer seen so far: ``layers[i] = (k, v)``, each (B, K, S, D).

    ``update`` appends the new tokens' k, v and returns the whole sequence for attention. The legacy format of
    ``transformers`` (a tuple of ``(k, v)`` per layer) converts with :meth:`from_legacy` / :meth:`to_legacy`.
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
        self.layers = list(layers) if layers else []

    def update(self, layer_idx: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx == len(self.layers):
            self.layers.append((k, v))
        elif layer_idx < len(self.layers):
            k0, v0 = self.layers[layer_idx]
            self.layers[layer_idx] = (torch.cat([k0, k], dim=2), torch.cat([v0, v], dim=2))
        else:
            raise IndexError(f"layer {layer_idx} updated before layer {len(self.layers)}")
        return self.layers[layer_idx]

    def get_seq_length(self) -> int:
        """How many positions are cached (the S - T of the next forward)."""
        return self.layers[0][0].shape[2] if self.layers else 0

    def crop(self, length: int) -> None:
        """Keep the first ``length`` positions (speculative decoding rolls back rejected tokens)."""
        self.layers = [(k[:, :, :length], v[:, :, :length]) for k, v in self.layers]

    def select(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (drop finished sequences, reorder for beams)."""
        self.layers = [(k[index], v[index]) for k, v in self.layers]

    def to_legacy(self) -> tuple:
        return tuple(self.layers)

    @classmethod
    def from_legacy(cls, past) -> KVCache:
        return past if isinstance(past, KVCache) else cls([tuple(kv) for kv in past] if past else None)

    def __len__(self):
        return len(self.layers)


class LlamaAttention(nn.Module):
    """Grouped-query self-attention with RoPE on q and k, a KV cache, and two implementations."""

    def __init__(self, cfg: LlamaConfig, layer_idx: int):
        super().__init__()
        self.config, self.layer_idx = cfg, layer_idx
        H, K, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.n_head, self.n_kv_head, self.head_dim = H, K, D
        self.q_proj = nn.Linear(cfg.hidden_size, H * D, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_size, K * D, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_size, K * D, bias=False)
        self.o_proj = nn.Linear(H * D, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask=None, cache: KVCache | None = None, output_attentions: bool = False):
        """x (B, T, C); cos, sin (B, T, D); mask (B, 1, T, S) bool, True = may attend (None: plain causal)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, K, T, D)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, K, T, D)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # positions enter here, and only here
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)  # (B, K, S, D): the cached keys are already rotated
        p_drop = self.config.attention_dropout if self.training else 0.0
        probs = None
        if output_attentions or self.config.attn_implementation == "eager":
            # repeat each K/V head for the H/K query heads of its group: (B, K, S, D) -> (B, H, S, D)
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, T, S)
            if mask is None:
                mask = causal_mask(T, k.shape[2], device=x.device)
            probs = masked_softmax(scores.float(), mask).to(q.dtype)
            y = F.dropout(probs, p_drop, training=self.training) @ v  # (B, H, T, D)
        else:
            # PyTorch's fused kernel; is_causal is top-left aligned, so it is only used when T == S
            causal = mask is None and T == k.shape[2]
            if mask is None and not causal:
                mask = causal_mask(T, k.shape[2], device=x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p_drop, is_causal=causal,
                                               enable_gqa=self.n_kv_head != self.n_head)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # re-assemble the heads
        return self.o_proj(y), probs


class LlamaDecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: LlamaConfig, layer_idx: int):
        super().__init__()
        # declared in transformers' order, so that state dicts list their tensors in the same order
        self.self_attn = LlamaAttention(cfg, layer_idx)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask=None, cache=None, output_attentions=False):
        a, probs = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, output_attentions)
        x = x + a
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, probs


# ---------------------------------------------------------------------------------------------
# the base model and its heads


@dataclass
class LlamaOutput:
    """What the models return (attribute names as ``transformers``' output classes). Unused fields are None."""

    last_hidden_state: torch.Tensor | None = None  # (B, T, C), after the final norm
    logits: torch.Tensor | None = None  # (B, T, vocab) from LlamaForCausalLM, (B, T, n) per token from LlamaForScore
    loss: torch.Tensor | None = None
    scores: torch.Tensor | None = None  # LlamaForScore: (B, n) at each row's last real token
    past_key_values: KVCache | tuple | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings, then each layer's output; last one normed
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, S) probabilities


def build_attention_mask(attention_mask: torch.Tensor | None, T: int, S: int, device=None) -> torch.Tensor | None:
    """The (B, 1, T, S) boolean mask from a (B, S) padding mask (1 = token, 0 = padding), causal bottom-right.

    A query with no visible key at all (a left-padding position) would give NaN in softmax, and NaN * 0 = NaN
    would then leak into real positions through the values; such rows see every key instead. Their outputs are
    meaningless either way and must be ignored (they are: their labels are -100, their logits unused).
    Returns None without padding (the attention then uses its plain causal path).
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    if attention_mask.shape[-1] != S:
        raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} positions; the keys are {S} "
                         "(cached + new): pass the mask of the whole sequence so far")
    mask = causal_mask(T, S, device=device)[None, None] & attention_mask.bool()[:, None, None, :]  # (B, 1, T, S)
    return mask | ~mask.any(dim=-1, keepdim=True)


class LlamaPreTrainedModel(nn.Module):
    """Weight initialisation shared by the base model and its heads: N(0, initializer_range), norms at 1."""

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)

    def num_params(self) -> int:
        """Parameter count, a tied lm_head counted once."""
        return sum(p.numel() for p in self.parameters())


class LlamaModel(LlamaPreTrainedModel):
    """Token embeddings -> decoder layers -> final RMSNorm; returns hidden states (no head)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(cfg.head_dim, cfg.rope_theta)
        self.apply(self._init_weights)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache: bool = False, output_hidden_states: bool = False,
                output_attentions: bool = False) -> LlamaOutput:
        """input_ids (B, T) or inputs_embeds (B, T, C) -> LlamaOutput(last_hidden_state (B, T, C), ...).

        Default ``position_ids`` continue the cache: ``past, ..., past + T - 1`` (as ``transformers``). With left
        padding pass them (``attention_mask.cumsum(-1) - 1``; :meth:`LlamaForCausalLM.generate` does).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, C)
        B, T, _ = x.shape
        legacy = past_key_values is not None and not isinstance(past_key_values, KVCache)
        cache = KVCache.from_legacy(past_key_values) if (use_cache or past_key_values is not None) else None
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=x.device)[None].expand(B, T)
        cos, sin = self.rotary_emb(position_ids, dtype=x.dtype)  # (B, T, D), computed once for all layers
        mask = build_attention_mask(attention_mask, T, past + T, device=x.device)
        hidden, attentions = [x], []
        for layer in self.layers:
            x, probs = layer(x, cos, sin, mask, cache, output_attentions)
            hidden.append(x)
            attentions.append(probs)
        x = self.norm(x)
        hidden[-1] = x  # as transformers: the last hidden state is the normed one
        return LlamaOutput(
            last_hidden_state=x,
            past_key_values=(cache.to_legacy() if legacy else cache) if cache is not None else None,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class LlamaForCausalLM(LlamaPreTrainedModel):
    """LlamaModel + lm_head: next-token logits, the shifted cross-entropy, and generate()."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self._init_weights(self.lm_head)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight  # one matrix reads tokens in and writes them out

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache: bool = False, output_hidden_states: bool = False,
                output_attentions: bool = False) -> LlamaOutput:
        """As :meth:`LlamaModel.forward`, plus ``logits`` (B, T, vocab) and, with ``labels`` (B, T), the mean
        cross-entropy of predicting ``labels[:, t + 1]`` at t (labels are the inputs, shifted here as in
        ``transformers``); label -100 is ignored (padding, or the prompt in SFT)."""
        out = self.model(input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
                         output_hidden_states, output_attentions)
        out.logits = self.lm_head(out.last_hidden_state)
        if labels is not None:
            out.loss = F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                       ignore_index=-100)
        return out

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int = 32, attention_mask: torch.Tensor | None = None,
                 temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                 eos_token_id: int | list[int] | None = None, pad_token_id: int | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:
        """Append up to ``max_new_tokens`` tokens to the prompts ``input_ids`` (B, T) -> (B, T + new).

        ``temperature`` 0 is greedy (argmax); otherwise sample from softmax(logits / temperature), restricted to
        the ``top_k`` most likely tokens and/or the smallest set whose probability reaches ``top_p``.
        A row stops at any of ``eos_token_id`` (default: the config's) and is filled with ``pad_token_id``
        afterwards; the loop ends when every row has stopped. Batched prompts of unequal length are padded
        on the **left** with ``attention_mask`` marking the padding, so every row's next token is the last column.
        With ``use_cache`` each step feeds only the new token and reuses the cached keys and values.
        RoPE sets no hard length limit, but past ``max_position_embeddings`` the model runs on positions it
        never trained on.
        """
        was_training = self.training
        self.eval()
        eos = eos_token_id if eos_token_id is not None else self.config.eos_token_id
        eos = torch.tensor([] if eos is None else [eos] if isinstance(eos, int) else list(eos), dtype=torch.long,
                           device=input_ids.device)
        pad = pad_token_id if pad_token_id is not None else self.config.pad_token_id
        if pad is None:
            pad = int(eos[0]) if len(eos) else 0
        B = input_ids.shape[0]
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(input_ids.dtype)
        ids, cache = input_ids, (KVCache() if use_cache else None)
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        step_ids = ids
        for _ in range(max_new_tokens):
            positions = (mask.cumsum(-1) - 1).clamp_min(0)  # left padding: the first real token is position 0
            if use_cache:
                out = self(step_ids, attention_mask=mask, position_ids=positions[:, -step_ids.shape[1]:],
                           past_key_values=cache, use_cache=True)
            else:
                out = self(ids, attention_mask=mask, position_ids=positions)
            nxt = sample_next_token(out.logits[:, -1, :].float(), temperature, top_k, top_p, generator)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            mask = torch.cat([mask, (~done).to(mask.dtype)[:, None]], dim=1)
            step_ids = nxt[:, None]
            done = done | torch.isin(nxt, eos)
            if bool(done.all()):
                break
        self.train(was_training)
        return ids


class LlamaForScore(LlamaPreTrainedModel):
    """LlamaModel + ``score`` (C -> n_outputs, no bias): a value per token (PPO's value model, ``logits``) and
    per sequence at its last real token (a reward model, ``scores``). The names are those of
    ``transformers.LlamaForSequenceClassification`` (``num_labels = n_outputs``)."""

    def __init__(self, cfg: LlamaConfig, n_outputs: int = 1):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.score = nn.Linear(cfg.hidden_size, n_outputs, bias=False)
        self._init_weights(self.score)

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache: bool = False, output_hidden_states: bool = False,
                output_attentions: bool = False) -> LlamaOutput:
        out = self.model(input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
                         output_hidden_states, output_attentions)
        out.logits = self.score(out.last_hidden_state)  # (B, T, n)
        B, T = out.logits.shape[:2]
        last = torch.full((B,), T - 1, device=out.logits.device)
        if attention_mask is not None:  # the last position holding a real token (right or left padding alike)
            last = (torch.arange(T, device=last.device) * attention_mask[:, -T:].bool()).amax(dim=-1)
        out.scores = out.logits[torch.arange(B, device=out.logits.device), last]  # (B, n)
        return out


def sample_next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of ``logits`` (B, vocab): greedy at temperature 0, else top-k / top-p sampling."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_logits.softmax(dim=-1) >= top_p  # tokens after the set has already reached top_p
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]


# ---------------------------------------------------------------------------------------------
# Hugging Face interop: the parameter names are the same, so a state dict is all that moves


def to_hf_llama(model: LlamaForCausalLM):
    """A ``transformers.LlamaForCausalLM`` (eval mode) holding the same weights."""
    from transformers import LlamaForCausalLM as HFLlamaForCausalLM

    hf = HFLlamaForCausalLM(model.config.to_hf())
    hf.load_state_dict(model.state_dict(), strict=True)
    return hf.eval()


def from_hf_llama(hf) -> LlamaForCausalLM:
    """The inverse of :func:`to_hf_llama`: a course model from a ``transformers.LlamaForCausalLM``."""
    model = LlamaForCausalLM(LlamaConfig.from_hf(hf.config))
    sd = hf.state_dict()
    if model.config.tie_word_embeddings:
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"} | {"lm_head.weight": sd["model.embed_tokens.weight"]}
    model.load_state_dict(sd, strict=True)
    return model.eval()
