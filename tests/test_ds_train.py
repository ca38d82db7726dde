"""llmlab.systems.ds_train: the DeepSpeed configs and presets (fast), and a real 2-rank CPU run (slow)."""

import json
import types

import pytest
import torch

from llmlab.systems.ds_train import CONFIG_DIR, build_ds_config, launch, model_config, parse_args
from llmlab.models.gpt import GPT


def test_presets_and_configs():
    for name, vocab in (("100m", 65), ("100m", 50304), ("200m", 65), ("200m", 50304)):
        with torch.device("meta"):
            n = sum(p.numel() for p in GPT(model_config(name, vocab)).parameters())
        assert 100e6 <= n <= 300e6, (name, vocab, n)
    args = parse_args(["--ds-config", str(CONFIG_DIR / "zero3_offload.json"), "--batch-size", "3", "--precision", "bf16"])
    cfg = build_ds_config(args, world_size=2)
    assert cfg["zero_optimization"]["stage"] == 3 and cfg["zero_optimization"]["offload_param"] == {"device": "cpu"}
    assert cfg["train_batch_size"] == 6 and cfg["bf16"]["enabled"] and cfg["optimizer"]["params"]["torch_adam"]
    for path in CONFIG_DIR.glob("*.json"):  # every shipped config avoids the compiled Adam ops
        assert json.loads(path.read_text())["optimizer"]["params"]["torch_adam"] is True, path.name


@pytest.mark.slow  # two DeepSpeed ranks on the CPU: ~20 s once the shared-memory op is compiled (~70 s the first time)
def test_launch_zero2_two_ranks(tmp_path, capsys):
    m = launch(["--model", "tiny", "--zero-stage", "2", "--steps", "3", "--batch-size", "2", "--out", tmp_path], timeout=300)
    assert m["world_size"] == 2 and m["zero_stage"] == 2 and m["precision"] == "fp32" and len(m["steps"]) == 3
    assert all(s["loss"] < 4.5 and s["tokens_per_s"] > 0 for s in m["steps"]) and m["steps"][-1]["loss"] < m["steps"][0]["loss"]
    assert [r["rank"] for r in m["peak_memory"]] == [0, 1] and all(r["bytes"] > 0 for r in m["peak_memory"])
    assert capsys.readouterr().err == ""  # everything the launcher printed went to stdout
