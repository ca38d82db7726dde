"""llmlab.align (Week 5): preference data, log-probs, reward model, DPO, PPO and GRPO pieces.

Tolerances: float32 round-off after a softmax over a small vocabulary is ~1e-7 relative; 1e-6 is used where
the same operations run in another order (TRL), 1e-5 where a forward pass through a model differs in its
matmul order (HF's sequence-classification head vs ours).
"""

import copy
import math
import os
import warnings

import pytest
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from llmlab import tasks
from llmlab.align import (CORRUPTIONS, FAMILIES, RewardModel, bradley_terry_loss, corrupt, dpo_loss, encode_pairs,
                          entropy_from_logits, gae, generate, group_advantages, grpo_loss, kl_estimate,
                          masked_whiten, on_policy_pairs, pairwise_accuracy, policy_loss, preference_pairs, preference_splits,
                          read_jsonl, sequence_logprob, shape_rewards, token_logprobs, value_loss, write_jsonl)
from llmlab.align.preferences import TIED_KINDS


def tiny_llama(seed=0, vocab=64):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128, pad_token_id=1,
                      eos_token_id=0, bos_token_id=0)
    return LlamaForCausalLM(cfg).eval()


# ---------------------------------------------------------------------------------------------
# preference data


@pytest.mark.parametrize("task", FAMILIES)
def test_pairs_ranked_by_the_verifier(task):
    rows = preference_pairs(task, "train", 12, seed=0)
    assert len(rows) == 12 and {r["kind"] for r in rows} == set(CORRUPTIONS[task])
    for r in rows:
        assert r["prompt"][-1]["role"] == "user" and r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant"
        strict = r["kind"] not in TIED_KINDS
        assert r["chosen_score"] > r["rejected_score"] if strict else r["chosen_score"] >= r["rejected_score"]
        assert r["chosen"] != r["rejected"]


def test_pairs_seeded_and_splits_disjoint():
    a, b = preference_pairs("food", "train", 10, seed=3), preference_pairs("food", "train", 10, seed=3)
    assert a == b and a != preference_pairs("food", "train", 10, seed=4)
    s = preference_splits(8, seed=0, families=("jueju", "arithmetic"))
    prompts = {k: {r["prompt"][-1]["content"] for r in v} for k, v in s.items()}
    assert len(s["train"]) == 16 and len(s["test"]) == 4
    assert not prompts["train"] & prompts["test"] and not prompts["train"] & prompts["validation"]


def test_every_corruption_fails_the_verifier():
    for task, kinds in CORRUPTIONS.items():
        for ex in tasks.generate(task, "validation", n=6, seed=1):
            for kind in kinds:
                v = tasks.verify(ex, corrupt(ex, kind))
                assert (v.score <= 1.0) if kind in TIED_KINDS else not v.passed, (task, kind, v)


def test_model_samples_become_rejected_or_chosen():
    exs = {ex.prompt: ex for ex in tasks.generate("arithmetic", "train", n=40, seed=0)}

    def sampler(prompts):  # a "model" that answers every other prompt correctly
        return [exs[p[-1]["content"]].response if i % 2 else "I think 7." for i, p in enumerate(prompts)]

    rows = preference_pairs("arithmetic", "train", 10, sampler=sampler, model_share=1.0)
    sources = {(r["kind"], r["source"]) for r in rows}
    assert ("model", "model") in sources  # a failed sample: the rejected response
    assert any(k in CORRUPTIONS["arithmetic"] for k, src in sources if src == "model")  # a good one: chosen
    assert all(r["chosen_score"] > r["rejected_score"] for r in rows)


def test_on_policy_pairs_rank_own_samples_and_skip_ties():
    exs = tasks.generate("arithmetic", "train", n=3, seed=0)
    answers = {ex.prompt: [ex.response, "I think 7.", ex.response, ex.response] for ex in exs[:2]}
    answers[exs[2].prompt] = ["I think 7.", "No idea."] * 2  # all four fail alike: a tie, no pair

    def sampler(prompts):  # each prompt comes k = 4 times in a row; answer j of prompt i is answers[i][j]
        assert len(prompts) == 12
        return [answers[p[-1]["content"]][j % 4] for j, p in enumerate(prompts)]

    rows = on_policy_pairs(exs, sampler, k=4)
    assert [r["prompt"][-1]["content"] for r in rows] == [ex.prompt for ex in exs[:2]]
    assert all(r["kind"] == "on_policy" and r["chosen"][0]["content"] == ex.response
               and r["rejected"][0]["content"] == "I think 7." for r, ex in zip(rows, exs))
    with_ref = on_policy_pairs(exs, sampler, k=4, reference=True)  # the tie gets the reference as chosen
    assert len(with_ref) == 3 and with_ref[2]["kind"] == "model" and with_ref[2]["chosen"][0]["content"] == exs[2].response


def test_jsonl_round_trip(tmp_path):
    rows = preference_pairs("jueju", "test", 3)
    assert read_jsonl(write_jsonl(rows, tmp_path / "p.jsonl")) == rows
    (tmp_path / "plain.jsonl").write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    assert read_jsonl(tmp_path / "plain.jsonl")[0]["chosen"] == [{"role": "assistant", "content": "a"}]


# ---------------------------------------------------------------------------------------------
# log-probs and masked statistics (TRL's helpers as the reference)


def test_token_logprobs_and_entropy_match_trl():
    from trl.trainer.utils import entropy_from_logits as trl_entropy, selective_log_softmax

    g = torch.Generator().manual_seed(0)
    logits, ids = torch.randn(3, 7, 11, generator=g), torch.randint(11, (3, 7), generator=g)
    torch.testing.assert_close(token_logprobs(logits, ids), selective_log_softmax(logits[:, :-1], ids[:, 1:]),
                               atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(entropy_from_logits(logits), trl_entropy(logits), atol=1e-6, rtol=1e-6)
    mask = torch.tensor([[0, 0, 1, 1, 1, 0, 0]] * 3)
    manual = sum(torch.log_softmax(logits[:, t - 1], -1).gather(-1, ids[:, t:t + 1]).squeeze(-1) for t in (2, 3, 4))
    torch.testing.assert_close(sequence_logprob(logits, ids, mask), manual, atol=1e-5, rtol=1e-6)


def test_masked_whiten_matches_trl():
    from trl.experimental.ppo.ppo_trainer import masked_whiten as trl_whiten

    g = torch.Generator().manual_seed(1)
    x, mask = torch.randn(4, 9, generator=g) * 3 + 1, (torch.rand(4, 9, generator=g) > 0.3).float()
    for shift in (True, False):
        torch.testing.assert_close(masked_whiten(x, mask, shift), trl_whiten(x, mask, shift), atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# reward model


def test_bradley_terry_hand_values_and_large_margins():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0]), reduction="none")
    expected = torch.tensor([math.log(1 + math.exp(-2)), math.log(2), math.log(1 + math.exp(2))])
    torch.testing.assert_close(loss, expected)
    big = bradley_terry_loss(torch.tensor([200.0, -200.0]), torch.tensor([0.0, 0.0]), reduction="none")
    assert torch.isfinite(big).all() and big[0] == 0 and abs(big[1].item() - 200) < 1e-4  # log σ underflows
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])) == pytest.approx(0.5)


def test_reward_model_equals_hf_sequence_classification():
    from transformers import LlamaForSequenceClassification

    lm = tiny_llama(0)
    rm = RewardModel.from_causal_lm(copy.deepcopy(lm))
    cfg = copy.deepcopy(lm.config)
    cfg.num_labels = 1
    hf = LlamaForSequenceClassification(cfg).eval()
    hf.load_state_dict(rm.state_dict())  # the same names: model.* and score.weight
    ids = torch.randint(2, 64, (3, 8), generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3, [1] * 2 + [0] * 6])
    ids = ids.masked_fill(mask == 0, cfg.pad_token_id)  # HF finds the last token from the padding
    with torch.no_grad():
        torch.testing.assert_close(rm(ids, mask), hf(input_ids=ids, attention_mask=mask).logits.squeeze(-1),
                                   atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# DPO


def test_dpo_loss_hand_values():
    pc, pr, rc, rr = map(torch.tensor, ([-5.0, -1.0], [-7.0, -1.0], [-6.0, -2.0], [-6.0, -1.0]))
    losses, ch, rj = dpo_loss(pc, pr, rc, rr, beta=0.5)
    h = torch.tensor([(1 - -1) * 0.5, (1 - 0) * 0.5])  # beta * [(pc - rc) - (pr - rr)]
    torch.testing.assert_close(losses, torch.log1p(torch.exp(-h)))
    torch.testing.assert_close(ch, torch.tensor([0.5, 0.5])) and torch.testing.assert_close(rj, torch.tensor([-0.5, 0.0]))
    smooth, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.1)
    torch.testing.assert_close(smooth, 0.9 * torch.log1p(torch.exp(-h)) + 0.1 * torch.log1p(torch.exp(h)))


def test_dpo_loss_matches_trl_on_a_batch(tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from llmlab import zoo
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = zoo.pretrained("llama-base", tier="fast")
    tok = AutoTokenizer.from_pretrained(path)
    policy, ref = AutoModelForCausalLM.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():  # a policy that differs from the reference
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in preference_pairs("food", "train", 4)]
    args = DPOConfig(str(tmp_path), per_device_train_batch_size=4, beta=0.3, report_to=[], use_cpu=True,
                     max_length=128, logging_steps=1, save_strategy="no")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(policy, ref, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
        batch = next(iter(trainer.get_train_dataloader()))
        trl_loss = trainer._compute_loss(trainer.model, batch, False)
    ids, resp = batch["input_ids"], batch["completion_mask"]
    with torch.no_grad():
        pc, pr = sequence_logprob(policy(input_ids=ids, attention_mask=batch["attention_mask"]).logits, ids, resp).chunk(2)
        rc, rr = sequence_logprob(ref(input_ids=ids, attention_mask=batch["attention_mask"]).logits, ids, resp).chunk(2)
    ours = dpo_loss(pc, pr, rc, rr, beta=0.3)[0].mean()
    assert abs(ours.item() - math.log(2)) > 1e-3  # the policy differs from the reference: not the trivial log 2
    assert abs(ours.item() - trl_loss.item()) < 1e-6


# ---------------------------------------------------------------------------------------------
# PPO pieces


def test_kl_estimators_hand_values():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    torch.testing.assert_close(kl_estimate(logp, ref, "k1"), torch.tensor([0.5, -1.0]))
    torch.testing.assert_close(kl_estimate(logp, ref, "k2"), torch.tensor([0.125, 0.5]))
    torch.testing.assert_close(kl_estimate(logp, ref, "k3"), torch.tensor([math.exp(-0.5) - 1 + 0.5, math.e - 1 - 1]))


def test_shape_rewards_puts_the_score_on_the_last_token():
    kl, mask = torch.ones(2, 4), torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    r = shape_rewards(torch.tensor([5.0, -2.0]), kl, mask, kl_coef=0.1)
    torch.testing.assert_close(r, torch.tensor([[-0.1, -0.1, 4.9, 0.0], [-2.1, 0.0, 0.0, 0.0]]))


def _gae_slow(rewards, values, n, gamma, lam):
    """The textbook definition: A_t = sum_l (gamma lam)^l delta_{t+l}, one response of n tokens."""
    v = values[:n] + [0.0]
    deltas = [rewards[t] + gamma * v[t + 1] - v[t] for t in range(n)]
    return [sum((gamma * lam) ** l * deltas[t + l] for l in range(n - t)) for t in range(n)]


def test_gae_matches_the_slow_definition():
    g = torch.Generator().manual_seed(3)
    rewards, values = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    lengths = [6, 4, 1]
    mask = torch.tensor([[1] * n + [0] * (6 - n) for n in lengths])
    for gamma, lam in ((1.0, 0.95), (0.9, 0.5), (1.0, 1.0)):
        adv, ret = gae(rewards, values, mask, gamma, lam)
        for b, n in enumerate(lengths):
            slow = torch.tensor(_gae_slow(rewards[b].tolist(), values[b].tolist(), n, gamma, lam))
            torch.testing.assert_close(adv[b, :n], slow, atol=1e-5, rtol=1e-5)
            assert (adv[b, n:] == 0).all()
        torch.testing.assert_close(ret, (adv + values) * mask)


def test_policy_and_value_loss_hand_values():
    adv, mask = torch.tensor([[1.0, -1.0, 2.0]]), torch.tensor([[1, 1, 0]])
    old, new = torch.zeros(1, 3), torch.log(torch.tensor([[1.5, 1.5, 1.0]]))  # ratios 1.5, 1.5
    loss, stats = policy_loss(new, old, adv, mask, clip=0.2)
    # token 1: max(-1.5, -1.2) = -1.2 (clipped); token 2: max(1.5, 1.2) = 1.5 (not clipped: pessimistic)
    assert loss.item() == pytest.approx((-1.2 + 1.5) / 2) and stats["clip_frac"] == pytest.approx(0.5)
    v, old_v, ret = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 1.0]])
    vl, _ = value_loss(v, old_v, ret, torch.ones(1, 2), clip=0.5)
    assert vl.item() == pytest.approx(0.5 * ((2 - 0.5) ** 2 + 1.0) / 2)  # token 1: V clipped to 0.5


# ---------------------------------------------------------------------------------------------
# GRPO


def test_group_advantages_hand_and_trl_std():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0])  # two groups of 3; the second ties partly
    adv = group_advantages(r, 3)
    s1 = torch.tensor([1.0, 0.0, 0.0]).std()  # Bessel-corrected, as TRL's nanstd
    torch.testing.assert_close(adv[:3], (torch.tensor([1.0, 0.0, 0.0]) - 1 / 3) / (s1 + 1e-4))
    assert group_advantages(torch.ones(4), 2).abs().max() == 0  # equal rewards: no signal
    torch.testing.assert_close(group_advantages(r, 3, scale=False)[3:], torch.tensor([-2 / 3, 1 / 3, 1 / 3]))


def test_grpo_loss_on_policy_is_minus_the_mean_advantage():
    logp = torch.randn(2, 4, generator=torch.Generator().manual_seed(4))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    adv = torch.tensor([0.5, -1.0])
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, beta=0.1)
    assert loss.item() == pytest.approx(-(0.5 - 1.0) / 2) and stats["kl"] == 0  # ratio 1, KL 0
    dapo, _ = grpo_loss(logp, logp.detach(), None, adv, mask, loss_type="dapo")
    assert dapo.item() == pytest.approx(-(4 * 0.5 - 2 * 1.0) / 6)


# ---------------------------------------------------------------------------------------------
# sampling


def test_generate_greedy_equals_recomputing_without_cache():
    from llmlab import zoo
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo.pretrained("llama-base", tier="fast"))
    lm = tiny_llama(5, vocab=len(tok))
    lm.generation_config.eos_token_id = [tok.eos_token_id]
    prompts = [[{"role": "user", "content": "Hi"}], [{"role": "user", "content": "A longer prompt, padded less."}]]
    out = generate(lm, tok, prompts, max_new_tokens=6, temperature=1e-8)
    for i, p in enumerate(prompts):
        ids = tok(tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True), return_tensors="pt",
                  add_special_tokens=False)["input_ids"]
        for t in range(int(out["response_mask"][i].sum())):
            nxt = lm(ids).logits[0, -1].argmax()
            assert nxt.item() == out["response_ids"][i][t].item(), (i, t)
            ids = torch.cat([ids, nxt.view(1, 1)], 1)


def test_encode_pairs_masks_the_response():
    from llmlab import zoo
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo.pretrained("llama-base", tier="fast"))
    rows = preference_pairs("arithmetic", "train", 2)
    b = encode_pairs(tok, rows)
    for i, r in enumerate(rows):
        resp = b["chosen_input_ids"][i][b["chosen_response_mask"][i].bool()]
        assert tok.decode(resp) == r["chosen"][0]["content"] + "<|end|>\n"


# ---------------------------------------------------------------------------------------------
# the pipeline command


def test_cli_runs_reward_model_ppo_and_dpo(tmp_path):
    import json

    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from llmlab.align.cli import main

    prefs = write_jsonl(preference_pairs("food", "train", 10, seed=0), tmp_path / "prefs.jsonl")
    assert main(["--prefs", str(prefs), "--out", str(tmp_path / "run"), "--rm-epochs", "1", "--ppo-iters", "2",
                 "--dpo-epochs", "1", "--batch-size", "4", "--max-new-tokens", "6", "--max-length", "64"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["pairs"] == 10 and len(summary["ppo"]["reward"]) == 2 and 0 <= summary["dpo"]["held_out_accuracy"] <= 1
    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "dpo_policy")  # every model reloads
    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "ppo_policy")
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "reward_model")
