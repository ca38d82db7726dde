"""Cohort grading: every student x every week of a submissions folder, in parallel, resumable.

Layout in: nbgrader's ``submitted/<student>/<weekNN>/<notebook>.ipynb`` (the folder given, or a
course root holding ``submitted/``). The unit of work is one submission (student x week), which is
what ``nbgrader autograde`` grades.

Design:

- **Workers.** ``workers`` processes (default: one per core). Each holds its own throw-away nbgrader
  course root (``TempCourse``: its own copy of ``solutions/`` and its own sqlite gradebook, so workers
  never contend for a database), generates each week once, reserves its own unprivileged uid and its
  own CPU cores for the sandbox, and grades submission after submission with ``nbgrader autograde``
  and ``generate_feedback`` (``autograder.engine``).
- **State.** A worker writes each submission's result to ``OUT/results/<student>/<week>.json``
  (atomically: temp file + rename), after its feedback HTML and autograded notebooks are in place.
  The record holds a key: a hash of the submitted files, the week's source files, the limits and the
  grader version. A rerun skips every submission whose record has the same key (``--force``
  regrades), so an interrupted run resumes where it stopped and a finished one is not redone;
  grading is deterministic (seeded tests, same limits), so a regrade gives the same points.
- **Isolation or a refusal.** Student code never runs with the grader's rights by accident: without
  bubblewrap or an unprivileged uid (``autograder.sandbox``) grading refuses to start unless
  ``--no-sandbox`` is given, which grades one submission at a time, loudly.
- **Nothing it must not touch changes.** Kernels work on private copies (the worker's course root,
  a scratch copy of the submission). Before the first submission, the sources, every submission,
  the repository and (one at a time) the output folder are checksummed and copied
  (``autograder.guard``); after each submission they are checked: a change is undone from the copy
  and that submission is graded ``error``, "it tried to modify ...".
- **Record.** At the end the main process rebuilds ``OUT/gradebook.db`` (an nbgrader gradebook:
  the assignments from ``solutions/``, one submission per record, auto scores per graded cell;
  an ungradable notebook is left *ungraded* -- ``needs_manual_grade`` -- never scored 0), writes
  ``OUT/grades.csv`` and ``OUT/feedback/<student>/index.html``, and prints the summary.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import course as course_mod
from .course import WEEK, TempCourse, grade_ids, notebooks
from .sandbox import Limits

GRADER_VERSION = "3"
FIELDS = ["student", "assignment", "notebook", "cell", "points", "max_points", "status", "message", "notes"]


@dataclass
class Job:
    student: str
    week: str
    folder: Path  # the student's folder for this week
    files: dict[str, Path]  # course notebook name -> submitted file
    key: str = ""

    @property
    def record_path_rel(self) -> Path:
        return Path("results") / self.student / f"{self.week}.json"


class NoIsolation(RuntimeError):
    """Neither bubblewrap nor an unprivileged uid works here, and --no-sandbox was not given."""


def refusal(mech) -> str:
    """Why grading does not start without isolation, and what to do instead."""
    return "\n".join([
        "refusing to grade: no isolation works on this machine, so student code would run with your rights",
        "and could read and write every file you can (solutions/ with the hidden tests, the gradebook, every",
        "learner's work). What was tried:",
        f"  bubblewrap: {mech.notes.get('bwrap', '')}",
        f"  unprivileged uid: {mech.notes.get('uid', '')}",
        "What to do (README, 'The sandbox'):",
        "  - install bubblewrap: sudo apt-get install bubblewrap (Debian/Ubuntu), sudo dnf install bubblewrap (Fedora);",
        "  - or grade as root: kernels then run as an unprivileged uid (it must be able to read the Python install);",
        "  - on macOS or without root: grade in a Linux container or VM, as root there;",
        "  - for submissions you trust: add --no-sandbox (student code then runs with your rights; limits still apply).",
    ])


NO_ISOLATION_BANNER = """\
!! NO ISOLATION (--no-sandbox): student code runs with YOUR rights. It can read AND WRITE every file you can
!! (solutions/ with the hidden tests, the gradebook, every learner's work, your home folder) and use the network.
!! Still in force: time, memory, process and output limits; leftover processes are killed after every cell;
!! the course's files are checksummed and checked after every submission (a change is undone and that
!! submission graded `error`), so submissions are graded one at a time. Use it only for submissions you trust."""


def find_submissions(folder: Path) -> dict[tuple[str, str], list[Path]]:
    """(student, week) -> notebooks handed in, for every week that exists in ``solutions/``."""
    folder = Path(folder)
    if (folder / "submitted").is_dir():
        folder = folder / "submitted"
    found: dict[tuple[str, str], list[Path]] = {}
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for week_dir in sorted(p for p in student_dir.iterdir() if p.is_dir() and WEEK.match(p.name)):
            if (course_mod.SOLUTIONS / week_dir.name).is_dir():
                found[(student_dir.name, week_dir.name)] = sorted(
                    p for p in week_dir.glob("*.ipynb") if not p.is_symlink())
    return found


def find_jobs(folder: Path) -> list[Job]:
    subs = find_submissions(folder)
    root = Path(folder) / "submitted" if (Path(folder) / "submitted").is_dir() else Path(folder)
    jobs = []
    for (student, week), files in subs.items():
        expected = {nb.stem for nb in notebooks(week)}
        jobs.append(Job(student, week, root / student / week, {f.stem: f for f in files if f.stem in expected}))
    return jobs


def job_key(job: Job, limits: Limits, sandbox: bool) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([GRADER_VERSION, limits.to_dict(), sandbox], sort_keys=True).encode())
    for label, base in (("submission", job.folder), ("source", course_mod.SOLUTIONS / job.week)):
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.is_symlink() and ".ipynb_checkpoints" not in p.parts:
                h.update(f"{label}:{p.relative_to(base)}\0".encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def load_record(out: Path, job: Job) -> dict | None:
    try:
        return json.loads((out / job.record_path_rel).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------
# the worker side

_W: dict = {}


def _init_worker(settings: dict, slots=None) -> None:
    """Runs once in each worker process; ``slots`` hands out worker numbers 0..N-1."""
    import signal

    from . import sandbox

    if slots is not None:
        # a pool worker: Ctrl-C is the main process's business (it stops the workers); a
        # KeyboardInterrupt here would be swallowed by nbgrader and recorded as the student's error.
        # When the main process stops us (SIGTERM), unwind so that the kernel and scratch are cleaned up
        def on_sigterm(signum, frame):
            _W["interrupted"] = True
            sys.exit(143)

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, on_sigterm)
    else:
        def on_sigint(signum, frame):
            _W["interrupted"] = True
            signal.default_int_handler(signum, frame)

        signal.signal(signal.SIGINT, on_sigint)

    course_mod.SOLUTIONS = Path(settings["solutions"])
    sandbox.WORK_DIR, sandbox.RUN_TAG = settings["tmp"], settings["tag"]
    if slots is not None:
        # orphans of a kernel's children become this worker's, so they can be found and killed; and the
        # worker never writes bytecode into the repository (the guard would see it)
        sandbox.become_subreaper()
        sys.dont_write_bytecode = True
    if settings.get("mechanisms") is not None:
        sandbox._MECH = settings["mechanisms"]
    mech = sandbox.mechanisms() if settings["sandbox"] else None
    uid = sandbox.reserve_uid() if mech is not None and mech.uid else None
    cpus = None
    if slots is not None and settings["sandbox"]:
        # worker n of N gets its own share of the cores for its kernels
        slot = slots.get()
        allowed = sorted(os.sched_getaffinity(0))
        per = max(1, len(allowed) // settings["workers"])
        cpus = [allowed[(slot * per + i) % len(allowed)] for i in range(per)]
    overrides = {"GradingExecute.sandbox": settings["sandbox"], "GradingExecute.limits": settings["limits"]}
    if uid is not None:
        overrides["GradingExecute.sandbox_uid"] = uid
    if cpus:
        overrides["GradingExecute.sandbox_cpus"] = cpus
    _W.clear()
    _W.update(settings=settings, overrides=overrides, courses={}, interrupted=False, guard=settings.get("guard"))


def _course(week: str) -> TempCourse:
    courses = _W["courses"]
    if week not in courses:
        c = TempCourse({week: None}, overrides=_W["overrides"], base=_W["settings"]["tmp"])
        c.generate(week)
        # the worker's private copy of the sources, and its gradebook as generated (restored before every
        # submission: nbgrader reads the instructor's test cells back from it)
        (c.root / ".pristine").mkdir()
        shutil.copy2(c.root / "gradebook.db", c.root / ".pristine" / "gradebook.db")
        if _W.get("guard") is not None:
            for sub in ("solutions", "weeks", ".pristine"):
                _W["guard"].add(f"worker copy {week}/{sub}", c.root / sub)
        courses[week] = c
    c = courses[week]
    shutil.copy2(c.root / ".pristine" / "gradebook.db", c.root / "gradebook.db")
    return c


def _tampered() -> str | None:
    """None if nothing the grader protects changed; else undo the changes and say what they were."""
    from .guard import describe

    guard = _W.get("guard")
    changes = guard.check() if guard is not None else []
    if not changes:
        return None
    problems = guard.restore(changes)
    return (f"it tried to modify {describe(changes)}; "
            + ("restored from the grader's copy" if not problems else "NOT restored: " + "; ".join(problems[:3])))


def _grade_job(job: Job) -> dict:
    """Grade one submission; write its record (the commit point) and return it."""
    from .engine import NotebookResult, errors, grade_week

    out = Path(_W["settings"]["out"])
    t0 = time.monotonic()
    record = {"version": GRADER_VERSION, "key": job.key, "student": job.student, "week": job.week,
              "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "internal_error": None}
    expected = [nb.stem for nb in notebooks(job.week)]
    from . import sandbox

    sandbox.KERNEL_CPU.update(seconds=0.0, measured=False)
    tampered = None
    try:
        c = _course(job.week)
        results = grade_week(c, job.student, job.week, job.files, expected, extra_dir=job.folder, feedback=True)
        tampered = _tampered()
        if tampered is None:
            _copy_outputs(c, job, out)
        for sub in ("submitted", "autograded", "feedback"):  # the next student must not see this one
            shutil.rmtree(c.root / sub / job.student, ignore_errors=True)
    except Exception as e:  # noqa: BLE001 - a grader failure is reported (and retried next run), never 0 points
        tampered = tampered or _tampered()
        reason = f"grader error ({type(e).__name__}: {e}); it will be retried on the next run"
        results = [NotebookResult(name, errors(grade_ids(job.week, name), reason)) for name in expected]
        record["internal_error"] = None if tampered else traceback.format_exc()[-2000:]
    if tampered:  # an attack is the submission's result, not the grader's failure: an error, for a human
        results = [NotebookResult(name, errors(grade_ids(job.week, name), tampered)) for name in expected]
        for sub in ("feedback", "autograded", "submitted"):
            shutil.rmtree(out / sub / job.student / job.week, ignore_errors=True)
    if _W.get("interrupted"):  # nbgrader turns Ctrl-C into a failed autograde: do not record that
        raise KeyboardInterrupt
    record["seconds"] = round(time.monotonic() - t0, 2)
    record["kernel_cpu_s"] = round(sandbox.KERNEL_CPU["seconds"], 2) if sandbox.KERNEL_CPU["measured"] else None
    record["notebooks"] = [r.to_dict() for r in results]
    write_atomic(out / job.record_path_rel, json.dumps(record, indent=1, ensure_ascii=False))
    if _W.get("guard") is not None:
        _W["guard"].accept("output")  # what this worker just wrote is the new expected state (serial runs)
    return record


def _copy_outputs(c: TempCourse, job: Job, out: Path) -> None:
    for sub in ("feedback", "autograded"):
        src = c.root / sub / job.student / job.week
        dest = out / sub / job.student / job.week
        shutil.rmtree(dest, ignore_errors=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
    # the notebooks as handed in (byte for byte: nbgrader's release_feedback matches them by hash)
    dest = out / "submitted" / job.student / job.week
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name, f in job.files.items():
        shutil.copyfile(f, dest / f"{name}.ipynb")
    if (job.folder / "timestamp.txt").is_file() and not (job.folder / "timestamp.txt").is_symlink():
        shutil.copyfile(job.folder / "timestamp.txt", dest / "timestamp.txt")


# ---------------------------------------------------------------------------------------------------
# the main side


def grade(folder: str | Path, out: str | Path, workers: int | None = None, force: bool = False,
          limits: Limits | None = None, sandbox: bool = True, progress: bool = True, echo=print) -> list[dict]:
    """Grade every submission under ``folder`` into the output folder ``out``; returns the CSV rows."""
    folder, out = Path(folder), Path(out)
    limits = limits or Limits()
    jobs = find_jobs(folder)
    if not jobs:
        raise FileNotFoundError(f"{folder}: no <student>/<weekNN>/*.ipynb submissions found")
    workers = max(1, min(workers or len(os.sched_getaffinity(0)), len(jobs)))
    from . import sandbox as sb

    mech = sb.mechanisms()
    if sandbox and not mech.isolated:
        raise NoIsolation(refusal(mech))
    if not sandbox:
        # the limits stay; the isolation goes, and one submission at a time, so that a change to the
        # course's files is pinned on the submission that made it
        mech, workers = mech.without_isolation("--no-sandbox"), 1
    out.mkdir(parents=True, exist_ok=True)
    echo(sb.report(limits, mech))
    if not sandbox:
        echo(NO_ISOLATION_BANNER)
    for job in jobs:
        job.key = job_key(job, limits, sandbox)
    todo = []
    for job in jobs:
        rec = load_record(out, job)
        if force or rec is None or rec.get("key") != job.key or rec.get("internal_error"):
            todo.append(job)
    done = len(jobs) - len(todo)
    workers = min(workers, max(1, len(todo)))
    echo(f"{len(jobs)} submissions ({len({j.student for j in jobs})} students); "
         f"{done} already graded{' (use --force to regrade)' if done else ''}; grading {len(todo)} "
         f"with {workers} worker(s)")
    # the workers' course roots live in one folder that this process removes, however the run ends
    # (0711: a sandbox uid may pass through to its own scratch folder, but not list the others)
    tmp = tempfile.mkdtemp(prefix="llmlab-grading-")
    os.chmod(tmp, 0o711)
    settings = {"solutions": str(course_mod.SOLUTIONS), "sandbox": True, "limits": limits.to_dict(),
                "out": str(out), "workers": workers, "mechanisms": mech, "tmp": tmp,
                "tag": Path(tmp).name.rsplit("-", 1)[-1]}
    try:
        settings["guard"] = _guard(jobs, out, Path(tmp) / "guard", serial=workers == 1)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bar = _bar(len(jobs), done, progress)
    try:
        if todo:
            _run(todo, settings, workers, bar)
    except KeyboardInterrupt:
        bar.close()
        graded = sum(1 for j in jobs if (r := load_record(out, j)) and r.get("key") == j.key)
        echo(f"\ninterrupted: {graded} of {len(jobs)} submissions are graded and saved in {out / 'results'}; "
             "run the same command again to grade the rest")
        raise
    finally:
        bar.close()
        sb.cleanup_run(settings["tag"])
        sb.remove_tree(Path(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    return finish(out, jobs, echo=echo)


def _guard(jobs: list[Job], out: Path, backup: Path, serial: bool):
    """Checksums and copies of what grading must not change (see ``autograder.guard``)."""
    from . import engine, execute, feedback, results, submission  # noqa: F401 - their bytecode exists now
    from .guard import SKIP_NAMES, Guard

    root = jobs[0].folder.parents[1]  # the submissions folder (<root>/<student>/<week>)
    guard = Guard(backup)
    guard.add("solutions", course_mod.SOLUTIONS)
    guard.add("submissions", root)
    # the repository: the course library, the grader, the release notebooks (runs/ and out/ hold run outputs)
    guard.add("repository", course_mod.REPO, skip=[course_mod.SOLUTIONS, root, out, backup.parent],
              skip_names=SKIP_NAMES | {"runs", "out", "tmp"})
    if serial:  # (parallel workers write it at any time: there, only isolation protects it)
        guard.add("output", out)
    return guard


def _run(todo: list[Job], settings: dict, workers: int, bar) -> None:
    if workers == 1 or len(todo) == 1:
        import signal

        from . import sandbox as sb

        saved = signal.getsignal(signal.SIGINT), sb._MECH, sys.dont_write_bytecode
        _init_worker(settings)
        sb.become_subreaper()
        sys.dont_write_bytecode = True
        try:
            for job in todo:
                _grade_job(job)
                bar.update(1)
        finally:
            signal.signal(signal.SIGINT, saved[0])
            sb.become_subreaper(False)
            _cleanup_worker()
            sb.WORK_DIR, sb.RUN_TAG, sb._MECH, sys.dont_write_bytecode = None, "k", saved[1], saved[2]
        return
    import concurrent.futures as cf
    import multiprocessing as mp

    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    # the workers start with this environment: no bytecode written into the repository by their imports
    saved_flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    slots = ctx.Queue()
    for i in range(workers):
        slots.put(i)
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                  initargs=(settings, slots))
    try:
        futures = [pool.submit(_grade_job, job) for job in todo]
        for fut in cf.as_completed(futures):
            fut.result()
            bar.update(1)
    except BrokenProcessPool:
        pool.shutdown(wait=False, cancel_futures=True)
        raise RuntimeError("a grading worker process died (killed from outside?); the submissions graded so far "
                           "are saved: run the same command again to grade the rest") from None
    except BaseException:
        # stop now: the workers' kernels die with them (PR_SET_PDEATHSIG); finished records are kept
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(timeout=10)
        raise
    finally:
        if saved_flag is None:
            os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            os.environ["PYTHONDONTWRITEBYTECODE"] = saved_flag
    pool.shutdown(wait=True)


def _cleanup_worker() -> None:
    for c in _W.get("courses", {}).values():
        c.cleanup()
    _W.clear()


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        class _Null:
            def update(self, n): pass
            def close(self): pass
        return _Null()
    from llmlab.progress import progress

    return progress(total=total, initial=initial, desc="grading", unit="submission")


def finish(out: Path, jobs: list[Job], echo=print) -> list[dict]:
    """Records -> grades.csv, gradebook.db, feedback index pages, summary (idempotent)."""
    from .feedback import student_index

    records = [r for j in jobs if (r := load_record(out, j)) is not None]
    rows = []
    for rec in sorted(records, key=lambda r: (r["student"], r["week"])):
        for nb in rec["notebooks"]:
            notes = "; ".join(nb.get("notes", []))
            for c in nb["cells"]:
                rows.append(dict(student=rec["student"], assignment=rec["week"], notebook=nb["notebook"],
                                 cell=c["grade_id"], points="" if c["points"] is None else c["points"],
                                 max_points=c["max_points"], status=c["status"], message=c["message"], notes=notes))
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".grades.csv.")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out / "grades.csv")
    by_student: dict[str, list[dict]] = {}
    for rec in records:
        by_student.setdefault(rec["student"], []).append(rec)
    for student, recs in by_student.items():
        student_index(student, recs, out / "feedback" / student / "index.html")
    write_gradebook(out, records)
    text = summary(rows)
    write_atomic(out / "summary.txt", text + "\n")
    echo(text)
    echo(f"wrote {out / 'grades.csv'} ({len(rows)} rows), {out / 'gradebook.db'}, "
         f"{out / 'feedback'}/<student>/index.html")
    return rows


def write_gradebook(out: Path, records: list[dict]) -> Path:
    """Rebuild ``out/gradebook.db`` (nbgrader's gradebook) from the records."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    from .nbconfig import COURSE_ID

    warnings.filterwarnings("ignore", category=SAWarning)
    weeks = sorted({r["week"] for r in records})
    target = out / "gradebook.db"
    tmp = out / ".gradebook.db.tmp"
    tmp.unlink(missing_ok=True)
    url = f"sqlite:///{tmp}"
    if weeks:
        with TempCourse({w: None for w in weeks}) as c:
            c.db_url = url
            for w in weeks:
                c.generate(w)
    with Gradebook(url, COURSE_ID) as gb:
        for rec in records:
            gb.update_or_create_student(rec["student"])
            gb.update_or_create_submission(rec["week"], rec["student"])
            for nb in rec["notebooks"]:
                sub = gb.find_submission_notebook(nb["notebook"], rec["week"], rec["student"])
                cells = {c["grade_id"]: c for c in nb["cells"]}
                for g in sub.grades:
                    c = cells.get(g.name)
                    if c is None or c["status"] == "error":
                        g.auto_score, g.needs_manual_grade = None, True  # ungradable: for a human, not 0
                    else:
                        g.auto_score, g.needs_manual_grade = float(c["points"] or 0), False
            gb.db.commit()
    os.replace(tmp, target)
    return target


def summary(rows: list[dict]) -> str:
    """Per notebook: submissions, mean, distribution, errors; then the hardest tests and the errors."""
    per: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (r["assignment"], r["notebook"])
        d = per.setdefault(key, {"students": {}, "cells": {}})
        s = d["students"].setdefault(r["student"], [0.0, 0.0, set()])
        s[0] += float(r["points"] or 0)
        s[1] += float(r["max_points"])
        s[2].add(r["status"])
        d["cells"].setdefault(r["cell"], []).append(r["status"])
    bins = ["0-24%", "25-49%", "50-74%", "75-99%", "100%"]
    lines = [f"{'notebook':<34} {'graded':>6} {'mean':>11} {'median':>7}  " + " ".join(f"{b:>6}" for b in bins)
             + f" {'missing':>7} {'error':>5}"]
    hardest = []
    for (week, nb), d in sorted(per.items()):
        graded = [(p, m) for p, m, st in d["students"].values() if not st & {"error", "missing"}]
        missing = sum("missing" in st for *_, st in d["students"].values())
        errs = sum("error" in st for *_, st in d["students"].values())
        counts = [0] * 5
        for p, m in graded:
            frac = p / m if m else 1.0
            counts[4 if frac >= 1 else min(3, int(frac * 4))] += 1
        if graded:
            mx = graded[0][1]
            mean = f"{statistics.mean(p for p, _ in graded):.1f}/{mx:g}"
            median = f"{statistics.median(p for p, _ in graded):g}"
        else:
            mean = median = "-"
        lines.append(f"{week + '/' + nb:<34} {len(graded):>6} {mean:>11} {median:>7}  "
                     + " ".join(f"{c:>6}" for c in counts) + f" {missing:>7} {errs:>5}")
        for cell, statuses in d["cells"].items():
            considered = [s for s in statuses if s not in ("error", "missing")]
            if considered:
                rate = sum(s == "passed" for s in considered) / len(considered)
                hardest.append((rate, f"{week}/{nb}", cell, len(considered)))
    hardest.sort()
    if hardest:
        lines.append("")
        lines.append("hardest tests (share of graded submissions that passed):")
        for rate, nb, cell, n in hardest[:8]:
            lines.append(f"  {rate:>5.0%}  {nb} :: {cell}  ({n} graded)")
    from .results import KERNEL_EVENTS

    stopped = sorted((r["student"], f"{r['assignment']}/{r['notebook']}", r["cell"], r["message"]) for r in rows
                     if r["status"] != "error" and r["message"].startswith(KERNEL_EVENTS))
    if stopped:
        lines.append("")
        lines.append(f"stopped by the grader ({len(stopped)}: runaway code costs only its own cell):")
        for student, nb, cell, msg in stopped[:20]:
            lines.append(f"  {student:<16} {nb + ' :: ' + cell:<40} {msg[:120]}")
        if len(stopped) > 20:
            lines.append(f"  ... and {len(stopped) - 20} more in grades.csv")
    errors = sorted({(r["student"], f"{r['assignment']}/{r['notebook']}", r["message"]) for r in rows
                     if r["status"] == "error"})
    if errors:
        lines.append("")
        lines.append(f"could not be graded ({len(errors)}; not counted as 0 -- see the message):")
        for student, nb, msg in errors[:20]:
            lines.append(f"  {student:<16} {nb:<30} {msg[:120]}")
        if len(errors) > 20:
            lines.append(f"  ... and {len(errors) - 20} more in grades.csv")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m autograder grade SUBMISSIONS --out DIR")
