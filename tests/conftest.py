import os

# Tests run offline, in FAST mode, with no GPU assumptions.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LLMLAB_FAST", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

NOTEBOOK_TIMES: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if not NOTEBOOK_TIMES:
        return
    tr = terminalreporter
    tr.section("notebook execution times (LLMLAB_FAST=1)")
    for name, secs in sorted(NOTEBOOK_TIMES.items()):
        tr.write_line(f"{secs:7.1f} s  {name}")
    tr.write_line(f"{sum(NOTEBOOK_TIMES.values()):7.1f} s  total")
