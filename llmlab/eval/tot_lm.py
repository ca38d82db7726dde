"""A causal language model as the Tree of Thoughts proposer and evaluator, on the Game of 24.

:class:`LMThinker` has the interface of the simulated model of Week 7's notebook 6 (``step``, ``propose``,
``value``, the game as ``.g``), so the same CoT, self-consistency and BFS code runs on a real model:

- **propose** (one call per sampled step): the prompt shows the numbers left; every *legal* next step
  ``"a op b = c"`` (:func:`llmlab.eval.tot.combine`) is scored by its log-likelihood as the assistant's reply, and
  one is sampled from the softmax of those scores at ``temperature``. Restricting the model to legal steps is the
  constrained decoding a grammar gives a real model; which step it picks is the model's choice.
- **value** (one call per state): the paper's value prompt, reduced to its verdict: the model's probability of
  answering ``sure`` rather than ``impossible`` to "can these numbers still make 24?".

A model that knows nothing about arithmetic picks steps near uniformly and values near 0.5: then ToT is no better
than sampling, which is what the course's 2M-parameter chat model shows. The same class runs any Hugging Face causal
LM with a chat template.
"""

from __future__ import annotations

import math
import random

import torch

from .tot import Game24, State24, _fmt, combine

__all__ = ["LMThinker", "option_logprobs"]


@torch.no_grad()
def option_logprobs(model, tok, prompt: str, options: list[str]) -> list[float]:
    """Sum of log p(option tokens | prompt) for each option, in one padded batch."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    outs = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    L = len(p) + max(len(o) for o in outs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(options), L), pad, dtype=torch.long)
    mask = torch.zeros(len(options), L, dtype=torch.long)
    for i, o in enumerate(outs):
        ids[i, : len(p) + len(o)] = torch.tensor(p + o)
        mask[i, : len(p) + len(o)] = 1
    logp = model(input_ids=ids, attention_mask=mask).logits.log_softmax(-1)
    scores = []
    for i, o in enumerate(outs):  # logits at t predict token t + 1
        pos = torch.arange(len(p) - 1, len(p) - 1 + len(o))
        scores.append(logp[i, pos, torch.tensor(o)].sum().item())
    return scores


class LMThinker:
    """``step``/``propose``/``value`` for :class:`llmlab.eval.tot.Game24`, answered by ``model`` (HF causal LM)."""

    def __init__(self, model, tok, game: Game24, rng: random.Random, temperature: float = 1.0):
        self.model, self.tok, self.g, self.rng, self.t = model.eval(), tok, game, rng, temperature

    def _chat(self, text: str) -> str:
        return self.tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                            add_generation_prompt=True)

    def step(self, s: State24) -> State24:
        kids = combine(s.numbers)
        nums = " ".join(_fmt(x) for x in s.numbers)
        prompt = self._chat(f"Use the numbers {nums} to make 24 with + - * /. Write the next step.")
        scores = option_logprobs(self.model, self.tok, prompt, [step for _, step in kids])
        m = max(scores)
        weights = [math.exp((x - m) / self.t) for x in scores]
        new, step = self.rng.choices(kids, weights=weights)[0]
        return State24(new, s.steps + (step,))

    def propose(self, s: State24, b: int = 3) -> list[State24]:
        return [self.step(s) for _ in range(b)] if len(s.numbers) > 1 else []

    def value(self, s: State24) -> float:
        nums = " ".join(_fmt(x) for x in s.numbers)
        prompt = self._chat(f"Can the numbers {nums} still make 24 with + - * /? Answer sure or impossible.")
        sure, impossible = option_logprobs(self.model, self.tok, prompt, ["sure", "impossible"])
        return 1.0 / (1.0 + math.exp(impossible - sure))
