"""The text side of CLIP: a word-level caption tokenizer and a causal text transformer (HF ``CLIPTextModel`` names).

The captions of :mod:`llmlab.vision.images` use a few hundred words, so a tokenizer that knows each word (English
words whole, Chinese character by character) is all CLIP needs here: ``<bos> words <eos> <pad>...``. The text
tower is the ViT's block stack with a **causal** mask (CLIP's choice: the same tower could then be a language
model); the sentence embedding is the final-norm hidden state at the ``<eos>`` token, which has seen the whole
caption.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .vit import Encoder, EncoderOutput

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")  # <eos> is not id 2: HF CLIP reads 2 as its legacy argmax pooling
PAD, UNK, BOS, EOS = range(4)
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?|[\u4e00-\u9fff]|[^\sa-z\u4e00-\u9fff]")


def words(text: str) -> list[str]:
    """"A red, round apple." -> ["a", "red", ",", "round", "apple", "."]; Chinese one character per word."""
    return _WORD.findall(text.lower())


class CaptionTokenizer:
    """Word-level tokens: ``encode(texts, context_length)`` -> (ids (B, T), attention_mask (B, T))."""

    def __init__(self, vocab: list[str]):
        self.vocab = list(SPECIALS) + [w for w in vocab if w not in SPECIALS]
        self.index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts) -> CaptionTokenizer:
        return cls(sorted({w for t in texts for w in words(t)}))

    def __len__(self):
        return len(self.vocab)

    def encode(self, texts, context_length: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        ids = torch.full((len(texts), context_length), PAD, dtype=torch.long)
        for i, t in enumerate(texts):
            toks = [BOS] + [self.index.get(w, UNK) for w in words(t)][: context_length - 2] + [EOS]
            ids[i, : len(toks)] = torch.tensor(toks)
        return ids, (ids != PAD).long()

    def decode(self, ids) -> str:
        out = [self.vocab[i] for i in ids if i not in (PAD, BOS, EOS)]
        return " ".join(out)


def caption_tokenizer() -> CaptionTokenizer:
    """The Week 8 tokenizer: every word the generator's captions, the food table and the prompt templates use."""
    from ..tasks.food import COLOURS, FOODS, SHAPES, TEXTURES
    from . import images

    texts = []
    for f in FOODS:
        o = images.RenderedObject(None, None, (0, 0, 0, 0), f.colour, f.shape, f.texture, f.size, f)
        texts += images.captions(o, "en") + images.captions(o, "zh") + [f.category, f.meal, f.taste, f.cuisine]
    for c in COLOURS:
        for s in SHAPES:
            o = images.RenderedObject(None, None, (0, 0, 0, 0), c, s, "smooth", "medium")
            texts += images.captions(o, "en") + images.captions(o, "zh")
    texts += list(TEXTURES) + list(images.SCENES) + [v[2] for v in images.SCENES.values()]
    texts += ["a photo of the", "a picture of", "an image of", "this is", "there is", "a blurry photo of", "a cropped",
              "a close-up", "with and on plate tray table", "图片 照片 这是 一个"]
    return CaptionTokenizer.from_texts(texts)


@dataclass
class TextConfig:
    vocab_size: int = 512
    max_position_embeddings: int = 24
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 256
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    eos_token_id: int = EOS
    pad_token_id: int = PAD
    bos_token_id: int = BOS

    def to_dict(self) -> dict:
        return asdict(self)


class TextEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings)[None], persistent=False)

    def forward(self, input_ids):
        return self.token_embedding(input_ids) + self.position_embedding(self.position_ids[:, : input_ids.shape[1]])


class TextTransformer(nn.Module):
    """``forward(input_ids, attention_mask)`` -> :class:`EncoderOutput`; pooler_output: the state at each row's
    first ``<eos>`` (HF ``CLIPTextTransformer`` with a configured ``eos_token_id``)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = TextEmbeddings(cfg)
        self.encoder = Encoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False, output_attentions=False):
        B, T = input_ids.shape
        x = self.embeddings(input_ids)
        neg = torch.finfo(x.dtype).min
        mask = torch.full((T, T), neg, dtype=x.dtype, device=x.device).triu(1)[None, None]  # causal (1, 1, T, T)
        if attention_mask is not None:  # padding keys are masked too
            mask = mask + (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * neg
            mask = mask.clamp(min=neg)
        x, states, attns = self.encoder(x, mask, output_hidden_states, output_attentions)
        x = self.final_layer_norm(x)
        eos = (input_ids == self.config.eos_token_id).int().argmax(dim=-1)  # first <eos> of each row
        return EncoderOutput(x, x[torch.arange(B, device=x.device), eos], states, attns)
