"""The evaluation report command: every section present, self-contained HTML, JSON that round-trips."""

import json

import pytest

from llmlab.evaluate import evaluate_models, write_report
from llmlab.evaluate.__main__ import main


@pytest.fixture(scope="module")
def results():
    return evaluate_models(["llama-chat", "shakespeare-char"], size="fast", seed=0, log=lambda s: None)


def test_every_metric_is_there(results):
    for name in ("llama-chat", "shakespeare-char"):
        r = results["models"][name]
        assert set(r) >= {"perplexity", "mmlu", "overlap", "verifiers", "speed_tokens_per_s"}
        assert r["perplexity"]["Tiny Shakespeare"]["bits_per_byte"] > 0
        assert 0 <= r["mmlu"]["macro"] <= 1 and set(r["verifiers"]) == {"shakespeare", "jueju", "food", "arithmetic"}
    assert results["models"]["shakespeare-char"]["perplexity"]["Tang poetry"] is None  # no 汉字 in its vocabulary
    assert set(results["arena"]) == {"llama-chat", "shakespeare-char"}
    lo, hi = results["arena"]["llama-chat"]["ci"]
    assert lo <= results["arena"]["llama-chat"]["rating"] <= hi
    assert results["models"]["llama-chat"]["kind"] == "local"


def test_report_files(results, tmp_path):
    md, page, js = write_report(results, tmp_path / "report")
    text = md.read_text(encoding="utf-8")
    for section in ("## Summary", "## Perplexity", "## BLEU / ROUGE-L", "## MMLU", "## Verifier", "## Arena", "## Speed"):
        assert section in text
    html = page.read_text(encoding="utf-8")
    assert "<table>" in html and 'src="data:image/png;base64,' in html
    assert 'src="http' not in html and "<link" not in html and "<script" not in html  # self-contained: nothing fetched
    assert json.loads(js.read_text(encoding="utf-8"))["models"].keys() == results["models"].keys()


def test_cli_needs_models(capsys):
    with pytest.raises(SystemExit):
        main([])
