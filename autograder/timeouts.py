"""Per-cell time limits (seconds) for grading, keyed by nbgrader grade id.

Grading runs with ``LLMLAB_FAST=1``; these limits are sized to FAST mode on 2 CPU cores with
about 3x headroom. Students cannot change a grade id without failing validation, so keying on it
is safe. Cells without a grade id (plain prose or demo cells) get ``DEFAULT_PLAIN``.
"""

DEFAULT_GRADED = 60  # answer cells, test cells, setup cells
DEFAULT_PLAIN = 180  # demo cells without nbgrader metadata (plots, small runs)

TIMEOUTS: dict[str, int] = {
    # week01/04_mini_gpt: the FAST training run (~30 s on 2 cores)
    "train_run": 240,
    # week01/03_transformer_block: pre-norm vs post-norm training demo (~15 s idle)
    "prepost_training": 180,
    # week01/05_reading_nanogpt: a short FAST training run before the conversion (~5 s idle)
    "train_small": 120,
    # week02/03_training_pipeline: the real CLI in a subprocess (interpreter start + a few dozen steps)
    "run_cli": 150,
    "cli_resume": 150,
    # week02/05_finetuning: FAST pretraining of the byte-level GPT (~8 s CPU) and three 150-step fine-tuning runs (~15 s CPU)
    "ft_pretrain": 180,
    "ft_runs": 240,
    # week03/04_flash_attention: peak memory of naive vs tiled attention for T = 256..4096 (~10 s)
    "memory_sweep": 120,
    # week02/06_analysis: five FAST curve runs (~20 s CPU), the BPE run (~7 s CPU), eight sampling settings (~4 s CPU)
    "curve_runs": 240,
    "bpe_run": 180,
    "sampling_figure": 180,
    # week02/04_pretraining_10m: FAST runs of the English BPE model (~3 s CPU) and the Tang char model (~7 s CPU,
    # a 9.6k-character output layer), each stopped at 4 checkpoints to sample; the hidden test of generate_wujue
    # samples 300 constrained poems (~10 s CPU); report/curves score 8k validation tokens
    "prepare_en": 120,
    "train_en": 180,
    "prepare_zh": 120,
    "train_zh": 240,
    "curves_zh": 120,
    "test_generate_wujue": 180,
    # week03/05_zero_deepspeed: forked gloo ranks (3 runs, ~4 s each idle); one DeepSpeed launch training 5 ZeRO
    # configurations (~35 s on 2 busy cores, + ~70-110 s once if DeepSpeed's shared-memory op is not yet compiled)
    "test_zero_adamw": 120,
    "zero_memory_measured": 120,
    "ds_stages": 400,
    # week03/07_profiling_100m: the DeepSpeed launcher and 2 CPU ranks (~35 s FAST on 2 busy cores, plus ~70 s the
    # first time to compile DeepSpeed's shared-memory op); the profiled steps (~5 s); the hidden profile in test_top_ops
    "ds_run": 600,
    "profile_step": 120,
    "test_top_ops": 120,
}


def timeout_for(cell) -> int:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    gid = meta.get("grade_id")
    if gid is None:
        return DEFAULT_PLAIN
    return TIMEOUTS.get(gid, DEFAULT_GRADED)
