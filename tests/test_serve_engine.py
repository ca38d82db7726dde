"""The course engine: greedy output equals transformers' generate on every architecture, with and without
cache pressure (chunked prefill, preemption, prefix sharing); seeded sampling; logits processors against
transformers'; stop strings; speculative decoding."""

import pytest
import torch
import transformers as tf

from llmlab.serve import LLMEngine, SamplingParams
from llmlab.serve.detokenizer import Detokenizer
from llmlab.serve.sampler import apply_min_p, apply_repetition_penalty, apply_temperature, apply_top_k, apply_top_p
from llmlab.serve.speculative import accept_or_resample, speculative_generate
from llmlab.serve.tiny import ARCHS, tiny_model, tiny_tokenizer

tf.logging.set_verbosity_error()
V = 97
# prompt lengths around the block size 4: one short, exact multiples, one over, a single token
LENGTHS = (3, 4, 8, 9, 1, 17)


def prompts(seed=1, lengths=LENGTHS):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(6, V, (n,), generator=g).tolist() for n in lengths]


def hf_greedy(model, ps, n):
    return [model.generate(torch.tensor([p]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                           pad_token_id=1)[0, len(p):].tolist() for p in ps]


GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_transformers_generate(arch):
    model, ps = tiny_model(arch, V), prompts()
    ref = hf_greedy(model, ps, 12)
    # roomy cache / a cache so small that sequences are preempted and prefills chunked (8-token budget)
    for blocks, budget in ((64, 512), (10, 8)):
        eng = LLMEngine(model, None, num_blocks=blocks, block_size=4, max_num_batched_tokens=budget)
        got = [o.token_ids for o in eng.generate(ps, GREEDY)]
        assert got == ref, f"{arch}, {blocks} blocks, budget {budget}: engine != transformers.generate"
        assert eng.block_manager.num_free == blocks, "KV blocks leaked"
    assert eng.scheduler.num_preemptions > 0, "the small cache was meant to force preemption"


def test_prefix_caching_reuses_blocks_and_changes_nothing():
    model = tiny_model("llama", V)
    shared = prompts(2, (12,))[0]
    ps = [shared + [7], shared + [8, 9], shared]          # a common prefix of 3 full blocks of 4
    ref = hf_greedy(model, ps, 6)
    params = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)
    eng = LLMEngine(model, None, num_blocks=32, block_size=4)
    seqs = [eng.add_request(ps[0], params)]
    eng.step()                                            # the first prefill fills (and registers) the blocks
    seqs += [eng.add_request(p, params) for p in ps[1:]]  # these find them in the cache
    while eng.has_work():
        eng.step()
    assert [s.output_ids for s in seqs] == ref
    stats = eng.block_manager.stats
    assert stats["prefix_hits"] == 6, "3 shared blocks for each of the 2 later prompts"
    assert stats["copied"] == 1, "the fully cached prompt recomputes its last token in a private copy"
    assert eng.block_manager.num_free == 32


def test_seeded_sampling_does_not_depend_on_the_batch():
    model = tiny_model("qwen2", V)
    p = SamplingParams(max_tokens=10, temperature=0.9, top_p=0.9, seed=123, ignore_eos=True)
    alone = LLMEngine(model, None, num_blocks=64, block_size=4).generate([prompts()[2]], p)[0].token_ids
    others = SamplingParams(max_tokens=7, temperature=1.0, ignore_eos=True)
    batch = LLMEngine(model, None, num_blocks=64, block_size=4).generate(
        [prompts()[0], prompts()[2], prompts()[5]], [others, p, others])
    assert batch[1].token_ids == alone, "a seeded request must sample from its own generator"


def test_processors_match_transformers():
    torch.manual_seed(0)
    logits = torch.randn(3, 50) * 3
    ids = torch.tensor([[1, 2, 2], [4, 5, 6], [0, 49, 7]])
    cases = [
        (apply_temperature(logits, 0.7), tf.TemperatureLogitsWarper(0.7)(ids, logits.clone())),
        (apply_top_k(logits, 5), tf.TopKLogitsWarper(5)(ids, logits.clone())),
        (apply_top_p(logits, 0.8), tf.TopPLogitsWarper(0.8)(ids, logits.clone())),
        (apply_min_p(logits, 0.1), tf.MinPLogitsWarper(0.1)(ids, logits.clone())),
    ]
    for mine, ref in cases:
        assert torch.equal(torch.isinf(mine), torch.isinf(ref)), "a different set of tokens was removed"
        torch.testing.assert_close(mine[~torch.isinf(mine)], ref[~torch.isinf(ref)])
    for row in range(3):   # the penalty is per sequence here (the engine applies it per request)
        torch.testing.assert_close(apply_repetition_penalty(logits[row], ids[row].tolist(), 1.3),
                                   tf.RepetitionPenaltyLogitsProcessor(1.3)(ids[row:row + 1], logits[row:row + 1].clone())[0])


def test_stop_string_split_across_tokens_is_never_sent():
    tok = tiny_tokenizer()
    ids = tok.encode("To be, or not to be, that", add_special_tokens=False)
    d, sent = Detokenizer(tok, stop=("not to",)), ""
    for i in range(1, len(ids) + 1):
        sent += d.step(ids[:i])
        if d.stopped:
            break
    assert d.stopped and sent == "To be, or ", f"sent {sent!r}"


def test_speculative_greedy_equals_the_target():
    target, draft = tiny_model("llama", V, seed=0), tiny_model("llama", V, seed=1, num_hidden_layers=1)
    p = prompts()[3]
    ref = hf_greedy(target, [p], 15)[0]
    got, stats = speculative_generate(target, draft, p, 15, k=3)
    assert got == ref
    same, stats = speculative_generate(target, target, p, 15, k=3)   # a perfect draft: everything accepted
    assert same == ref and stats.acceptance_rate == 1.0 and stats.target_calls == 4


def test_speculative_output_is_distributed_as_the_target():
    # one round of k=1 on a 4-token vocabulary: the first token must follow p_1 whatever q is
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]])
    q = torch.tensor([[0.1, 0.1, 0.2, 0.6]])
    gen, draft_gen, counts = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1), torch.zeros(4)
    N = 8000
    for _ in range(N):
        x = int(torch.multinomial(q[0], 1, generator=draft_gen))
        acc, y = accept_or_resample(p, q, [x], gen)
        counts[(acc + [y])[0]] += 1
    # 4 sigma of a binomial proportion with N=8000 is at most 4 * sqrt(0.25 / 8000) = 0.022
    torch.testing.assert_close(counts / N, p[0], atol=0.022, rtol=0)
