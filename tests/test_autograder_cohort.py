"""Cohort grading of hostile and broken submissions: each gets the right grade and a clear message,
and nothing else is harmed (other students, the grader's files, the machine).

One cohort of the toy course (plain ``assert`` tests: the kernel does not import torch) is graded
once, in parallel, sandboxed, with short limits; each test below checks one student. The isolation
is whatever this machine has (bubblewrap, an unprivileged uid); ``LLMLAB_SANDBOX=none`` grades the
same cohort with ``--no-sandbox`` (what a machine with neither looks like), and the tests that need a
mechanism skip, saying which. A second, small cohort is always graded with isolation forced off:
the refusal, and the ``--no-sandbox`` path.
"""

import ast
import contextlib
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

import autograder.course as course
from autograder import sandbox
from autograder.cli import main
from autograder.grade import NoIsolation, grade
from autograder.release import release
from autograder.sandbox import Limits

from toycourse import make_course, with_cells

# graders started by two tests at once would see each other's kernels, cgroups and leftovers: one at a time
pytestmark = pytest.mark.serial

ADD, MUL, SUB = "def add(a, b):\n    return a + b", "def mul(a, b):\n    return a * b", "def sub(a, b):\n    return a - b"
LIMITS = Limits(cell_timeout_s=10, interrupt_grace_s=2, memory_mb=512, address_space_mb=1536, nproc=64,
                output_mb=1, wall_s=120)
SANDBOX_UIDS = range(sandbox.UID_BASE_DEFAULT, sandbox.UID_BASE_DEFAULT + 1000)
# a fork bomb whose children sleep: the cell returns, and the children would use up the process limit
SLEEPERS = ("import os, time\ndef add(a, b):\n    for _ in range(500):\n        try:\n            if os.fork() == 0:\n"
            "                time.sleep(3600)\n                os._exit(0)\n        except OSError:\n            break\n"
            "    return a + b")
# bytecode planted in the course library that later kernels would import
CACHE_WRITER = """import pathlib, sys
sys.dont_write_bytecode = False
import llmlab
target = pathlib.Path(llmlab.__file__).parent / "__pycache__" / "planted.cpython-311.pyc"
try:
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(b"planted")
    print("PLANTED", target)
except OSError as e:
    print("REFUSED", type(e).__name__)
""" + ADD
SKIP_IN_REPO = {".git", ".pytest_cache", ".venv"}


def vandal(spy: dict) -> str:
    """An answer cell that writes over another learner's work, the grades, the repository and the sources."""
    targets = [f"{spy['subs']}/alice/week01/toy.ipynb", f"{spy['out']}/grades.csv", f"{spy['repo']}/VANDAL",
               "/tmp/VANDAL-llmlab", f"{spy['solutions']}/week01/toy.ipynb"]
    return (f"import pathlib\ntried = {{}}\nfor target in {targets!r}:\n    try:\n"
            "        pathlib.Path(target).write_text('{}')\n        tried[target] = 'WROTE'\n"
            "    except OSError as e:\n        tried[target] = type(e).__name__\nprint('TRIED', tried)\n" + ADD)


def repo_files() -> dict[str, str]:
    """Every file under the repository (caches included) -> its SHA-256."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(course.REPO):
        dirnames[:] = [d for d in dirnames if d not in SKIP_IN_REPO]
        for name in filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(course.REPO))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
    return out


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def isolation_needed(what: str):
    m = sandbox.mechanisms()
    if what == "bwrap" and not m.bwrap:
        pytest.skip(f"bubblewrap is not in force ({m.notes['bwrap']}): file isolation is not tested here")
    if what == "uid" and not m.uid:
        pytest.skip(f"no unprivileged uid ({m.notes['uid']})")


def _sandbox_leftovers() -> dict:
    """Kernel folders, scratch folders, sandbox processes and cgroups that outlive a grading run."""
    tmp = Path(tempfile.gettempdir())
    procs = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and p.stat().st_uid in SANDBOX_UIDS:
                procs.append(p.name)
        except OSError:
            pass
    cg = sandbox.mechanisms().cgroup
    cgroups = [d.name for base in (cg.bases.values() if cg else []) for d in base.glob("llmlab-*")]
    # (other tools on this machine may be running unsandboxed kernels: their folders are the grader's own)
    kernels = [p.name for p in tmp.glob("llmlab-kernel-*") if _owner(p / "conn") in SANDBOX_UIDS]
    return {"dirs": kernels + sorted(p.name for p in tmp.glob("llmlab-scratch-*")), "procs": procs, "cgroups": cgroups}


def _owner(p: Path) -> int:
    try:
        return p.stat().st_uid
    except OSError:
        return -1


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    # (a context: whatever happens in here, the patch is undone and never reaches another module)
    with pytest.MonkeyPatch.context() as mp:
        yield from _cohort(tmp_path_factory.mktemp("cohort"), mp)


def _cohort(root, mp):
    mp.setattr(course, "SOLUTIONS", make_course(root, plain=True))
    released = nbformat.read(release(["week01"], dest=root / "weeks")[0], as_version=4)
    solved = with_cells(released, add_impl=ADD, mul_impl=MUL, sub_impl=SUB)
    subs, out = root / "submitted", root / "grading"
    spy = {"solutions": str(course.SOLUTIONS), "subs": str(subs), "out": str(out), "repo": str(course.REPO)}

    def nb(**cells):
        return with_cells(solved, **cells)

    renamed_test = nb()
    renamed_test.cells[2].metadata.nbgrader.grade_id = "test_add_mine"
    renamed_answer = nb()
    renamed_answer.cells[1].metadata.nbgrader.grade_id = "my_add"
    deleted = nb()
    del deleted.cells[2]
    peek = f"""
import glob, json
found = {{}}
for label, pattern in [("solutions", "{spy['solutions']}/**/*.ipynb"), ("repo solutions", "{spy['repo']}/solutions/**/*"),
                       ("gradebooks", "/tmp/llmlab-grading-*/**/gradebook.db"), ("output", "{spy['out']}/**/*"),
                       ("other students", "{spy['subs']}/*/week01/*.ipynb")]:
    found[label] = glob.glob(pattern, recursive=True)
print("SEEN", json.dumps(found))
import os
print("UID", os.getuid())
def add(a, b):
    source = open("{spy['solutions']}/week01/toy.ipynb").read()  # cheating: this must fail
    return a + b
"""
    cases = {
        "alice": nb(),
        "bob": nb(add_impl="def add(a, b):\n    return a - b"),
        "sneaky": nb(add_impl="def add(a, b):\n    return 3 if (a, b) == (1, 2) else 0"),  # fails only hidden
        "loop": nb(add_impl="def add(a, b):\n    while True:\n        pass"),
        "sigint": nb(add_impl="import signal\ndef add(a, b):\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                              "    while True:\n        pass"),
        "forkbomb": nb(add_impl="import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n"
                                "        except OSError:\n            pass"),
        "sleepers": nb(add_impl=SLEEPERS),
        "cachewriter": nb(add_impl=CACHE_WRITER),
        "membomb": nb(add_impl="def add(a, b):\n    hog = []\n    while True:\n        hog.append(bytearray(32 * 2**20))"),
        "chatty": nb(add_impl="import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)\n" + ADD),
        "crash": nb(mul_impl="import os\ndef mul(a, b):\n    os._exit(3)"),
        "warns": nb(add_impl="import sys, warnings\ndef add(a, b):\n    print('a library complains', file=sys.stderr)\n"
                             "    warnings.warn('deprecated', UserWarning)\n    return a + b"),
        "peek": nb(add_impl=peek),
        "vandal": nb(add_impl=vandal(spy)),
        "edited": nb(add_impl="def add(a, b):\n    return 0", test_add="pass  # tests? what tests"),
        "deleted": deleted,
        "renamed_test": renamed_test,
        "renamed_answer": renamed_answer,
        "badjson": b'{"cells": [ oops',
        "empty": b"",
        "absent": None,
    }
    for student, content in cases.items():
        d = subs / student / "week01"
        d.mkdir(parents=True)
        if isinstance(content, bytes):
            (d / "toy.ipynb").write_bytes(content)
        elif content is not None:
            nbformat.write(content, d / "toy.ipynb")
    alice_before = hashlib.sha256((subs / "alice/week01/toy.ipynb").read_bytes()).hexdigest()
    before = _sandbox_leftovers()
    guarded = {"repo": repo_files(), "subs": tree_hashes(subs), "solutions": tree_hashes(course.SOLUTIONS)}
    log: list[str] = []
    t0 = time.monotonic()
    try:
        rows = grade(subs, out, workers=2, limits=LIMITS, progress=False, echo=log.append,
                     sandbox=sandbox.mechanisms().isolated)
    finally:
        Path("/tmp/VANDAL-llmlab").unlink(missing_ok=True)  # the system temp folder is no course file
    seconds = time.monotonic() - t0
    by = {}
    for r in rows:
        by.setdefault(r["student"], {})[r["cell"]] = r
    yield {"rows": rows, "by": by, "out": out, "subs": subs, "log": "\n".join(log), "seconds": seconds,
           "alice_before": alice_before, "before": before, "root": root, "guarded": guarded,
           "after": {"repo": repo_files(), "subs": tree_hashes(subs), "solutions": tree_hashes(course.SOLUTIONS)}}


def points(c, student):
    return {cell: r["points"] for cell, r in c["by"][student].items()}


def outputs(c, student, cell_index=1) -> str:
    nb = nbformat.read(c["out"] / "autograded" / student / "week01" / "toy.ipynb", as_version=4)
    return "".join(o.get("text", "") for o in nb.cells[cell_index].outputs)


def test_mechanisms_are_reported_at_grading_start(cohort):
    log = cohort["log"]
    assert "sandbox mechanisms:" in log and "bubblewrap" in log and "rlimits" in log
    print(log.split("\n\n")[0])
    print(f"cohort of {len(cohort['by'])} graded in {cohort['seconds']:.0f} s")


def test_honest_students(cohort):
    assert points(cohort, "alice") == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}
    assert points(cohort, "bob") == {"test_add": 0.0, "test_mul": 2.0, "test_sub": 2.0}
    assert cohort["by"]["bob"]["test_add"]["message"] == "AssertionError: add(1, 2) is wrong"


@pytest.mark.parametrize("student, words", [
    ("loop", "time limit"), ("sigint", "ignored the interrupt"),
    # spinning children: killed as leftovers (without isolation the kernel may also ignore the interrupt: restarted)
    ("forkbomb", "processes that did not exit" if sandbox.mechanisms().isolated else ""),
    ("sleepers", f"processes that did not exit (limit {LIMITS.nproc})"),
])
def test_runaway_code_costs_only_its_own_cell(cohort, student, words):
    # the same grade as an ordinary wrong answer in add(): the other cells are graded as usual
    assert points(cohort, student) == {"test_add": 0.0, "test_mul": 2.0, "test_sub": 2.0}
    assert words in cohort["by"][student]["test_add"]["message"]


def test_leftover_processes_are_named_everywhere(cohort):
    """The sleeping children are killed after their cell; the cause is in the CSV, the summary and the feedback."""
    msg = cohort["by"]["sleepers"]["test_add"]["message"]
    assert msg.startswith("LeftoverProcesses: the cell started ") and "they were killed" in msg
    n = int(msg.split("started ")[1].split()[0])
    assert 1 < n < LIMITS.nproc  # some forks succeeded, the process limit stopped the rest
    assert "stopped by the grader" in (cohort["out"] / "summary.txt").read_text()
    assert "processes that did not exit" in (cohort["out"] / "summary.txt").read_text()
    assert "processes that did not exit" in (cohort["out"] / "feedback/sleepers/week01/toy.html").read_text()
    assert "processes that did not exit" in (cohort["out"] / "feedback/sleepers/index.html").read_text()


def test_memory_bomb(cohort):
    assert points(cohort, "membomb") == {"test_add": 0.0, "test_mul": 2.0, "test_sub": 2.0}
    msg = cohort["by"]["membomb"]["test_add"]["message"]
    assert "memory" in msg.lower(), msg  # "ran out of memory (limit 512 MB)" (cgroup) or MemoryError (rlimit)


def test_kernel_crash(cohort):
    assert points(cohort, "crash") == {"test_add": 2.0, "test_mul": 0.0, "test_sub": 2.0}
    assert "exit code 3" in cohort["by"]["crash"]["test_mul"]["message"]


def test_100mb_of_output_is_cut(cohort):
    assert points(cohort, "chatty") == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}
    size = (cohort["out"] / "autograded/chatty/week01/toy.ipynb").stat().st_size
    assert size < 3 * 2**20, size
    assert "output cut" in outputs(cohort, "chatty")


def test_stderr_from_a_learners_function_costs_nothing(cohort):
    assert points(cohort, "warns") == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}
    nb = nbformat.read(cohort["out"] / "autograded/warns/week01/toy.ipynb", as_version=4)
    text = "".join(o.get("text", "") for o in nb.cells[2].outputs)
    assert "[stderr] a library complains" in text  # kept, visible, and relabelled


def test_a_test_cell_that_raises_still_fails_despite_the_stderr_rule(cohort):
    # bob's failing test cell has an error output: the stderr relabelling never turns it into a pass
    assert cohort["by"]["bob"]["test_add"]["status"] == "failed"


def test_cannot_read_solutions_gradebook_or_other_students(cohort):
    isolation_needed("bwrap")
    seen = json.loads(outputs(cohort, "peek").split("SEEN", 1)[1].strip().splitlines()[0])
    assert seen == {k: [] for k in seen}, seen
    # the cheating add() could not open the solution: that test fails, the rest stands
    assert points(cohort, "peek") == {"test_add": 0.0, "test_mul": 2.0, "test_sub": 2.0}
    assert "FileNotFoundError" in cohort["by"]["peek"]["test_add"]["message"]


def test_cannot_write_outside_scratch(cohort):
    isolation_needed("bwrap")
    tried = outputs(cohort, "vandal")
    assert "WROTE" not in tried, tried  # not even the system temp folder
    assert points(cohort, "vandal") == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}


def test_cannot_change_the_course(cohort):
    """Whatever the machine: the sources, the other submissions and the repository are as they were. With
    isolation the writes fail; without it (LLMLAB_SANDBOX=none) they are undone, and the vandal gets `error`."""
    assert hashlib.sha256((cohort["subs"] / "alice/week01/toy.ipynb").read_bytes()).hexdigest() == cohort["alice_before"]
    assert cohort["after"]["subs"] == cohort["guarded"]["subs"]
    assert cohort["after"]["solutions"] == cohort["guarded"]["solutions"]
    assert not (course.REPO / "VANDAL").exists()
    if sandbox.mechanisms().isolated:
        tried = ast.literal_eval(outputs(cohort, "vandal").split("TRIED", 1)[1].strip().splitlines()[0])
        assert all(how != "WROTE" for target, how in tried.items() if not target.startswith("/tmp/VANDAL")), tried
        assert points(cohort, "vandal") == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}
    else:
        rows = cohort["by"]["vandal"].values()
        assert {r["status"] for r in rows} == {"error"} and all("it tried to modify" in r["message"] for r in rows)


def test_nothing_under_the_repository_changes(cohort):
    """Not the course library, not its __pycache__ (the cache writer's .pyc went to its private copy)."""
    before, after = cohort["guarded"]["repo"], cohort["after"]["repo"]
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:10]
    assert points(cohort, "cachewriter") == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}


def test_kernels_run_as_an_unprivileged_user(cohort):
    isolation_needed("uid")
    uid = int(outputs(cohort, "peek").split("UID", 1)[1].split()[0])
    assert uid in SANDBOX_UIDS and uid != os.geteuid()


def test_edited_and_deleted_test_cells_are_restored(cohort):
    # editing the test away does not help: the instructor's test runs, and the note says so
    assert points(cohort, "edited") == {"test_add": 0.0, "test_mul": 2.0, "test_sub": 2.0}
    assert "test cell 'test_add' was edited" in cohort["by"]["edited"]["test_add"]["notes"]
    assert points(cohort, "deleted") == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}
    assert "test cell 'test_add' was deleted" in cohort["by"]["deleted"]["test_add"]["notes"]


@pytest.mark.parametrize("student, old", [("renamed_test", "test_add_mine"), ("renamed_answer", "my_add")])
def test_renamed_grade_ids_do_not_sink_the_submission(cohort, student, old):
    assert points(cohort, student) == {"test_add": 2.0, "test_mul": 2.0, "test_sub": 2.0}
    assert f"grade id '{old}' is not in the assignment" in cohort["by"][student]["test_add"]["notes"]


@pytest.mark.parametrize("student, words", [("badjson", "not valid JSON"), ("empty", "empty")])
def test_broken_files_are_errors_not_zeros(cohort, student, words):
    rows = cohort["by"][student].values()
    assert {r["status"] for r in rows} == {"error"} and all(r["points"] == "" for r in rows)
    assert all(words in r["message"] for r in rows)


def test_not_handed_in_is_missing(cohort):
    assert {r["status"] for r in cohort["by"]["absent"].values()} == {"missing"}


def test_nothing_is_left_behind(cohort):
    after = _sandbox_leftovers()
    # nothing the cohort started is still there; leftovers that existed before (another grading run on this
    # machine, e.g. a test on the other pytest worker) may have been cleaned up meanwhile, so compare as subsets
    new = {k: sorted(set(after[k]) - set(cohort["before"][k])) for k in after}
    assert all(not v for v in new.values()), (cohort["before"], after)


def test_feedback_has_no_hidden_tests(cohort):
    html = (cohort["out"] / "feedback/bob/week01/toy.html").read_text()
    assert "add(1, 2) is wrong" in html  # the visible test's message
    assert "add(10, 5)" not in html and "HIDDEN" not in html
    index = (cohort["out"] / "feedback/bob/index.html").read_text()
    assert "add(1, 2) is wrong" in index and "add(10, 5)" not in index
    # a hidden test that fails: its message is shown, its code is not (not even in the traceback)
    assert points(cohort, "sneaky") == {"test_add": 0.0, "test_mul": 2.0, "test_sub": 2.0}
    html = (cohort["out"] / "feedback/sneaky/week01/toy.html").read_text()
    assert "hidden: add(10, 5)" in html and "== 15" not in html


def test_gradebook_is_the_record(cohort):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{cohort['out'] / 'gradebook.db'}", "llmlab") as gb:
        assert gb.find_submission("week01", "alice").score == 6
        assert gb.find_submission("week01", "bob").score == 4
        grades = gb.find_submission_notebook("toy", "week01", "badjson").grades
        assert all(g.auto_score is None and g.needs_manual_grade for g in grades)  # for a human, not 0


def test_summary_table(cohort):
    text = (cohort["out"] / "summary.txt").read_text()
    errors = 2 if sandbox.mechanisms().isolated else 3  # badjson, empty (and, without isolation, the vandal)
    assert "week01/toy" in text and "hardest tests" in text and f"could not be graded ({errors}" in text


def test_rerun_skips_graded_submissions_and_regrades_a_removed_one(cohort):
    (cohort["out"] / "results/bob/week01.json").unlink()
    log: list[str] = []
    t0 = time.monotonic()
    rows = grade(cohort["subs"], cohort["out"], workers=2, limits=LIMITS, progress=False, echo=log.append,
                 sandbox=sandbox.mechanisms().isolated)
    assert f"{len(cohort['by']) - 1} already graded" in "\n".join(log) and "grading 1 " in "\n".join(log)
    assert rows == cohort["rows"]  # idempotent
    print(f"rerun: {time.monotonic() - t0:.1f} s")


def test_resume_after_interrupt(tmp_path):
    """Ctrl-C in the middle of a run; the next run grades only what was left."""
    sol = make_course(tmp_path, plain=True)
    subs, out = tmp_path / "submitted", tmp_path / "grading"
    for i in range(3):
        d = subs / f"s{i}" / "week01"
        d.mkdir(parents=True)
        body = "import time\ntime.sleep(3)\n" + ADD if i else ADD
        nbformat.write(with_cells(nbformat.read(sol / "week01/toy.ipynb", as_version=4), add_impl=body), d / "toy.ipynb")
    env = {**os.environ, "LLMLAB_SOLUTIONS": str(sol)}
    cmd = [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "-j", "2", "--no-progress"]
    if not sandbox.mechanisms().isolated:
        cmd.append("--no-sandbox")
    proc = subprocess.Popen(cmd, cwd=course.REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    first = out / "results/s0/week01.json"
    deadline = time.monotonic() + 240
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert first.exists(), proc.communicate()[0]
    os.killpg(proc.pid, 2)  # what Ctrl-C in a terminal does
    text = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, text
    assert "interrupted: 1 of 3" in text, text
    stamp = json.loads(first.read_text())["graded_at"]
    log: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(course, "SOLUTIONS", sol)
        rows = grade(subs, out, workers=2, progress=False, echo=log.append, sandbox=sandbox.mechanisms().isolated)
    assert "1 already graded" in "\n".join(log)
    assert json.loads(first.read_text())["graded_at"] == stamp
    assert {r["student"]: r["status"] for r in rows} == {"s0": "passed", "s1": "passed", "s2": "passed"}


# ---------------------------------------------------------------------------------------------------
# isolation forced off (what a machine without bubblewrap and without a uid switch looks like)

LIMIT_FLAGS = ["--cell-timeout-s", "10", "--interrupt-grace-s", "2", "--memory-mb", "512", "--address-space-mb",
               "1536", "--nproc", "64", "--output-mb", "1", "--wall-s", "120"]


@pytest.fixture(scope="module")
def unisolated(tmp_path_factory):
    """A small cohort graded with LLMLAB_SANDBOX=none: first refused, then with --no-sandbox."""
    root = tmp_path_factory.mktemp("unisolated")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(sandbox.SANDBOX_ENV, "none")
        mp.setattr(sandbox, "_MECH", None)  # probed again under the switch; the old one comes back after
        mp.setattr(course, "SOLUTIONS", make_course(root, plain=True))
        released = nbformat.read(release(["week01"], dest=root / "weeks")[0], as_version=4)
        subs, out = root / "submitted", root / "grading"
        spy = {"solutions": str(course.SOLUTIONS), "subs": str(subs), "out": str(out), "repo": str(course.REPO)}
        solved = with_cells(released, add_impl=ADD, mul_impl=MUL, sub_impl=SUB)
        for student, add in [("alice", ADD), ("sleepers", SLEEPERS), ("vandal", vandal(spy)),
                             ("cachewriter", CACHE_WRITER)]:
            (subs / student / "week01").mkdir(parents=True)
            nbformat.write(with_cells(solved, add_impl=add), subs / student / "week01" / "toy.ipynb")
        guarded = {"repo": repo_files(), "subs": tree_hashes(subs), "solutions": tree_hashes(course.SOLUTIONS)}
        cmd = ["grade", str(subs), "--out", str(out), "--no-progress", "-j", "2"] + LIMIT_FLAGS
        refused, said = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(refused), contextlib.redirect_stdout(io.StringIO()):
            refused_rc = main(cmd)
        try:
            with contextlib.redirect_stdout(said):
                rc = main(cmd + ["--no-sandbox"])
        finally:
            Path("/tmp/VANDAL-llmlab").unlink(missing_ok=True)
        with open(out / "grades.csv") as f:
            rows = list(csv.DictReader(f))
        yield {"refused_rc": refused_rc, "refused": refused.getvalue(), "rc": rc, "log": said.getvalue(), "out": out,
               "by": {(r["student"], r["cell"]): r for r in rows}, "guarded": guarded,
               "after": {"repo": repo_files(), "subs": tree_hashes(subs), "solutions": tree_hashes(course.SOLUTIONS)}}


def test_refuses_to_grade_without_isolation(unisolated, tmp_path):
    assert unisolated["refused_rc"] == 2
    text = unisolated["refused"]
    assert "refusing to grade" in text and "read and write every file you can" in text
    assert "apt-get install bubblewrap" in text and "--no-sandbox" in text and "container" in text
    with pytest.MonkeyPatch.context() as mp:  # the API refuses too, before it writes anything
        mp.setenv(sandbox.SANDBOX_ENV, "none")
        mp.setattr(sandbox, "_MECH", None)
        with pytest.raises(NoIsolation):
            grade(unisolated["out"].parent / "submitted", tmp_path / "never", progress=False, echo=lambda *_: None)
    assert not (tmp_path / "never").exists()


def test_no_sandbox_is_loud_and_serial(unisolated):
    log = unisolated["log"]
    assert unisolated["rc"] == 0
    assert "NO ISOLATION (--no-sandbox)" in log and "read AND WRITE" in log and "with 1 worker(s)" in log


def test_no_sandbox_grades_runaway_code_as_usual(unisolated):
    by = unisolated["by"]
    assert [by[("alice", c)]["points"] for c in ("test_add", "test_mul", "test_sub")] == ["2.0", "2.0", "2.0"]
    assert [by[("sleepers", c)]["points"] for c in ("test_add", "test_mul", "test_sub")] == ["0.0", "2.0", "2.0"]
    assert "processes that did not exit (limit 64)" in by[("sleepers", "test_add")]["message"]


def test_no_sandbox_undoes_what_a_submission_changed(unisolated):
    """The vandal wrote over alice's work, the sources and the repository: all put back, and it gets `error`."""
    vandal = [r for (student, _), r in unisolated["by"].items() if student == "vandal"]
    assert {r["status"] for r in vandal} == {"error"}
    msg = vandal[0]["message"]
    assert msg.startswith("it tried to modify ") and "restored from the grader's copy" in msg
    assert "alice/week01/toy.ipynb (changed)" in msg and "VANDAL (added)" in msg
    for tree in ("subs", "solutions", "repo"):
        assert unisolated["after"][tree] == unisolated["guarded"][tree], tree
    assert (unisolated["out"] / "grades.csv").read_text().startswith("student,assignment,")  # not its "{}"
    assert [unisolated["by"][("cachewriter", c)]["points"] for c in ("test_add", "test_mul", "test_sub")] == \
        ["2.0", "2.0", "2.0"]  # its .pyc went into the kernel's private copy of llmlab, not the repository
