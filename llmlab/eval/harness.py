"""An adapter to EleutherAI's lm-evaluation-harness (``lm-eval``): the course models as an ``lm_eval`` LM, and
MMLU as a *local* task (the task YAML points at the CSV files, so no dataset hub is needed).

lm-eval turns every task into three kinds of requests and asks the model only these:

- ``loglikelihood(context, continuation)`` -> ``(log p(continuation | context), is_greedy)``: multiple choice;
- ``loglikelihood_rolling(text)`` -> the log-likelihood of a whole text (perplexity tasks);
- ``generate_until(context, {"until": [...], "max_gen_toks": n})`` -> a generated string.

:class:`CourseLM` answers them with a Hugging Face causal LM (any folder: a zoo model or a real 8B model) and
our scoring code, so ``lm_eval.simple_evaluate(model=CourseLM(...), tasks=[...])`` runs lm-eval's prompt
building, few-shot sampling and metrics on top of it: an independent check of our MMLU harness.

::

    task_dir = write_mmlu_tasks("/tmp/tasks", subjects=["astronomy"])       # YAMLs pointing at the CSVs
    out = run_lm_eval(CourseLM(model, tok), task_dir, ["mmlu_local_astronomy"], limit=20)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .mmlu import continuation_logprob, encode_pair
from .perplexity import token_nlls

_TEMPLATE = """task: mmlu_local_{subject}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {test}
    dev: {dev}
  column_names: [question, A, B, C, D, answer]
  cache_dir: {cache}
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
num_fewshot: 5
output_type: multiple_choice
description: "The following are multiple choice questions (with answers) about {pretty}.\\n\\n"
doc_to_text: "{{{{question}}}}\\nA. {{{{A}}}}\\nB. {{{{B}}}}\\nC. {{{{C}}}}\\nD. {{{{D}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(answer)}}}}"
target_delimiter: " "
fewshot_delimiter: "\\n\\n"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_mmlu_tasks(out_dir: str | os.PathLike, subjects: list[str], data_root: str | os.PathLike | None = None) -> Path:
    """One lm-eval task YAML per subject (``mmlu_local_<subject>``), reading ``<data_root>/{dev,test}/*.csv``.

    The ``datasets`` cache of the converted CSV files goes to ``out_dir/.datasets-cache`` (not ``~/.cache``):
    delete ``out_dir`` and nothing is left behind.

    The format is the original MMLU prompt, byte for byte the one :func:`llmlab.eval.mmlu.build_prompt` writes
    (the question is not stripped, as lm-eval's own ``mmlu`` task does); lm-eval joins the shots as
    ``doc_to_text + target_delimiter + target + fewshot_delimiter``. The real download path stays with
    :func:`llmlab.data.find` (``data_root=None``): the shared folder, the cache, or the public source.
    """
    from ..data import find

    root = Path(data_root) if data_root is not None else find("mmlu")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s in subjects:
        text = _TEMPLATE.format(subject=s, pretty=" ".join(s.split("_")), test=root / "test" / f"{s}_test.csv",
                                dev=root / "dev" / f"{s}_dev.csv", cache=out / ".datasets-cache")
        (out / f"mmlu_local_{s}.yaml").write_text(text, encoding="utf-8")
    return out


def _lm_base():
    from lm_eval.api.model import LM

    return LM


class CourseLM(_lm_base()):
    """An ``lm_eval.api.model.LM`` over a causal LM (``model(ids)`` -> logits) and its Hugging Face tokenizer."""

    def __init__(self, model, tokenizer, max_length: int | None = None, max_gen_toks: int = 64):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        cfg = getattr(model, "config", None)
        self.max_length = max_length or getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "block_size", 1024)
        self.max_gen_toks = max_gen_toks

    def loglikelihood(self, requests, disable_tqdm: bool = True):
        out = []
        for req in requests:
            context, continuation = req.args
            ctx, cont = encode_pair(self.tokenizer, context, continuation)
            if not ctx:  # lm-eval's rule: an empty context is the end-of-text token
                ctx = [self.tokenizer.eos_token_id]
            out.append(continuation_logprob(self.model, ctx, cont, self.max_length))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = True):
        out = []
        for req in requests:
            ids = [self.tokenizer.eos_token_id] + self.tokenizer(req.args[0], add_special_tokens=False)["input_ids"]
            out.append(-float(token_nlls(self.model, torch.tensor(ids), self.max_length,
                                         max(1, self.max_length // 2)).sum()))
        return out

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = True):
        from .perplexity import logits_of

        out = []
        for req in requests:
            context, kw = req.args
            until = kw.get("until") or [self.tokenizer.eos_token]
            ids = self.tokenizer(context, add_special_tokens=False)["input_ids"]
            new: list[int] = []
            for _ in range(kw.get("max_gen_toks", self.max_gen_toks)):
                window = torch.tensor((ids + new)[-self.max_length:]).view(1, -1)
                nxt = int(logits_of(self.model, window)[0, -1].argmax())
                if nxt == self.tokenizer.eos_token_id:
                    break
                new.append(nxt)
                text = self.tokenizer.decode(new)
                if any(u in text for u in until):
                    break
            text = self.tokenizer.decode(new)
            for u in until:
                text = text.split(u)[0]
            out.append(text)
        return out


def run_lm_eval(lm, task_dir: str | os.PathLike, tasks: list[str], limit: int | None = None, num_fewshot: int = 5):
    """``lm_eval.simple_evaluate`` on local task YAMLs, samples logged (``out["samples"][task]``)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_dir))
    return simple_evaluate(model=lm, tasks=tasks, num_fewshot=num_fewshot, limit=limit, task_manager=tm,
                           log_samples=True, bootstrap_iters=0, random_seed=0, numpy_random_seed=0,
                           torch_random_seed=0, fewshot_random_seed=0)


__all__ = ["write_mmlu_tasks", "CourseLM", "run_lm_eval"]
