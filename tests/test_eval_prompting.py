"""The ReAct loop on a scripted model, and Tree of Thoughts searches on the Game of 24."""

from fractions import Fraction

import pytest

from llmlab.eval import react, tot


def test_react_runs_tools_and_stops_at_the_final_answer():
    model = react.ScriptedModel(["Thought: multiply first\nAction: calculator[17 * 23]",
                                 "Thought: done\nFinal Answer: 391"])
    trace = react.react("What is 17 * 23?", model)
    assert trace.answer == "391" and trace.stopped == "final" and trace.tool_calls == 1
    assert trace.steps[0]["observation"] == "391"
    assert model.calls[0]["stop"] == ["Observation:"]  # the model must not write the observation itself
    assert model.calls[1]["messages"][-1]["content"].endswith("Observation: 391\n")


def test_react_errors_become_observations_and_the_step_limit_holds():
    model = react.ScriptedModel(["Action: search[x]", "I think so.", "Action: calculator[1 / 0]",
                                 "Action: calculator(2)", "Action: calculator[2]"])
    trace = react.react("?", model, max_steps=4)
    obs = [s["observation"] for s in trace.steps]
    assert obs[0].startswith("Error: unknown tool 'search'") and obs[1].startswith("Error: no 'Action")
    assert "ZeroDivisionError" in obs[2] and obs[3].startswith("Error: could not parse")
    assert trace.stopped == "max_steps" and trace.answer is None and len(model.replies) == 1


def test_react_ignores_invented_observations_and_calculator_is_safe():
    model = react.ScriptedModel(["Action: calculator[2 + 2]\nObservation: 5\nFinal Answer: 5", "Final Answer: 4"])
    assert react.react("2 + 2?", model).answer == "4"  # a server that ignores stop: the text after it is cut
    assert react.calculator("(3 + 4) * 5 - 10 / 4") == "32.5"
    with pytest.raises(ValueError):
        react.calculator("__import__('os').system('true')")


def test_game24_and_searches():
    g = tot.Game24([4, 9, 10, 13])
    res = tot.bfs(g.root, g.propose, g.value, g.is_goal, depth=3, beam=5)
    assert res.solution is not None and g.is_goal(res.solution)
    assert res.calls["propose"] == len(res.visited)
    steps = tot.solve24([3, 3, 8, 8])  # the classic that needs fractions: 8 / (3 - 8/3)
    assert steps is not None and steps[-1].endswith("= 24")
    assert tot.solve24([1, 1, 1, 1]) is None
    assert len(g.propose(tot.State24((Fraction(1), Fraction(2))))) == 5  # 3, 2, -1, 1, 1/2 (2 / 1 = 2 * 1: once)


def test_dfs_backtracks_and_beam_limits():
    # a tree: root -> a (value 1, dead end) and b (value 0); b -> goal. DFS tries a first, backtracks to b.
    tree = {"root": ["a", "b"], "a": [], "b": ["goal"], "goal": []}
    val = {"a": 1.0, "b": 0.0, "goal": 0.5}
    r = tot.dfs("root", tree.__getitem__, val.__getitem__, lambda s: s == "goal", depth=3)
    assert r.solution == "goal" and r.visited == ["root", "a", "b"]
    r = tot.dfs("root", tree.__getitem__, val.__getitem__, lambda s: s == "goal", depth=3, threshold=0.5)
    assert r.solution is None  # b is pruned
    r = tot.bfs("root", tree.__getitem__, val.__getitem__, lambda s: s == "goal", depth=2, beam=1)
    assert r.solution is None and r.visited == ["root", "a"]  # beam 1 keeps only a


def test_react_traces_use_the_real_calculator_and_replay_through_the_loop():
    from llmlab import tasks
    from llmlab.eval import react_traces

    for ex in tasks.generate("arithmetic", "train", 40, seed=3):  # every template, both languages
        steps = react_traces.make_trace(ex)
        assert steps[0][1] == str(ex.meta["answer"])  # the observation is the calculator's, checked against the answer
        model = react.ScriptedModel([r for r, _ in steps])
        trace = react.react(ex.prompt, model, system=react_traces.SYSTEM)
        assert trace.answer == str(ex.meta["answer"]) and trace.tool_calls == 1
        rows = react_traces.sft_rows(ex.prompt, steps, react_traces.system_prompt())
        # training text = inference text: each row's prompt is exactly what the loop sent for that call
        assert [r["messages"][:-1] for r in rows] == [c["messages"] for c in model.calls]


def test_lm_thinker_scores_options_like_a_direct_forward_and_proposes_legal_steps():
    import random

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from llmlab import zoo
    from llmlab.eval import tot_lm

    path = zoo.pretrained("llama-chat", "fast", log=lambda *a: None)
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    model = LlamaForCausalLM.from_pretrained(path).eval()
    prompt, opts = "Numbers: 4 6", ["4 * 6 = 24", "6 - 4 = 2"]
    got = tot_lm.option_logprobs(model, tok, prompt, opts)
    for o, g in zip(opts, got):  # the padded batch equals scoring each option alone
        p, q = tok(prompt)["input_ids"], tok(o)["input_ids"]
        logp = model(torch.tensor([p + q])).logits.log_softmax(-1)[0]
        assert abs(g - sum(logp[len(p) - 1 + i, t].item() for i, t in enumerate(q))) < 1e-4  # float32 sums
    g = tot.Game24([4, 6, 1, 1])
    m = tot_lm.LMThinker(model, tok, g, random.Random(0))
    kids = m.propose(g.root, b=4)
    assert len(kids) == 4 and all(k in g.propose(g.root) for k in kids) and 0 < m.value(g.root) < 1
