"""A LLaVA-style vision-language model: the course ViT, a projector, and the course Llama reading both.

::

    pixel_values (B, 3, S, S) -> vision_tower -> last_hidden_state[:, 1:]   (B, N, Dv)   the patch tokens (no CLS,
                                                                                         no final norm: LLaVA's choice)
                              -> multi_modal_projector                      (B, N, C)
    input_ids (B, T) with N copies of <image> per image -> embed_tokens      (B, T, C)
    splice: the rows at <image> positions are replaced by the image features, in order
    -> language_model(inputs_embeds=...) -> logits (B, T, vocab)

The prompt is the chat template of the language model with the user's turn starting ``<image>\\n``;
:func:`build_example` expands the one ``<image>`` into N tokens (as ``LlavaProcessor`` does) and masks the labels
so that only the assistant's answer (and its end token) is learned: image tokens, system and user text get -100.
:func:`to_hf_llava` returns the same weights as a ``transformers.LlavaForConditionalGeneration`` (identical
logits), which is what the zoo publishes.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..models.llama import LlamaForCausalLM
from .projector import Projector
from .vit import VisionTransformer, hf_vision_config


@torch.no_grad()
def greedy_from_embeds(language_model, emb: torch.Tensor, max_new_tokens: int, eos_token_id=None) -> torch.Tensor:
    """Greedy decoding of a causal LM from input embeddings emb (B, T, C) -> the new tokens (B, <= max_new_tokens);
    stops when every row has produced an end token. No KV cache: the prompts here are short."""
    eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))
    out, done = [], torch.zeros(len(emb), dtype=torch.bool)
    for _ in range(max_new_tokens):
        nxt = language_model(inputs_embeds=emb).logits[:, -1].argmax(-1)  # (B,)
        out.append(nxt)
        done |= torch.tensor([t.item() in eos for t in nxt])
        if done.all():
            break
        emb = torch.cat([emb, language_model.model.embed_tokens(nxt)[:, None]], dim=1)
    return torch.stack(out, 1)

IMAGE_TOKEN = "<image>"
IGNORE = -100


def add_image_token(tokenizer, language_model: LlamaForCausalLM) -> int:
    """Add ``<image>`` to the tokenizer (a special token) and a row for it to the LM's embeddings; returns its id.
    The row is never read (image features replace it) but keeps ids inside the embedding table."""
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    emb = language_model.model.embed_tokens
    if image_id >= emb.num_embeddings:
        new = nn.Embedding(image_id + 1, emb.embedding_dim)
        with torch.no_grad():
            new.weight[: emb.num_embeddings] = emb.weight
            new.weight[emb.num_embeddings:] = emb.weight.mean(0)
        language_model.model.embed_tokens = new
        old_head = language_model.lm_head
        language_model.lm_head = nn.Linear(emb.embedding_dim, image_id + 1, bias=False)
        if language_model.config.tie_word_embeddings:
            language_model.lm_head.weight = new.weight
        else:
            with torch.no_grad():
                language_model.lm_head.weight[: old_head.out_features] = old_head.weight
                language_model.lm_head.weight[old_head.out_features:] = 0
        language_model.config.vocab_size = image_id + 1
    return image_id


def splice_image_features(inputs_embeds: torch.Tensor, input_ids: torch.Tensor, image_features: torch.Tensor,
                          image_token_id: int) -> torch.Tensor:
    """Replace the embeddings at ``<image>`` positions by the image features, row-major: (B, T, C) with
    (B_img, N, C) features, where the number of ``<image>`` tokens in ``input_ids`` must be B_img * N."""
    mask = input_ids == image_token_id  # (B, T)
    n_tokens, n_features = int(mask.sum()), image_features.shape[0] * image_features.shape[1]
    if n_tokens != n_features:
        raise ValueError(f"{n_tokens} <image> tokens in the prompts but {n_features} image features "
                         f"({tuple(image_features.shape[:2])}): expand <image> into N tokens per image")
    out = inputs_embeds.clone()
    out[mask] = image_features.reshape(-1, image_features.shape[-1]).to(out.dtype)
    return out


class VLM(nn.Module):
    """``forward(input_ids, pixel_values, attention_mask, labels)`` -> the LM's output (logits, loss)."""

    def __init__(self, vision_tower: VisionTransformer, language_model: LlamaForCausalLM, image_token_id: int,
                 projector: str = "mlp2x_gelu", select: str = "patches"):
        super().__init__()
        self.vision_tower, self.language_model = vision_tower, language_model
        self.multi_modal_projector = Projector(vision_tower.config.hidden_size, language_model.config.hidden_size,
                                               projector)
        self.image_token_id, self.select = image_token_id, select  # "patches" (drop CLS) or "all"

    @property
    def num_image_tokens(self) -> int:
        return self.vision_tower.config.num_patches + (self.select == "all")

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        h = self.vision_tower(pixel_values).last_hidden_state  # (B, 1 + N, Dv)
        return self.multi_modal_projector(h[:, 1:] if self.select == "patches" else h)  # (B, N, C)

    def embed(self, input_ids, pixel_values=None) -> torch.Tensor:
        emb = self.language_model.model.embed_tokens(input_ids)
        if pixel_values is None:
            return emb
        return splice_image_features(emb, input_ids, self.image_features(pixel_values), self.image_token_id)

    def forward(self, input_ids, pixel_values=None, attention_mask=None, labels=None, **kwargs):
        return self.language_model(inputs_embeds=self.embed(input_ids, pixel_values), attention_mask=attention_mask,
                                   labels=labels, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids, pixel_values, max_new_tokens: int = 16, eos_token_id=None) -> torch.Tensor:
        """Greedy decoding for one prompt or a batch of equal-length prompts -> the new tokens (B, <= new)."""
        emb = self.embed(input_ids, pixel_values)
        return greedy_from_embeds(self.language_model, emb, max_new_tokens, eos_token_id)


def build_example(tokenizer, question: str, answer: str | None, num_image_tokens: int, system: str | None = None):
    """One chat turn with an image: (input_ids (T,), labels (T,) or None). The user's content is
    ``<image>\\n`` + question, and ``<image>`` is expanded into ``num_image_tokens`` tokens; the labels are -100
    everywhere except the assistant's answer and its end token. ``answer=None``: the generation prompt."""
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": f"{IMAGE_TOKEN}\n{question}"}]
    prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    at = ids.index(image_id)
    ids = ids[:at] + [image_id] * num_image_tokens + ids[at + 1:]
    if answer is None:
        return torch.tensor(ids), None
    full = tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": answer}], tokenize=False)
    assert full.startswith(prompt), "the chat template must extend the generation prompt"
    reply = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    if end in reply:  # learn the answer and its end token, not the newline after it
        reply = reply[: reply.index(end) + 1]
    return torch.tensor(ids + reply), torch.tensor([IGNORE] * len(ids) + reply)


def collate(examples, pad_id: int):
    """Right-pad (input_ids, labels) pairs into (ids (B, T), attention_mask (B, T), labels (B, T))."""
    T = max(len(x) for x, _ in examples)
    ids = torch.full((len(examples), T), pad_id)
    labels = torch.full((len(examples), T), IGNORE)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)], mask[i, : len(x)] = x, 1
        if y is not None:
            labels[i, : len(y)] = y
    return ids, mask, labels


def to_hf_llava(vlm: VLM):
    """The same weights as a ``transformers.LlavaForConditionalGeneration`` (2-layer projector only: that is the
    stock class's)."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    if vlm.multi_modal_projector.kind != "mlp2x_gelu":
        raise ValueError("LlavaForConditionalGeneration has a 2-layer MLP projector; this VLM's is linear")
    text_cfg = vlm.language_model.config.to_hf()
    cfg = LlavaConfig(vision_config=hf_vision_config(vlm.vision_tower.config).to_dict(), text_config=text_cfg.to_dict(),
                      image_token_id=vlm.image_token_id, projector_hidden_act="gelu", vision_feature_layer=-1,
                      vision_feature_select_strategy="default" if vlm.select == "patches" else "full",
                      image_seq_length=vlm.num_image_tokens, tie_word_embeddings=text_cfg.tie_word_embeddings)
    hf = LlavaForConditionalGeneration(cfg).eval()
    sd = {}
    for k, v in vlm.vision_tower.state_dict().items():
        sd[f"model.vision_tower.{k}"] = v  # transformers 5: the bare CLIPVisionTransformer
    for k, v in vlm.multi_modal_projector.state_dict().items():
        sd[f"model.multi_modal_projector.{k}"] = v
    for k, v in vlm.language_model.state_dict().items():
        sd[k.replace("model.", "model.language_model.", 1) if k.startswith("model.") else k] = v
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"VLM -> Llava: missing {missing}, unexpected {unexpected}")
    return hf
