"""The old flat module names (llmlab/_compat.py), kept for one release for learners with started notebooks.

Every ``llmlab/<old>.py`` that calls ``alias(__name__, "<new>")`` must import as the new module object itself,
silently (nbgrader gives 0 to a test cell that writes to stderr), and ``python -m llmlab.<old>`` must still run.
"""

import re
import subprocess
import sys
from pathlib import Path

import llmlab

ALIAS = re.compile(r'^alias\(__name__, "([\w.]+)"\)$', re.M)
OLD_NAMES = {p.stem: m.group(1) for p in Path(llmlab.__file__).parent.glob("*.py")
             if (m := ALIAS.search(p.read_text(encoding="utf-8")))}

# What started Week 1-3 notebooks import from the old names (a sample of each kind: class, function, constant)
OLD_IMPORTS = """
from llmlab.chargpt import CharTokenizer, TrainConfig, split_loss, train, train_val_split
from llmlab.flash_attention import TensorMemoryTracker, naive_attention, saved_tensor_bytes
from llmlab.memory import PeakMemory, naive_attention as naive_attention_ctx
from llmlab.model import GPT, GPTConfig
from llmlab.trainer import Trainer
from llmlab.zero import reachable_tensor_bytes
assert TrainConfig(max_iters=7, learning_rate=0.5, warmup_iters=2, eval_iters=3).max_steps == 7  # Week 1's names
"""


def test_the_aliases_are_found():
    # the 19 flat modules of the first release (model, chargpt, bpe, ..., profiling)
    assert len(OLD_NAMES) == 19, sorted(OLD_NAMES)


def test_each_old_name_is_the_new_module_and_quiet():
    code = "import importlib, sys\n" + "".join(
        f"assert importlib.import_module('llmlab.{old}') is importlib.import_module('{new}'), '{old}'\n"
        for old, new in sorted(OLD_NAMES.items())) + OLD_IMPORTS
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == "", r.stderr[-2000:]  # no warning: a test cell importing an old name keeps its marks


def test_python_dash_m_runs_the_new_module():
    r = subprocess.run([sys.executable, "-m", "llmlab.train_cli", "--print-defaults"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '"max_steps"' in r.stdout  # the one TrainConfig's keys, printed by llmlab.train.cli
