"""The reward model: a scalar head on a causal LM's backbone, trained with the Bradley-Terry loss.

InstructGPT's reward model is the SFT model with its output layer replaced by a linear map to one number,
read at the last token of ``prompt + response``. Trained on pairs, it only learns *differences*: under the
Bradley-Terry model ``P(chosen > rejected) = sigma(r_chosen - r_rejected)``, and the loss is the negative
log-likelihood of the observed preference,

    loss = -log sigma(r_c - r_r) = softplus(-(r_c - r_r)) = log(1 + exp(-(r_c - r_r))),

written with ``softplus`` because ``log(sigmoid(x))`` underflows to ``-inf`` for a margin of about -104 in
float32 (``sigmoid`` rounds to 0), while ``softplus`` stays exact for any margin.

:class:`RewardModel` keeps Hugging Face's names (``model.*`` for the backbone, ``score.weight`` for the head), so
its weights load into ``AutoModelForSequenceClassification`` (``num_labels=1``), which is what TRL's
``RewardTrainer`` trains.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float = 0.0,
                       reduction: str = "mean") -> torch.Tensor:
    """``-log sigma(r_c - r_r - margin)``, numerically stable; ``reduction``: "mean", "sum" or "none"."""
    losses = F.softplus(-(r_chosen - r_rejected - margin))
    return {"mean": losses.mean, "sum": losses.sum, "none": lambda: losses}[reduction]()


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """The share of pairs the reward model ranks as the rule does (a tie counts as half)."""
    return ((r_chosen > r_rejected).float() + 0.5 * (r_chosen == r_rejected).float()).mean().item()


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """The index of the last 1 of each row (right or left padding alike): (B, T) -> (B,)."""
    T = attention_mask.shape[1]
    return T - 1 - attention_mask.flip(1).long().argmax(1)


class RewardModel(nn.Module):
    """``score(backbone(ids)[last real token])``: one number per sequence."""

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.model = backbone  # e.g. LlamaModel: returns last_hidden_state (B, T, C)
        self.score = nn.Linear(hidden_size, 1, bias=False)
        nn.init.normal_(self.score.weight, std=1 / (hidden_size + 1) ** 0.5)

    @classmethod
    def from_causal_lm(cls, lm: nn.Module) -> "RewardModel":
        """The backbone of a Hugging Face causal LM (``lm.model``), without its output layer, plus a new head."""
        return cls(lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model, lm.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # right or left padding: real tokens count 0, 1, ...
        h = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=pos).last_hidden_state
        last = h[torch.arange(len(h)), last_token_index(attention_mask)]  # (B, C)
        return self.score(last).squeeze(-1).float()  # (B,)

    def score_pairs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_chosen, r_rejected) of a batch from :func:`llmlab.align.batches.encode_pairs`."""
        from .batches import concat_pairs

        ids, mask, _ = concat_pairs(batch)
        r = self(ids, mask)
        return r.chunk(2)
