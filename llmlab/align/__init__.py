"""Week 5: RLHF at CPU size. Checkable preference data, the reward model, PPO, DPO and GRPO from scratch.

- :mod:`~llmlab.align.preferences`: preference pairs ranked by the Week 4 task verifiers (TRL's format).
- :mod:`~llmlab.align.sampling`: batched, seeded sampling from a chat model.
- :mod:`~llmlab.align.batches`: pairs as padded token tensors with response masks.
- :mod:`~llmlab.align.logprobs`: per-token log-probs (shift, gather, mask), masked mean/whiten, entropy.
- :mod:`~llmlab.align.reward`: a scalar head on a causal LM, the Bradley-Terry loss.
- :mod:`~llmlab.align.dpo`: the DPO loss and its implicit rewards.
- :mod:`~llmlab.align.ppo`: KL estimators, reward shaping, GAE, the clipped policy and value losses.
- :mod:`~llmlab.align.grpo`: group-relative advantages and the GRPO loss.
- :mod:`~llmlab.align.train`: the loops (reward model, DPO, PPO with a critic) as functions.
- :mod:`~llmlab.align.constitution`: constitutional critique -> revision pairs, kept when the verifier agrees.
- :mod:`~llmlab.align.style`: a Shakespeare-style (or any style) classifier, P(style | text); Week 7 reuses it.
- :mod:`~llmlab.align.cli`: ``python -m llmlab.align``, reward model -> PPO and DPO in one command.
"""

from .batches import concat_pairs, encode_pairs
from .dpo import dpo_loss, pair_logprobs
from .grpo import group_advantages, grpo_loss
from .logprobs import (entropy_from_logits, masked_mean, masked_var, masked_whiten, response_logprobs,
                       sequence_logprob, token_logprobs)
from .ppo import gae, kl_estimate, policy_loss, shape_rewards, value_loss
from .preferences import (CORRUPTIONS, FAMILIES, corrupt, on_policy_pairs, preference_dataset, preference_pairs,
                          preference_splits, read_jsonl, write_jsonl)
from .reward import RewardModel, bradley_terry_loss, last_token_index, pairwise_accuracy
from .sampling import chat_sampler, generate
from . import constitution, style  # noqa: E402  (llmlab.align.style.score / train_style_classifier)

__all__ = [
    "CORRUPTIONS", "FAMILIES", "RewardModel", "bradley_terry_loss", "chat_sampler", "concat_pairs", "corrupt",
    "dpo_loss", "encode_pairs", "entropy_from_logits", "gae", "generate", "group_advantages", "grpo_loss",
    "kl_estimate", "last_token_index", "masked_mean", "masked_var", "masked_whiten", "on_policy_pairs", "pair_logprobs",
    "pairwise_accuracy", "policy_loss", "preference_dataset", "preference_pairs", "preference_splits",
    "read_jsonl", "response_logprobs", "sequence_logprob", "shape_rewards", "token_logprobs", "value_loss",
    "write_jsonl",
]
