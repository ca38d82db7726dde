"""Week 7: evaluation and structured prompting, one concept per file.

==================  ===========================================================================================
module              what
==================  ===========================================================================================
``perplexity``      token NLL, sliding-window evaluation with a stride, perplexity, bits per byte / character
``bleu``            corpus BLEU (clipped precisions, brevity penalty, exp smoothing), equal to sacrebleu
``rouge``           ROUGE-1/2/L (LCS), several references, character-level for Chinese; equal to rouge-score
``mmlu``            the original 5-shot MMLU prompt, log-likelihood scoring, per-subject / macro accuracy + CI
``harness``         the course models as an lm-eval ``LM``; MMLU as a local lm-eval task (no hub)
``arena``           online Elo, Bradley-Terry maximum likelihood (Chatbot Arena's fit), bootstrap CIs, win rates
``react``           the ReAct loop: Thought / Action / Observation, tool registry, stop sequences, step limit
``tot``             Tree of Thoughts: BFS with a beam, DFS with backtracking; the Game of 24
``react_traces``    ReAct-format SFT traces of the arithmetic tasks, with the real calculator's observations
``tot_lm``          a causal LM as the Tree of Thoughts proposer (legal steps by likelihood) and evaluator
``local_chat``      an in-process OpenAI-style chat client over a local Hugging Face model (no server needed)
==================  ===========================================================================================

Import the module you need (``from llmlab.eval import bleu``): ``harness`` imports ``lm_eval``, which is slow.
"""
