"""Direct Preference Optimization (Rafailov et al., 2023): the RLHF objective without a reward model or RL.

The KL-regularised RLHF objective ``max E[r] - beta KL(pi || pi_ref)`` has the closed-form optimum
``pi*(y|x) ∝ pi_ref(y|x) exp(r(x, y) / beta)``; solved for ``r``, the reward is ``beta log(pi/pi_ref)`` plus a
term that depends only on the prompt, which cancels in a Bradley-Terry comparison. So the reward-model loss,
written with this *implicit reward*, trains the policy directly:

    h = [log pi(y_c|x) - log pi_ref(y_c|x)] - [log pi(y_r|x) - log pi_ref(y_r|x)]
    loss = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)

``eps`` is label smoothing (conservative DPO: each label is taken to be wrong with probability eps); with
``eps = 0`` this is TRL's ``loss_type="sigmoid"``. The log-probs are *sums* over the response tokens
(:func:`llmlab.align.logprobs.sequence_logprob`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1, label_smoothing: float = 0.0):
    """Per-pair losses (B,), and the implicit rewards ``beta (log pi - log pi_ref)`` of chosen and rejected."""
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    logits = beta * (chosen_ratio - rejected_ratio)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def pair_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(chosen|prompt), log pi(rejected|prompt) of a batch from :func:`llmlab.align.batches.encode_pairs`,
    in one forward pass over the chosen and rejected rows."""
    from .batches import concat_pairs
    from .logprobs import sequence_logprob

    ids, mask, resp = concat_pairs(batch)
    logits = model(input_ids=ids, attention_mask=mask).logits
    return sequence_logprob(logits, ids, resp).chunk(2)
