"""Shared test settings: offline FAST mode, threads per xdist worker, grouping, ``--nb``, the time table.

``make test`` runs pytest-xdist, one worker per core. This file makes that safe and tells where the
time went:

- **Threads.** Each worker (and every notebook kernel or launcher it starts, through
  ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``) gets ``cores // workers`` threads, so that the workers do
  not oversubscribe the cores.
- **Groups** (``xdist_group`` marks; with ``-n`` this file schedules them itself through
  ``tests/xdist_groups.py``, because xdist's ``loadgroup`` loses them on pytest 9.2). Tests marked ``serial`` or ``slow`` (DeepSpeed launches, the JupyterLab server and the
  browser, load tests) and the DeepSpeed notebooks form one group, ``serial``: they run one after
  another on one worker, so two launchers never fight over the cores and DeepSpeed's compiled op
  (``~/.cache/torch_extensions``) is built once, by the first of them. A notebook's two tests share
  one execution, so they form a group of their own. Every other test file is a group, so that its
  module-scoped fixtures (trained tokenizers, zoo models) are built once per run, not once per worker.
  Under xdist the serial group is sent first, then the notebooks, then the unit tests (longest first).
- ``--nb PATH`` (``make test NB=weeks/week04``): only the notebooks under PATH (a week folder or a
  notebook, under ``weeks/`` or ``solutions/``).
- **The time table** at the end (``pytest_terminal_summary``): every notebook, the week totals
  against the FAST budget, the 15 slowest tests; also written to ``tmp/artifacts/test_times.json``.
  Workers send their figures to the controller in each report's ``user_properties``.
"""

import json
import os
import re
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

# Tests run offline, in FAST mode, with no GPU assumptions.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LLMLAB_FAST", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # set by xdist in each worker
THREADS = max(1, _cores() // WORKERS)
if WORKERS > 1:  # before torch is imported: it sizes its thread pool from these (and so do kernels and ranks)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(THREADS))

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SERIAL = "serial"  # the xdist group of the tests that must not run beside each other
BUDGET_S = 240  # FAST-mode notebook time per week (DEVELOPERS.md: about 4 minutes)
TIMES_JSON = REPO / "tmp" / "artifacts" / "test_times.json"


@pytest.fixture(autouse=True)
def one_thread():
    """Unit tests use tiny tensors: one thread is fastest, and immune to other processes on the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------- options
def pytest_addoption(parser):
    parser.addoption("--nb", action="append", default=[], metavar="PATH",
                     help="run the notebook tests of these notebooks only: a week folder or a notebook, "
                          "under weeks/ or solutions/ (e.g. --nb weeks/week04); repeatable")


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "load":  # plain `-n N`: group-aware scheduling instead
        config.option.dist = "loadgroup"
    if getattr(config.option, "dist", "no") == "loadgroup" and not os.environ.get("PYTEST_XDIST_WORKER"):
        config.option.loadscopereorder = False  # groups go out in collection order (pytest_collection_modifyitems)
        config.llmlab_groups = Path(tempfile.mkdtemp(prefix="llmlab-xdist-")) / "groups.json"


def pytest_unconfigure(config):
    if getattr(config, "llmlab_groups", None):
        shutil.rmtree(config.llmlab_groups.parent, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """(xdist, controller) where the workers write each test's group."""
    node.workerinput["llmlab_groups"] = str(node.config.llmlab_groups)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if getattr(config, "llmlab_groups", None):
        from xdist_groups import GroupScheduling

        return GroupScheduling(config, log, config.llmlab_groups)
    return None


def selected(config, week: str, stem: str) -> bool:
    """Whether ``--nb`` (none given: everything) selects the notebook ``week/stem``."""
    wanted = config.getoption("nb")
    if not wanted:
        return True
    for path in wanted:
        parts = [p for p in Path(path).with_suffix("").parts if p not in ("weeks", "solutions", ".")]
        if parts and parts[0] == week and (len(parts) == 1 or parts[1] == stem):
            return True
    return False


# ---------------------------------------------------------------------------------------- groups and order
def _group(item) -> str | None:
    marks = [m.args[0] if m.args else m.kwargs.get("name", "default") for m in item.iter_markers("xdist_group")]
    return marks[0] if marks else None


def pytest_collection_modifyitems(config, items):
    if config.getoption("nb") and not any(isinstance(getattr(item, "callspec", None) and item.callspec.params.get("source"),
                                                     Path) for item in items):
        raise pytest.UsageError(f"--nb {' '.join(config.getoption('nb'))}: no solution notebook under that path "
                                "(e.g. --nb weeks/week01 or --nb weeks/week01/01_attention.ipynb)")
    for item in items:
        if _group(item) is None:
            if item.get_closest_marker(SERIAL) or item.get_closest_marker("slow"):
                item.add_marker(pytest.mark.xdist_group(SERIAL))
            else:  # one file = one group: module-scoped fixtures are built once per run
                item.add_marker(pytest.mark.xdist_group(item.path.name))
    groups_file = getattr(config, "workerinput", {}).get("llmlab_groups")
    if groups_file:  # an xdist worker: the order in which the controller hands out the groups, and the groups
        size = defaultdict(int)
        for item in items:
            size[_group(item)] += 1

        def rank(item):
            g = _group(item)
            return (0 if g == SERIAL else 1 if g.startswith("nb:") else 2, -size[g] if not g.startswith("nb:") else 0)

        items[:] = sorted(items, key=rank)  # stable: collection order within each rank
        from xdist_groups import write_groups

        write_groups(groups_file, {item.nodeid: _group(item) for item in items})


# ---------------------------------------------------------------------------------------- time table
class Times:
    """What the controller hears: seconds per test (setup + call + teardown) and per notebook run."""

    def __init__(self):
        self.tests: dict[str, float] = defaultdict(float)
        self.notebooks: dict[str, dict] = {}
        self.outcome: dict[str, str] = {}


TIMES = Times()


def pytest_runtest_logreport(report):
    nodeid = report.nodeid.split("@")[0] if report.nodeid.rfind("@") > report.nodeid.rfind("]") else report.nodeid
    TIMES.tests[nodeid] += report.duration
    for key, value in report.user_properties:
        if key == "notebook_run":
            TIMES.notebooks[value["notebook"]] = value


def _week(name: str) -> str:
    m = re.match(r"(week\d\d|bonus\w*)/", name)
    return m.group(1) if m else "?"


def time_table(workers: int, cores: int) -> list[str]:
    nbs = TIMES.notebooks
    lines = []
    if nbs:
        lines += [f"notebooks: nbgrader's run of the solution (its one execution) and of the untouched release; "
                  f"wall s with {workers} worker(s) on {cores} core(s), cpu s of the grader and its kernels",
                  f"  {'solution':>8} {'cpu':>6} {'release':>8} {'cpu':>6}  notebook"]
        for name, r in sorted(nbs.items()):
            lines.append(f"  {r['solution_s']:8.1f} {r['solution_cpu_s']:6.1f} {r['untouched_s']:8.1f} "
                         f"{r['untouched_cpu_s']:6.1f}  {name}")
        lines.append(f"weeks: FAST budget {BUDGET_S} s of notebook time (solution runs, wall) per week")
        by_week = defaultdict(list)
        for name, r in nbs.items():
            by_week[_week(name)].append(r)
        for week, rows in sorted(by_week.items()):
            sol = sum(r["solution_s"] for r in rows)
            cpu = sum(r["solution_cpu_s"] for r in rows)
            rel = sum(r["untouched_s"] for r in rows)
            tests = sum(s for t, s in TIMES.tests.items() if f"[{week}/" in t)
            flag = "ok" if sol <= BUDGET_S else f"OVER BUDGET by {sol - BUDGET_S:.0f} s"
            lines.append(f"  {week}: {len(rows)} notebooks, solutions {sol:6.1f} s (cpu {cpu:6.1f} s), releases "
                         f"{rel:6.1f} s, all its notebook tests {tests:6.1f} s  {flag}")
    slowest = sorted(TIMES.tests.items(), key=lambda kv: -kv[1])[:15]
    if slowest:
        lines.append("15 slowest tests (setup + call + teardown, wall s)")
        lines += [f"  {secs:7.1f}  {nodeid}" for nodeid, secs in slowest]
    lines.append(f"all tests: {sum(TIMES.tests.values()):.1f} s of test time over {workers} worker(s)")
    return lines


def pytest_terminal_summary(terminalreporter, config):
    if os.environ.get("PYTEST_XDIST_WORKER") or not TIMES.tests:
        return
    workers = getattr(config.option, "numprocesses", None) or 1
    tr = terminalreporter
    tr.section(f"time table (LLMLAB_FAST={os.environ.get('LLMLAB_FAST')})")
    for line in time_table(workers, _cores()):
        tr.write_line(line)
    try:
        TIMES_JSON.parent.mkdir(parents=True, exist_ok=True)
        TIMES_JSON.write_text(json.dumps({"workers": workers, "cores": _cores(), "budget_s": BUDGET_S,
                                          "notebooks": TIMES.notebooks, "tests": TIMES.tests}, indent=1))
        tr.write_line(f"(also in {TIMES_JSON.relative_to(REPO)})")
    except OSError as e:
        tr.write_line(f"(could not write {TIMES_JSON}: {e})")
