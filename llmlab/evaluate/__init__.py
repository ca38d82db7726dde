"""The Week 7 evaluation report: every metric of the week over chosen models, in one command.

::

    python -m llmlab.evaluate --models llama-base shakespeare-bpe --out report/
    python -m llmlab.evaluate --models /path/to/hf-folder "openai:llama-chat@http://localhost:8000/v1" --out report/

A model is a zoo name, a Hugging Face model folder, or ``openai:<model>@<base_url>`` (an OpenAI-compatible
endpoint: the Week 6 server, vLLM, a hosted model). The report (``report.md``, ``report.html`` with the figures
embedded, ``results.json``) holds: perplexity and bits per byte on held-out Tiny Shakespeare and 全唐诗, BLEU and
ROUGE-L per task, MMLU per subject (log-likelihood, 5-shot), verifier pass rates on the course tasks, an arena
leaderboard (Bradley-Terry with bootstrap intervals, verifier-judged battles) and generation speed. Metrics that
need log-probabilities (perplexity, MMLU) are skipped for endpoints, and the report says so.
"""

from .report import ModelHandle, evaluate_models, load_model, write_report

__all__ = ["ModelHandle", "load_model", "evaluate_models", "write_report"]
