"""Serving a vision-language model: OpenAI's image content parts in, a LLaVA-style VLM behind the Week 6 API.

A chat message's ``content`` may be a list of parts, as in OpenAI's API::

    {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0..."}},
        {"type": "text", "text": "What colour is the food?"}]}

:class:`VisionEngine` is the comparison backend of :mod:`.hf_backend` (``transformers.generate``, one request
per step) with a ``LlavaForConditionalGeneration``: the course's ``food-vlm`` from the zoo
(:func:`llmlab.vision.pretrained.food_vlm`) or any LLaVA folder. The API hands it the messages (:meth:`encode_chat`):

1. each image part is decoded (only ``data:`` URLs: the course machines reach no other host), resized to the
   vision tower's input size and normalised as the course images are (:func:`llmlab.vision.images.to_tensor`);
2. the parts become one string per message, an image as ``<image>\\n`` (the format the VLM was trained on,
   :func:`llmlab.vision.vlm.build_example`), and the chat template writes the prompt;
3. each ``<image>`` token is expanded into the model's N image tokens (``image_seq_length``), as
   ``LlavaProcessor`` does. The API, the async loop and the engine only pass token ids around, so an image
   travels as N copies of a *handle*, a negative id (``-1 - h``) that names the stored pixels: :meth:`add_request`
   swaps it back for ``<image>`` and attaches the pixels to the sequence, and ``generate`` gets them as
   ``pixel_values``. A request with ``n > 1`` reuses the same handle; old handles are evicted after
   ``max_images`` newer images.

Text-only models get the text parts joined (:func:`text_only`) and a clear 400 for an image part.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import json
import os
from collections import OrderedDict

import numpy as np
import torch

from .hf_backend import HFGenerateEngine
from .request import SamplingParams, Sequence

IMAGE_TOKEN = "<image>"
VISION_MODELS = ("food-vlm",)  # zoo names served by this backend (any folder with a "llava" config is too)


def text_only(messages: list[dict]) -> list[dict]:
    """Messages with list contents joined into strings, for a text-only model (an image part is a ValueError)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            if any(p.get("type") == "image_url" for p in content):
                raise ValueError("this model does not accept images (serve a vision-language model, e.g. food-vlm)")
            content = "".join(p.get("text") or "" for p in content)
        out.append({**m, "content": content})
    return out


def decode_image_url(url: str) -> np.ndarray:
    """``data:image/...;base64,...`` -> (H, W, 3) float32 in [0, 1] (PNG, JPEG, anything PIL reads)."""
    from PIL import Image

    if not url.startswith("data:"):
        raise ValueError("only data: URLs are accepted (data:image/png;base64,...): this server fetches nothing")
    head, _, data = url.partition(",")
    if ";base64" not in head:
        raise ValueError("the image data URL must be base64-encoded (data:image/png;base64,...)")
    try:
        raw = base64.b64decode(data, validate=True)
        img = Image.open(io.BytesIO(raw)).convert("RGB")
    except (binascii.Error, OSError, ValueError) as e:
        raise ValueError(f"the image could not be decoded: {e}") from None
    return np.asarray(img, dtype=np.float32) / 255


def encode_image(image: np.ndarray, fmt: str = "PNG") -> str:
    """(H, W, 3) floats in [0, 1] (or uint8) -> a ``data:image/png;base64,...`` URL (what a client sends)."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def resolve(model: str) -> str:
    """A zoo name of :data:`VISION_MODELS` (trained on the spot if missing) or a folder -> the folder."""
    if os.path.isdir(model):
        return model
    if model == "food-vlm":
        from ..vision.pretrained import food_vlm
        return str(food_vlm())
    raise ValueError(f"unknown vision model {model!r}; known: {', '.join(VISION_MODELS)} or a LLaVA folder")


def is_vision_model(model: str) -> bool:
    """Is ``model`` a zoo VLM name or a folder holding a LLaVA config?"""
    if model in VISION_MODELS:
        return True
    cfg = os.path.join(model, "config.json")
    if not os.path.isfile(cfg):
        return False
    with open(cfg, encoding="utf-8") as f:
        return json.load(f).get("model_type") == "llava"


class VisionEngine(HFGenerateEngine):
    """``LlavaForConditionalGeneration`` behind the engine interface; images arrive through :meth:`encode_chat`."""

    def __init__(self, model, tokenizer, max_images: int = 1024, max_model_len: int | None = None):
        cfg = model.config
        # default: the LM's text context plus one image's tokens (RoPE positions go on past the LM's training
        # length; the FAST course LM has 64 positions and its VLM 64 image tokens)
        super().__init__(model, tokenizer, max_model_len=max_model_len or
                         cfg.text_config.max_position_embeddings + cfg.image_seq_length)
        self.image_token_id = cfg.image_token_id
        self.num_image_tokens = cfg.image_seq_length
        self.image_size = cfg.vision_config.image_size
        self.max_images = max_images
        self._images: OrderedDict[int, torch.Tensor] = OrderedDict()  # handle -> (3, S, S) pixel values
        self._handles = itertools.count()

    @classmethod
    def from_pretrained(cls, model: str, dtype=torch.float32, device: str = "cpu", **kwargs) -> VisionEngine:
        from transformers import AutoTokenizer, LlavaForConditionalGeneration

        from ..zoo import _quiet_transformers

        path = resolve(model)
        with _quiet_transformers():
            m = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device).eval()
        return cls(m, AutoTokenizer.from_pretrained(path), **kwargs)

    # -- images ------------------------------------------------------------------------------------------------
    def pixel_values(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) in [0, 1] -> (3, S, S): resized to the tower's input, normalised like the course images."""
        from PIL import Image

        from ..vision.images import to_tensor

        if image.shape[:2] != (self.image_size, self.image_size):
            pil = Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8))
            image = np.asarray(pil.resize((self.image_size, self.image_size), Image.BILINEAR), dtype=np.float32) / 255
        return to_tensor(image)[0]

    def _store(self, pixels: torch.Tensor) -> int:
        h = next(self._handles)
        self._images[h] = pixels
        while len(self._images) > self.max_images:
            self._images.popitem(last=False)
        return -1 - h

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """OpenAI messages (string or content-part contents) -> prompt ids, each image as N handle ids."""
        texts, handles = [], []
        for m in messages:
            content = m["content"]
            if isinstance(content, list):
                pieces = []
                for part in content:
                    if part.get("type") == "image_url":
                        url = (part.get("image_url") or {}).get("url", "")
                        handles.append(self._store(self.pixel_values(decode_image_url(url))))
                        pieces.append(IMAGE_TOKEN + "\n")
                    else:
                        pieces.append(part.get("text") or "")
                content = "".join(pieces)
            elif IMAGE_TOKEN in content:
                raise ValueError(f"{IMAGE_TOKEN} in the text: send images as image_url content parts")
            texts.append({**m, "content": content})
        prompt = self.tokenizer.apply_chat_template(texts, tokenize=False, add_generation_prompt=True)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if ids.count(self.image_token_id) != len(handles):
            raise ValueError(f"{IMAGE_TOKEN} in the text: send images as image_url content parts")
        out, k = [], 0
        for t in ids:
            if t == self.image_token_id:
                out += [handles[k]] * self.num_image_tokens
                k += 1
            else:
                out.append(t)
        return out

    # -- the engine interface ----------------------------------------------------------------------------------
    def add_request(self, prompt_ids, params: SamplingParams | None = None, request_id: str | None = None) -> Sequence:
        pixels, ids, prev = [], [], None
        for t in prompt_ids:
            if t < 0 and t != prev:  # a new image: every image part got its own handle
                if -1 - t not in self._images:
                    raise ValueError("the request's image expired (too many images since): send it again")
                pixels.append(self._images[-1 - t])
            ids.append(self.image_token_id if t < 0 else t)
            prev = t
        seq = super().add_request(ids, params, request_id)
        seq.pixel_values = torch.stack(pixels) if pixels else None
        return seq

    def extra_inputs(self, seq: Sequence) -> dict:
        px = getattr(seq, "pixel_values", None)
        return {} if px is None else {"pixel_values": px.to(self.model.dtype)}
