"""Tiny random-weight models of every architecture the server supports, and a tiny tokenizer with a chat template.

For tests and notebooks: ``tiny_model_dir("qwen2", folder)`` writes a Hugging Face folder (config, weights,
tokenizer) that ``python -m llmlab.serve --model folder`` serves like any checkpoint. The weights are
random (``initializer_range`` 0.2, so the logits are peaked enough that greedy decoding is not decided by
rounding noise); the tokenizer is a byte-level BPE trained in milliseconds on a few lines, with the
course's chat tokens and template (the same format as the zoo's llama models).
"""

from __future__ import annotations

import os

import torch

ARCHS = ("llama", "mistral", "qwen2", "gpt2")  # and tiny_vlm_dir: a LLaVA (CLIP tower + Llama)

CHAT_TEMPLATE = (
    "{%- for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{ '<|assistant|>\n' }}{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
_TEXT = """To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer
the slings and arrows of outrageous fortune, or to take arms against a sea of troubles.
O Romeo, Romeo, wherefore art thou Romeo? Deny thy father and refuse thy name.
床前明月光，疑是地上霜。举头望明月，低头思故乡。 def add(a, b): return a + b  12 + 30 = 42"""


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with the chat tokens and template (ids 0..5 are SPECIALS)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_TEXT.splitlines() * 4, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                 additional_special_tokens=SPECIALS[2:])
    hf.chat_template = CHAT_TEMPLATE
    return hf


def tiny_config(arch: str, vocab_size: int, **overrides):
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  initializer_range=0.2, bos_token_id=0, eos_token_id=[0, 5], pad_token_id=1)
    if arch == "llama":
        cfg = tf.LlamaConfig(**common)
    elif arch == "mistral":
        cfg = tf.MistralConfig(**common, sliding_window=None)
    elif arch == "qwen2":
        cfg = tf.Qwen2Config(**common)
    elif arch == "gpt2":
        cfg = tf.GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                            initializer_range=0.2, bos_token_id=0, eos_token_id=0, pad_token_id=1)
    else:
        raise ValueError(f"unknown architecture {arch!r}; supported: {', '.join(ARCHS)}")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def tiny_model(arch: str, vocab_size: int = 320, seed: int = 0, **overrides):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(arch, vocab_size, **overrides)).eval()


def tiny_model_dir(arch: str, path: str | os.PathLike, seed: int = 0, **overrides) -> str:
    """Write a tiny random ``arch`` model and the tiny tokenizer into ``path``; return the path."""
    tok = tiny_tokenizer()
    model = tiny_model(arch, len(tok), seed, **overrides)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def tiny_vlm_dir(path: str | os.PathLike, image_size: int = 16, patch_size: int = 4, seed: int = 0) -> str:
    """A tiny random ``LlavaForConditionalGeneration`` (CLIP vision tower, Llama LM) with the tiny tokenizer plus
    an ``<image>`` token, in ``path``: what the vision server's tests serve. Returns the path."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    tok = tiny_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[2:] + ["<image>"]})
    image_id = tok.convert_tokens_to_ids("<image>")
    n_img = (image_size // patch_size) ** 2
    vision = dict(model_type="clip_vision_model", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2, image_size=image_size, patch_size=patch_size, initializer_range=0.2)
    cfg = LlavaConfig(vision_config=vision, text_config=tiny_config("llama", len(tok)).to_dict(),
                      image_token_id=image_id, image_seq_length=n_img, vision_feature_layer=-1,
                      vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = [0, 5], 1
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
