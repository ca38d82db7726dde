"""Training: the one loop every course run goes through, and its pieces.

- ``llmlab.train.config``   -- :class:`TrainConfig`, the one training configuration (files, ``--set`` overrides).
- ``llmlab.train.schedule`` -- :func:`lr_at`: linear warm-up, then cosine decay (the only schedule).
- ``llmlab.train.optim``    -- Week 2 from scratch: ``cross_entropy``, ``AdamW``, ``clip_grad_norm``; the one
  weight-decay rule (``param_groups``) and ``make_optimizer``.
- ``llmlab.train.batches``  -- token files (uint16 memmaps), :func:`get_batch`, ``RandomWindows``, ``prepare_dataset``
  (``python -m llmlab.train.batches``).
- ``llmlab.train.trainer``  -- :class:`Trainer` (``model=``, ``batches=``, ``loss_fn=``, ``eval_sets=``, callbacks;
  checkpoints that resume bit for bit) and :func:`train`, Week 1's one-call run on token tensors.
- ``llmlab.train.simple``   -- Week 1's char-level pipeline in one import (tokenizer, batches, ``estimate_loss``,
  ``split_loss``, ``train``).
- ``llmlab.train.cli``      -- ``python -m llmlab.train.cli CONFIG.json``: the trainer from the command line.

``from llmlab.train import Trainer, TrainConfig, train, get_batch, lr_at`` works; the sub-modules load when
first used (so that ``python -m llmlab.train.cli`` does not import itself twice).
"""

import importlib

_EXPORTS = {
    "TrainConfig": "config", "ConfigError": "config", "lr_at": "schedule", "get_batch": "batches",
    "RandomWindows": "batches", "Trainer": "trainer", "Callback": "trainer", "train": "trainer",
    "causal_lm_loss": "trainer", "make_optimizer": "optim", "param_groups": "optim",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
