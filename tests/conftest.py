import os

# Tests run offline, in FAST mode, with no GPU assumptions.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LLMLAB_FAST", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

NOTEBOOK_TIMES: dict[str, float] = {}


@pytest.fixture(autouse=True)
def one_thread():
    """Unit tests use tiny tensors: one thread is fastest, and immune to other processes on the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_terminal_summary(terminalreporter):
    if not NOTEBOOK_TIMES:
        return
    tr = terminalreporter
    tr.section("notebook execution times (LLMLAB_FAST=1)")
    for name, secs in sorted(NOTEBOOK_TIMES.items()):
        tr.write_line(f"{secs:7.1f} s  {name}")
    tr.write_line(f"{sum(NOTEBOOK_TIMES.values()):7.1f} s  total")
