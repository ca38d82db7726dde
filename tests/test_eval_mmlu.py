"""The MMLU harness: the original prompt, log-likelihood scoring, and agreement with lm-eval on a local task."""

import os

import pytest
import torch

from llmlab.data import load_mmlu
from llmlab.eval import mmlu

SUBJECTS = ["astronomy", "virology"]


@pytest.fixture(scope="module")
def llama():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmlab import zoo

    torch.set_num_threads(1)
    path = zoo.pretrained("llama-base", log=lambda *a: None)  # FAST tier: built in seconds if missing
    tok = AutoTokenizer.from_pretrained(path)
    tok.model_max_length = 10**6  # long prompts are cut by the harness, not the tokenizer (and no warning)
    return AutoModelForCausalLM.from_pretrained(path).eval(), tok


def test_prompt_is_the_original_format():
    dev = load_mmlu("dev", ["astronomy"])
    row = load_mmlu("test", ["astronomy"])[0]
    p = mmlu.build_prompt(row, dev, k=2)
    assert p.startswith("The following are multiple choice questions (with answers) about astronomy.\n\n")
    assert p.count("\nAnswer:") == 3 and p.endswith("\nD. " + row["choices"][3] + "\nAnswer:")
    assert f"\nAnswer: {'ABCD'[dev[1]['answer']]}\n\n" + row["question"] in p  # shots end in a blank line
    assert mmlu.format_subject("high_school_us_history") == "high school us history"


def test_continuation_split_keeps_joint_tokenisation(llama):
    _, tok = llama
    ctx, cont = mmlu.encode_pair(tok, "Answer: ", "A")  # the trailing space moves to the continuation
    assert ctx + cont == tok("Answer: A", add_special_tokens=False)["input_ids"]
    assert tok.decode(cont) == " A"


def test_scores_are_log_likelihoods(llama):
    model, tok = llama
    ctx, cont = mmlu.encode_pair(tok, "To be, or not", " to be")
    ll, _ = mmlu.continuation_logprob(model, ctx, cont, max_length=64)
    ids = torch.tensor(ctx + cont).view(1, -1)
    with torch.no_grad():  # the model's mean loss over the continuation's tokens, times their number
        labels = ids.clone()
        labels[:, :len(ctx)] = -100
        ref = -model(ids, labels=labels).loss.item() * len(cont)
    assert ll == pytest.approx(ref, abs=1e-4)


def test_summary_macro_and_ci():
    res = [{"subject": "a", "correct": c} for c in (1, 1, 0, 0)] + [{"subject": "b", "correct": 1}] * 2
    s = mmlu.summarize(res)
    assert s["subjects"]["a"]["acc"] == 0.5 and s["macro"] == pytest.approx(0.75) and s["micro"] == pytest.approx(4 / 6)
    lo, hi = s["subjects"]["a"]["ci"]
    assert (lo, hi) == pytest.approx((0.5 - 1.96 * 0.25, 0.5 + 1.96 * 0.25))  # sqrt(0.25 / 4) = 0.25


def test_same_choices_and_loglikelihoods_as_lm_eval(llama, tmp_path):
    pytest.importorskip("lm_eval")
    from llmlab.eval import harness

    model, tok = llama
    n = 6
    task_dir = harness.write_mmlu_tasks(tmp_path / "tasks", SUBJECTS)
    out = harness.run_lm_eval(harness.CourseLM(model, tok, max_length=64), task_dir,
                              [f"mmlu_local_{s}" for s in SUBJECTS], limit=n)
    dev = load_mmlu("dev", SUBJECTS)
    for s in SUBJECTS:
        rows = load_mmlu("test", [s])[:n]
        ours = mmlu.evaluate(model, tok, rows, dev, k=5, max_length=64)
        theirs = sorted(out["samples"][f"mmlu_local_{s}"], key=lambda d: d["doc_id"])
        for row, o, t in zip(rows, ours, theirs):
            assert t["arguments"][0][0] == mmlu.build_prompt(row, [d for d in dev if d["subject"] == s])
            lls = [r[0] for r in t["filtered_resps"]]
            assert o["scores"] == pytest.approx(lls, abs=1e-5)  # same requests, same model: float32 round-off only
            assert o["pred"] == max(range(4), key=lambda j: lls[j]) and t["target"] == row["answer"]


def test_course_lm_rolling_and_generation(llama):
    pytest.importorskip("lm_eval")
    from llmlab.eval import harness
    from llmlab.eval.perplexity import direct_nlls

    model, tok = llama
    lm = harness.CourseLM(model, tok, max_length=64)
    req = type("Req", (), {})
    text = "To be, or not to be"  # fits the window: the rolling score is the direct one, end-of-text in front
    r = req()
    r.args = (text,)
    ids = torch.tensor([tok.eos_token_id] + tok(text, add_special_tokens=False)["input_ids"])
    assert lm.loglikelihood_rolling([r])[0] == pytest.approx(-direct_nlls(model, ids).sum().item(), abs=1e-4)
    g = req()
    g.args = ("ROMEO:\n", {"until": ["\n"], "max_gen_toks": 8})
    out = lm.generate_until([g])[0]
    assert isinstance(out, str) and "\n" not in out  # cut at the stop sequence
