"""Grading throughput: serial nbgrader vs the course's parallel, sandboxed grader, in one run.

A cohort of N students (default 20) hands in Week 1 notebooks (default: ``01_attention``, a
representative one; ``--notebooks all`` for the whole week): most hand in the solution (every cell
runs: the expensive case), every fourth the untouched release notebook. The same cohort is graded

1. serially by nbgrader itself: ``NbGraderAPI.autograde`` student after student in one course root,
   with nbgrader's own preprocessors (no sandbox; the course's kernel settings and time limits), and
2. by ``python -m autograder grade``: one worker per core, each submission sandboxed.

Prints submissions per minute, wall and CPU seconds for both, and checks that both give the same
points. Other processes on the machine skew wall times; CPU seconds are reported too.

    .venv/bin/python benchmarks/bench_grading.py [--students 20] [--notebooks 01_attention] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import autograder.course as course  # noqa: E402
from autograder.course import TempCourse, grade_ids, grading_env  # noqa: E402

STOCK_AUTOGRADE = [  # nbgrader 0.9.6's own Autograde.autograde_preprocessors
    "nbgrader.preprocessors.Execute", "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def make_cohort(week: str, names: list[str], students: int, dest: Path) -> None:
    with TempCourse({week: names}) as c:
        c.generate(week)
        for i in range(students):
            d = dest / f"student{i:02d}" / week
            d.mkdir(parents=True)
            for name in names:
                src = c.root / "weeks" / week / f"{name}.ipynb" if i % 4 == 3 else course.SOLUTIONS / week / f"{name}.ipynb"
                shutil.copy(src, d / f"{name}.ipynb")


def serial_nbgrader(week: str, names: list[str], subs: Path) -> dict[str, float]:
    """nbgrader alone: one course root, students one after the other."""
    from nbgrader.api import Gradebook

    with TempCourse({week: names}, overrides={"Autograde.autograde_preprocessors": STOCK_AUTOGRADE}) as c:
        c.generate(week)
        shutil.copytree(subs, c.root / "submitted")
        api = c.api()
        totals = {}
        for student in sorted(p.name for p in subs.iterdir()):
            with grading_env():
                result = api.autograde(week, student, force=True, create=True)
            if not result["success"]:
                totals[student] = float("nan")
                continue
            with Gradebook(c.db_url, "llmlab") as gb:
                totals[student] = gb.find_submission(week, student).score
    return totals


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--week", default="week01")
    p.add_argument("--notebooks", default="01_attention", help="comma-separated names, or 'all'")
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--workers", type=int, default=None, help="parallel grader workers (default: one per core)")
    p.add_argument("--skip-serial", action="store_true")
    p.add_argument("--no-sandbox", action="store_true",
                   help="time the grader without isolation (one submission at a time), e.g. where bubblewrap is missing")
    args = p.parse_args()
    names = ([nb.stem for nb in course.notebooks(args.week)] if args.notebooks == "all"
             else args.notebooks.split(","))
    for n in names:
        grade_ids(args.week, n)  # fails early if a notebook does not exist
    cores = len(os.sched_getaffinity(0))
    workers = args.workers or cores
    tmp = Path(tempfile.mkdtemp(prefix="llmlab-bench-grading-"))
    try:
        subs = tmp / "submitted"
        make_cohort(args.week, names, args.students, subs)
        n = args.students
        print(f"cohort: {n} students x {args.week}/{'+'.join(names)}; {cores} cores; LLMLAB_FAST=1 grading")
        results = {}
        if not args.skip_serial:
            t, c = time.perf_counter(), cpu_seconds()
            serial = serial_nbgrader(args.week, names, subs)
            results["serial nbgrader"] = (time.perf_counter() - t, cpu_seconds() - c)
        from autograder import sandbox
        from autograder.grade import grade

        sandboxed = not args.no_sandbox
        if sandboxed and not sandbox.mechanisms().isolated:
            print("no isolation here (no bubblewrap, no spare uid): timing the grader with --no-sandbox, one at a time")
            sandboxed = False
        if not sandboxed:
            workers = 1
        t, c = time.perf_counter(), cpu_seconds()
        rows = grade(subs, tmp / "grading", workers=workers, progress=False, echo=lambda *_: None, sandbox=sandboxed)
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        # sandboxed kernels' CPU time is not in rusage (it is lost with bubblewrap's pid namespace);
        # each submission's cgroup measured it and the record holds it
        kernel_cpu = [json.loads(f.read_text()).get("kernel_cpu_s") for f in (tmp / "grading/results").rglob("*.json")]
        if kernel_cpu and all(k is not None for k in kernel_cpu):
            cpu += sum(kernel_cpu)
        else:
            print("(no cgroup CPU accounting here: the parallel grader's CPU seconds leave out its kernels)")
        label = f"parallel grader (-j {workers}, {'sandboxed' if sandboxed else 'no sandbox'})"
        results[label] = (wall, cpu)
        parallel = {}
        for r in rows:
            parallel[r["student"]] = parallel.get(r["student"], 0.0) + float(r["points"] or 0)
        print(f"{'grader':<38} {'wall s':>8} {'CPU s':>8} {'subm./min':>10}")
        for label, (wall, cpu) in results.items():
            print(f"{label:<38} {wall:>8.1f} {cpu:>8.1f} {n / wall * 60:>10.2f}")
        if "serial nbgrader" in results:
            speedup = results["serial nbgrader"][0] / results[label][0]
            print(f"speed-up (wall): {speedup:.2f}x")
            same = all(abs(serial[s] - parallel[s]) < 1e-9 for s in serial)
            print(f"same points from both: {'yes' if same else 'NO'} (totals: {sorted(set(parallel.values()))})")
            if not same:
                print({s: (serial[s], parallel[s]) for s in serial if abs(serial[s] - parallel[s]) >= 1e-9})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
