"""The learning-rate schedule of every course training run: linear warm-up, then cosine decay.

One formula for the whole course (Week 2's graded ``lr_at``, nanoGPT's ``get_lr``); a
:class:`llmlab.train.TrainConfig` turns its fields into these arguments (``TrainConfig.lr_at``).
"""

from __future__ import annotations

import math


def lr_at(step: int, max_lr: float, min_lr: float, warmup: int, total: int) -> float:
    """Learning rate before optimizer step ``step`` (0-based): linear warmup, then cosine decay.

    - ``step < warmup``: ``max_lr * (step + 1) / warmup`` (the first step already moves; the last
      warmup step reaches ``max_lr``);
    - ``warmup <= step < total``: ``min_lr + (max_lr - min_lr) * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2``
      (``max_lr`` at ``step == warmup``, half-way at the middle);
    - ``step >= total``: ``min_lr`` (where the cosine ends, and for any step beyond).
    """
    if warmup < 0 or total < warmup:
        raise ValueError(f"need 0 <= warmup <= total, got warmup={warmup}, total={total}")
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / (total - warmup)  # in [0, 1)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
