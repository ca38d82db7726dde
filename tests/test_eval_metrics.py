"""llmlab.eval perplexity, BLEU and ROUGE against the trusted implementations (HF loss, sacrebleu, rouge-score)."""

import math
import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llmlab.eval import bleu, perplexity, rouge

sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


def hf_recipe(model, ids, max_length, stride):
    """Hugging Face's documented sliding-window recipe (labels -100 outside the new tokens; the model's own loss)."""
    nll_sum, n_tokens, prev_end = 0.0, 0, 0
    for begin in range(0, ids.numel(), stride):
        end = min(begin + max_length, ids.numel())
        trg = end - prev_end
        inp = ids[begin:end].view(1, -1)
        labels = inp.clone()
        labels[:, :-trg] = -100
        with torch.no_grad():
            loss = model(inp, labels=labels).loss
        n = int((labels[:, 1:] != -100).sum())  # the loss shifts labels: position 0 is never a target
        nll_sum, n_tokens, prev_end = nll_sum + loss.item() * n, n_tokens + n, end
        if end == ids.numel():
            break
    return nll_sum / n_tokens, n_tokens


def test_sliding_window_equals_direct_when_text_fits(tiny_llama):
    ids = torch.randint(0, 50, (40,), generator=torch.Generator().manual_seed(1))
    direct = perplexity.direct_nlls(tiny_llama, ids)
    for stride in (1, 7, 40):  # the window covers the text: the stride must not matter
        torch.testing.assert_close(perplexity.token_nlls(tiny_llama, ids, max_length=40, stride=stride), direct)


@pytest.mark.parametrize("n,max_length,stride", [(100, 32, 16), (96, 32, 32), (97, 32, 31), (33, 32, 1)])
def test_sliding_window_matches_hf_recipe(tiny_llama, n, max_length, stride):
    # exact multiples of the window and one past it; stride == window (no overlap) skips window starts, as HF does
    ids = torch.randint(0, 50, (n,), generator=torch.Generator().manual_seed(n))
    nll = perplexity.token_nlls(tiny_llama, ids, max_length, stride)
    ref_mean, ref_n = hf_recipe(tiny_llama, ids, max_length, stride)
    assert nll.numel() == ref_n
    assert nll.mean().item() == pytest.approx(ref_mean, abs=1e-5)  # float32 sums over ~100 tokens


def test_units():
    text = "床前明月光 ok"  # 5 CJK chars (3 bytes each) + space + 2 ASCII = 8 chars, 18 bytes
    assert perplexity.bits_per_char(8 * math.log(2), text) == pytest.approx(1.0)
    assert perplexity.bits_per_byte(18 * math.log(2), text) == pytest.approx(1.0)
    assert perplexity.perplexity(torch.full((5,), math.log(7.0))) == pytest.approx(7.0)


WORDS = "the cat sat on a mat dog ran to park , . ! it's".split()
HANZI = "床前明月光疑是地上霜舉頭望低思故鄉，。"


def _en(r):
    return " ".join(r.choice(WORDS) for _ in range(r.randint(0, 12)))


def _zh(r):
    return "".join(r.choice(HANZI) for _ in range(r.randint(0, 15)))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_corpus_bleu_equals_sacrebleu(lang):
    r = random.Random(0)  # random corpora hit the edge cases: empty hypotheses, no overlap, 1-3 references
    make, tok = (_en, "13a") if lang == "en" else (_zh, "zh")
    for _ in range(150):
        n, k = r.randint(1, 4), r.randint(1, 3)
        hyps, refs = [make(r) for _ in range(n)], [[make(r) for _ in range(k)] for _ in range(n)]
        ours = bleu.corpus_bleu(hyps, refs, tokenize=tok).score
        ref = sacrebleu.corpus_bleu(hyps, [list(x) for x in zip(*refs)], tokenize=tok).score
        assert ours == pytest.approx(ref, abs=1e-6), (hyps, refs)


def test_bleu_edge_cases():
    assert bleu.corpus_bleu([""], [["the cat"]]).score == 0.0  # empty hypothesis: BP = 0
    assert bleu.corpus_bleu(["a b c d"], [["e f g h"]]).score == 0.0  # no overlap at all
    assert bleu.corpus_bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]).score == pytest.approx(100.0)
    assert bleu.closest_ref_len(5, [3, 7]) == 3  # a tie goes to the shorter reference


class _Chars:
    def tokenize(self, text):
        return rouge.char_tokens(text)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_rouge_equals_rouge_score(lang):
    r = random.Random(1)
    make, tokenize = (_en, rouge.tokens) if lang == "en" else (_zh, rouge.char_tokens)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], **({} if lang == "en" else {"tokenizer": _Chars()}))
    for _ in range(200):
        refs, cand = [make(r) for _ in range(r.randint(1, 3))], make(r)
        ours, ref = rouge.rouge(refs, cand, tokenize=tokenize), scorer.score_multi(refs, cand)
        for t in ours:
            assert ours[t] == pytest.approx(tuple(ref[t]), abs=1e-12), (t, refs, cand)


def test_lcs():
    assert rouge.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # CLRS's example
    assert rouge.lcs_length([], list("abc")) == 0

