"""Collect the week's metrics for a list of models and write the report (Markdown, HTML, JSON).

Sizes: ``fast`` (tests, CI: a few examples per metric, about a minute for the course models) and ``full``
(a learner's run: thousands of characters, 10 MMLU subjects x 20 questions, 20 prompts per task).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

SIZES = {"fast": dict(ppl_chars=600, n_task=3, mmlu_subjects=3, mmlu_q=3, max_new=24, rounds=20),
         "full": dict(ppl_chars=20000, n_task=20, mmlu_subjects=10, mmlu_q=20, max_new=64, rounds=200)}


@dataclass
class ModelHandle:
    """A model to evaluate: a local causal LM (``model``, ``tokenizer``) or an endpoint (``client``, ``remote``)."""

    name: str
    model: object = None
    tokenizer: object = None
    window: int = 0
    client: object = None
    remote: str | None = None  # the model name at the endpoint
    chat: bool = False  # a chat model: instructions go through its chat template
    stats: dict = field(default_factory=lambda: {"tokens": 0, "seconds": 0.0})

    @property
    def local(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def generate(self, prompt: str, max_new: int, seed: int = 0, instruction: bool = False) -> str:
        """A continuation of ``prompt`` (sampled at temperature 0.7, seeded; endpoints: temperature 0.7 too).
        ``instruction``: the prompt is a user's request; a chat model then sees it through its chat template."""
        t0 = time.perf_counter()
        if not self.local:
            r = self.client.chat.completions.create(model=self.remote, messages=[{"role": "user", "content": prompt}],
                                                    max_tokens=max_new, temperature=0.7)
            text = r.choices[0].message.content or ""
            n = getattr(getattr(r, "usage", None), "completion_tokens", None) or len(text.split())
        else:
            tok = self.tokenizer
            if instruction and self.chat:
                prompt = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)
            max_new = min(max_new, self.window // 2)
            ids = tok(prompt, add_special_tokens=False)["input_ids"][-(self.window - max_new):]
            torch.manual_seed(seed)
            out = self.model.generate(torch.tensor([ids]), max_new_tokens=max_new, do_sample=True, temperature=0.7,
                                      top_k=50, pad_token_id=tok.pad_token_id,
                                      eos_token_id=self.model.generation_config.eos_token_id or tok.eos_token_id)
            n = out.shape[1] - len(ids)
            text = tok.decode(out[0, len(ids):], skip_special_tokens=True)
        self.stats["tokens"] += n
        self.stats["seconds"] += time.perf_counter() - t0
        return text.strip()


def load_model(spec: str) -> ModelHandle:
    """A zoo name, a Hugging Face folder, or ``openai:<model>@<base_url>``."""
    if spec.startswith("openai:"):
        from openai import OpenAI

        remote, _, url = spec[len("openai:"):].partition("@")
        return ModelHandle(spec, client=OpenAI(base_url=url or None, api_key=os.environ.get("OPENAI_API_KEY", "none")),
                           remote=remote)
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .. import zoo

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    is_dir = Path(spec).is_dir()
    path = Path(spec) if is_dir else zoo.pretrained(spec, log=lambda *a: None)
    tok = AutoTokenizer.from_pretrained(path)
    tok.model_max_length = 10**7
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    window = getattr(model.config, "n_positions", None) or model.config.max_position_embeddings
    chat = tok.chat_template is not None if is_dir else zoo.MODELS[spec].arch == "chat"
    return ModelHandle(Path(spec).name if is_dir else spec, model=model, tokenizer=tok, window=window, chat=chat)


# ------------------------------------------------------------------------------------------ the metrics


def _heldout(n_chars: int) -> dict:
    from .. import zoo
    from ..data import load_text

    en = load_text("tinyshakespeare")
    poems = zoo.tang_poems(zoo.clean_tang(load_text("quantangshi")))
    return {"Tiny Shakespeare": en[int(0.9 * len(en)):][:n_chars],
            "Tang poetry": "".join(p + "\n\n" for i, p in enumerate(poems) if i % 10 == 9)[:n_chars]}


def perplexity_metrics(h: ModelHandle, size: dict) -> dict:
    from ..eval.perplexity import text_metrics

    out = {}
    for corpus, text in _heldout(size["ppl_chars"]).items():
        ids = h.tokenizer(text, add_special_tokens=False)["input_ids"]
        if h.tokenizer.unk_token_id is not None and h.tokenizer.unk_token_id in ids:
            out[corpus] = None  # characters outside the vocabulary
            continue
        out[corpus] = text_metrics(h.model, h.tokenizer, text, h.window, max(1, h.window // 2), h.tokenizer.eos_token_id)
    return out


def _task_prompts(size: dict) -> dict:
    from .. import tasks, zoo
    from ..data import load_text

    n = size["n_task"]
    poems = [p.split("\n") for i, p in enumerate(zoo.tang_poems(zoo.clean_tang(load_text("quantangshi")))) if i % 10 == 9]
    poems = [p for p in poems if len(p) >= 4][:n]
    return {"continuation": [(e.prompt.split("\n\n", 1)[1], e.response) for e in tasks.generate("shakespeare", "test", n)],
            "Tang next line": [("\n".join(p[:3]) + "\n", p[3]) for p in poems],
            "food": [(e.prompt, e.response) for e in tasks.generate("food", "test", 4 * n) if e.lang == "en"][:n]}


def overlap_metrics(h: ModelHandle, size: dict, seed: int) -> dict:
    from ..eval.bleu import corpus_bleu
    from ..eval.rouge import char_tokens, rouge, tokens

    out = {}
    for task, rows in _task_prompts(size).items():
        zh = task.startswith("Tang")
        hyps = [h.generate(p, size["max_new"], seed + i, instruction=task == "food").lstrip().split("\n")[0]
                for i, (p, _) in enumerate(rows)]
        refs = [[r] for _, r in rows]
        rl = [rouge(r[0], y, tokenize=char_tokens if zh else tokens)["rougeL"][2] for y, r in zip(hyps, refs)]
        out[task] = {"bleu": corpus_bleu(hyps, refs, tokenize="zh" if zh else "13a").score,
                     "rougeL": 100 * sum(rl) / len(rl), "n": len(rows)}
    return out


def mmlu_metrics(h: ModelHandle, size: dict) -> dict:
    from ..data import load_mmlu
    from ..eval import mmlu

    test, dev = load_mmlu("test"), load_mmlu("dev")
    subjects = sorted({r["subject"] for r in test})
    subjects = subjects[:: max(1, len(subjects) // size["mmlu_subjects"])][: size["mmlu_subjects"]]
    rows = [r for s in subjects for r in [x for x in test if x["subject"] == s][: size["mmlu_q"]]]
    res = mmlu.evaluate(h.model, h.tokenizer, rows, [d for d in dev if d["subject"] in subjects], max_length=h.window)
    s = mmlu.summarize(res)
    return {"macro": s["macro"], "macro_ci": s["macro_ci"], "n": s["n"],
            "subjects": {k: v["acc"] for k, v in s["subjects"].items()}}


def verifier_answers(h: ModelHandle, size: dict, seed: int) -> dict:
    """``{(task, i): (score, passed)}`` on the course tasks (prompts as a user would write them)."""
    from .. import tasks

    out = {}
    for task in ("shakespeare", "jueju", "food", "arithmetic"):
        for i, ex in enumerate(tasks.generate(task, "test", size["n_task"], seed=seed)):
            v = tasks.verify(ex, h.generate(ex.prompt + ("" if h.chat else "\n"), size["max_new"], seed + i,
                                            instruction=True))
            out[task, i] = (v.score, v.passed)
    return out


def evaluate_models(specs: list[str], size: str = "fast", seed: int = 0, log=print) -> dict:
    """Every metric for every model; the arena across them. Returns a JSON-ready dict."""
    from ..eval.arena import bootstrap, bradley_terry

    sz = SIZES[size]
    results = {"size": size, "models": {}, "notes": []}
    answers = {}
    for spec in specs:
        t0 = time.perf_counter()
        h = load_model(spec)
        r = {"kind": "local" if h.local else "endpoint"}
        if h.local:
            r["perplexity"] = perplexity_metrics(h, sz)
            r["mmlu"] = mmlu_metrics(h, sz)
        else:
            results["notes"].append(f"{h.name}: perplexity and MMLU need log-probabilities, skipped for an endpoint")
        r["overlap"] = overlap_metrics(h, sz, seed)
        answers[h.name] = verifier_answers(h, sz, seed)
        by_task = {}
        for (task, _), (score, passed) in answers[h.name].items():
            by_task.setdefault(task, []).append((score, passed))
        r["verifiers"] = {t: {"score": sum(s for s, _ in v) / len(v), "pass": sum(p for _, p in v) / len(v)}
                          for t, v in by_task.items()}
        r["speed_tokens_per_s"] = h.stats["tokens"] / max(h.stats["seconds"], 1e-9)
        r["wall_s"] = time.perf_counter() - t0
        results["models"][h.name] = r
        log(f"[report] {h.name}: done in {r['wall_s']:.1f} s")
    names = list(answers)
    battles = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for key in answers[a]:
                sa, sb = answers[a][key][0], answers[b][key][0]
                battles.append((a, b, "model_a" if sa > sb else "model_b" if sb > sa else "tie"))
    if len(names) >= 2:
        ratings = bradley_terry(battles)
        ci = bootstrap(battles, rounds=sz["rounds"], seed=seed)
        results["arena"] = {m: {"rating": ratings[m], "ci": [ci[m][0], ci[m][2]]} for m in names}
        results["arena_battles"] = len(battles)
    else:
        results["notes"].append("the arena needs at least two models")
    return results


# ------------------------------------------------------------------------------------------ writing


def _figure_png(results: dict) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = {}
    names = list(results["models"])

    def save(fig, key):
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        figs[key] = base64.b64encode(buf.getvalue()).decode()

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for j, corpus in enumerate(("Tiny Shakespeare", "Tang poetry")):
        vals = [(results["models"][m].get("perplexity") or {}).get(corpus) for m in names]
        axes[j].bar(range(len(names)), [v["bits_per_byte"] if v else 0 for v in vals])
        axes[j].set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        axes[j].set(title=f"bits per byte, held-out {corpus} (lower is better)")
    tasks_ = list(next(iter(results["models"].values()))["overlap"])
    for k, m in enumerate(names):
        axes[2].bar([i + 0.8 * k / len(names) for i in range(len(tasks_))],
                    [results["models"][m]["overlap"][t]["rougeL"] for t in tasks_], width=0.8 / len(names), label=m)
    axes[2].set_xticks(range(len(tasks_)), tasks_, fontsize=8)
    axes[2].set(title="ROUGE-L F x 100 per task")
    axes[2].legend(fontsize=7)
    save(fig, "metrics")
    if "arena" in results:
        board = sorted(results["arena"], key=lambda m: -results["arena"][m]["rating"])
        fig, ax = plt.subplots(figsize=(6, 3.2))
        r = [results["arena"][m]["rating"] for m in board]
        lo = [x - results["arena"][m]["ci"][0] for m, x in zip(board, r)]
        hi = [results["arena"][m]["ci"][1] - x for m, x in zip(board, r)]
        ax.errorbar(range(len(board)), r, yerr=[lo, hi], fmt="o", capsize=4)
        ax.set_xticks(range(len(board)), board, rotation=20, fontsize=8)
        ax.set(ylabel="Bradley-Terry rating", title="arena (verifier-judged, bootstrap 95 % CI)")
        save(fig, "arena")
    return figs


def _markdown(results: dict, images: dict | None) -> str:
    names = list(results["models"])
    L = [f"# Evaluation report ({results['size']} size)", "",
         f"Models: {', '.join(names)}. Metrics as in Week 7 of LLM Lab (`llmlab.eval`).", ""]
    L += ["## Summary", ""]
    best = {}
    for corpus in ("Tiny Shakespeare", "Tang poetry"):
        scored = [(results["models"][m]["perplexity"][corpus]["bits_per_byte"], m) for m in names
                  if (results["models"][m].get("perplexity") or {}).get(corpus)]
        if scored:
            best[corpus] = min(scored)
    for corpus, (v, m) in best.items():
        L.append(f"- Lowest bits per byte on held-out {corpus}: **{m}** ({v:.3f}).")
    if "arena" in results:
        top = max(results["arena"], key=lambda m: results["arena"][m]["rating"])
        L.append(f"- Arena leader (verifier-judged, {results['arena_battles']} battles): **{top}**.")
    mm = [(results["models"][m]["mmlu"]["macro"], m) for m in names if "mmlu" in results["models"][m]]
    if mm:
        v, m = max(mm)
        L.append(f"- Best MMLU macro accuracy: **{m}** ({v:.1%}; chance is 25 %: small models sit there).")
    L += [f"- Note: {n}" for n in results["notes"]] + [""]
    L += ["## Perplexity (held-out text)", "", "| model | text | nats/token | ppl | bits/byte | bits/char |",
          "| --- | --- | --- | --- | --- | --- |"]
    for m in names:
        for corpus, v in (results["models"][m].get("perplexity") or {}).items():
            L.append(f"| {m} | {corpus} | " + (" | ".join(f"{v[k]:.3f}" if k != "ppl" else f"{v[k]:.1f}" for k in
                     ("nats_per_token", "ppl", "bits_per_byte", "bits_per_char")) if v else "n/a (outside vocabulary) | | |") + " |")
    L += ["", "## BLEU / ROUGE-L per task", "", "| model | task | BLEU | ROUGE-L F x100 | n |", "| --- | --- | --- | --- | --- |"]
    for m in names:
        for t, v in results["models"][m]["overlap"].items():
            L.append(f"| {m} | {t} | {v['bleu']:.1f} | {v['rougeL']:.1f} | {v['n']} |")
    L += ["", "## MMLU (5-shot, log-likelihood of the letter)", "", "| model | macro | 95 % CI | questions | per subject |",
          "| --- | --- | --- | --- | --- |"]
    for m in names:
        v = results["models"][m].get("mmlu")
        if v:
            subj = ", ".join(f"{s} {a:.0%}" for s, a in v["subjects"].items())
            L.append(f"| {m} | {v['macro']:.1%} | {v['macro_ci'][0]:.1%} .. {v['macro_ci'][1]:.1%} | {v['n']} | {subj} |")
    L += ["", "## Verifier pass rates (course tasks)", "", "| model | task | mean score | pass rate |", "| --- | --- | --- | --- |"]
    for m in names:
        for t, v in results["models"][m]["verifiers"].items():
            L.append(f"| {m} | {t} | {v['score']:.2f} | {v['pass']:.0%} |")
    if "arena" in results:
        L += ["", "## Arena leaderboard", "", "| rank | model | rating | 95 % CI |", "| --- | --- | --- | --- |"]
        for k, m in enumerate(sorted(results["arena"], key=lambda m: -results["arena"][m]["rating"]), 1):
            a = results["arena"][m]
            L.append(f"| {k} | {m} | {a['rating']:.0f} | {a['ci'][0]:.0f} .. {a['ci'][1]:.0f} |")
    L += ["", "## Speed", "", "| model | generated tokens/s |", "| --- | --- |"]
    L += [f"| {m} | {results['models'][m]['speed_tokens_per_s']:.0f} |" for m in names]
    if images:
        L += ["", "## Figures", ""] + [f"![{k}](data:image/png;base64,{v})" for k, v in images.items()]
    return "\n".join(L) + "\n"


def _html(md: str) -> str:
    """A self-contained HTML page: headings, tables, lists and embedded images from our own Markdown subset."""
    out, in_table = [], False
    for line in md.splitlines():
        if line.startswith("| ") and not set(line) <= set("|- "):
            cells = [html.escape(c.strip()).replace("**", "") for c in line.strip("|").split("|")]
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if set(line) <= set("|- ") and line:
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            out.append(f'<p><img src="{src}" style="max-width:100%"></p>')
        elif line.startswith("#"):
            k = len(line) - len(line.lstrip("#"))
            out.append(f"<h{k}>{html.escape(line[k:].strip())}</h{k}>")
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:]).replace('**', '')}</li>")
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        out.append("</table>")
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title><style>{style}</style></head><body>{''.join(out)}</body></html>"


def write_report(results: dict, out_dir) -> list[Path]:
    """``report.md`` (figures embedded as data URIs), ``report.html`` (self-contained), ``results.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = _figure_png(results)
    md = _markdown(results, images)
    paths = [out / "report.md", out / "report.html", out / "results.json"]
    paths[0].write_text(md, encoding="utf-8")
    paths[1].write_text(_html(md), encoding="utf-8")
    paths[2].write_text(json.dumps(results, indent=1, ensure_ascii=False, default=float), encoding="utf-8")
    return paths


__all__ = ["SIZES", "ModelHandle", "load_model", "evaluate_models", "write_report"]
