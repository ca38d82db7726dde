"""LLM Lab: the course library.

One concept per module:

- ``llmlab.config``    -- FAST mode, the CPU/GPU tier, seeds, threads.
- ``llmlab.data``      -- finding and loading the course corpora.
- ``llmlab.testing``   -- assertion helpers that test cells use (clear failure messages).
- ``llmlab.plotting``  -- the figures the notebooks draw.
- ``llmlab.attention`` -- Week 1 reference: attention, positional encoding, multi-head attention.
- ``llmlab.model``     -- Week 1 reference: the GPT (GPT-2 parameter names).
- ``llmlab.train``     -- Week 1 reference: the char-level training loop.

Week N notebooks import the finished code of weeks < N from here instead of copying it.
"""

__version__ = "0.1.0"
