"""Tokenizers, one file each.

- ``llmlab.tokenization.char`` -- :class:`CharTokenizer`: one token per character (Week 1, the zoo's char models).
- ``llmlab.tokenization.bpe``  -- Week 2: byte-level BPE from scratch (training, encoding, GPT-2 files).
- ``llmlab.tokenization.hf``   -- Week 2: the same with Hugging Face ``tokenizers``, and its ``transformers`` wrapper
  (``python -m llmlab.tokenization.hf``).

(The package is not called ``tokenizers``: that is the Hugging Face library these files import.)
"""
