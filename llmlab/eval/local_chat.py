"""An in-process stand-in for an OpenAI-compatible chat endpoint, over a local Hugging Face causal LM.

``LocalChat(path).chat.completions.create(model=..., messages=[...], stop=[...], max_tokens=..., temperature=...)``
has the signature and the reply shape (``.choices[0].message.content``) of the ``openai`` client, so code written
for ``openai.OpenAI(base_url=...)`` (the Week 6 server, vLLM, a hosted model) runs unchanged on a zoo model without
a server. The messages are rendered with the tokenizer's chat template; the prompt is cut on the left to fit the
model's window; ``temperature=0`` is greedy decoding; each stop sequence cuts the text where it first occurs.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch


class LocalChat:
    def __init__(self, path, seed: int = 0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(path)
        self.tok.model_max_length = 10**6  # prompts are cut here, to the window
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        cfg = self.model.config
        self.window = getattr(cfg, "max_position_embeddings", None) or cfg.n_positions
        self.seed = seed
        self.chat = SimpleNamespace(completions=self)

    @torch.no_grad()
    def create(self, model=None, messages=(), stop=None, max_tokens: int = 64, temperature: float = 0.0, **kw):
        prompt = self.tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        max_tokens = min(max_tokens, self.window // 2)
        ids = self.tok(prompt, add_special_tokens=False)["input_ids"][-(self.window - max_tokens):]
        sample = temperature > 0
        if sample:
            torch.manual_seed(self.seed)
        out = self.model.generate(torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=sample,
                                  temperature=temperature if sample else None, top_k=50 if sample else None,
                                  pad_token_id=self.tok.pad_token_id,
                                  eos_token_id=self.model.generation_config.eos_token_id or self.tok.eos_token_id)
        text = self.tok.decode(out[0, len(ids):], skip_special_tokens=True)
        for s in stop or []:
            text = text.split(s)[0]
        msg = SimpleNamespace(role="assistant", content=text)
        return SimpleNamespace(choices=[SimpleNamespace(index=0, message=msg, finish_reason="stop")],
                               model=model, usage=SimpleNamespace(prompt_tokens=len(ids),
                                                                  completion_tokens=out.shape[1] - len(ids)))


__all__ = ["LocalChat"]
