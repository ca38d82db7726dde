"""Command line of the course's grading tools (``python -m autograder --help``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from .sandbox import Limits


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autograder", description="LLM Lab grading tools (nbgrader inside)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("release", help="regenerate weeks/ from solutions/")
    s.add_argument("weeks", nargs="*", help="weekNN (default: all weeks)")

    s = sub.add_parser("check", help="grade one learner notebook, hidden tests included")
    s.add_argument("notebook", type=Path)

    s = sub.add_parser("roundtrip", help="solution submitted as a student = full marks; untouched release = 0")
    s.add_argument("notebooks", nargs="+", type=Path)

    s = sub.add_parser("grade", help="grade a cohort: submitted/<student>/<weekNN>/*.ipynb -> OUT/grades.csv, "
                                      "gradebook.db, feedback/; parallel, sandboxed, resumable")
    s.add_argument("submissions", type=Path, help="the submitted/ folder (or a course root holding one)")
    s.add_argument("--out", type=Path, default=Path("grading"), help="output folder (default: grading)")
    s.add_argument("-j", "--workers", type=int, default=None, help="worker processes (default: one per core)")
    s.add_argument("--force", action="store_true", help="regrade submissions that are already graded")
    s.add_argument("--no-sandbox", "--unsafe-no-isolation", dest="no_sandbox", action="store_true",
                   help="grade even where neither bubblewrap nor an unprivileged uid works: student code then runs with "
                        "YOUR rights and can read and write what you can (limits, leftover-process kills and the file "
                        "checks still apply; one submission at a time). Trusted submissions only")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    lim = s.add_argument_group("limits (per notebook; see autograder/sandbox.py)")
    for f in fields(Limits):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool",):
            lim.add_argument(flag, action="store_true", default=None, help=Limits.HELP.get(f.name, ""))
        else:
            default = "" if f.default is None else f" (default {f.default:g})"
            lim.add_argument(flag, type=float, default=None, metavar="N", help=Limits.HELP.get(f.name, "") + default)

    s = sub.add_parser("progress", help="the learner's score per week, as bars (cached: fast the second time)")
    s.add_argument("weeks_dir", nargs="?", type=Path, default=Path("weeks"))
    s.add_argument("--cache", type=Path, default=None, help="cache file (default ~/.cache/llmlab/progress.json)")

    s = sub.add_parser("update", help="copy new or updated release notebooks into the learner's workspace/ "
                                       "(never overwrites answers)")
    s.add_argument("--src", type=Path, default=Path("weeks"), help="the release folder (default: weeks)")
    s.add_argument("--dest", type=Path, default=Path("workspace"), help="the workspace (default: workspace)")

    s = sub.add_parser("normalize", help="clear outputs, set the course kernel, lint nbgrader metadata")
    s.add_argument("notebooks", nargs="+", type=Path)

    args = p.parse_args(argv)
    notebooks = [args.notebook] if args.cmd == "check" else args.notebooks if args.cmd in ("roundtrip", "normalize") else []
    missing = [nb for nb in notebooks if not nb.is_file()]
    if missing:  # one line, not a traceback: the usual cause is a typo or the wrong folder
        for nb in missing:
            print(f"error: {nb}: no such notebook (from {Path.cwd()})", file=sys.stderr)
        return 2
    return globals()[f"_cmd_{args.cmd}"](args)


def _cmd_release(args) -> int:
    from .release import release

    for path in release(args.weeks or None):
        print(f"released {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


def _cmd_check(args) -> int:
    from .check import check_notebook, format_table

    result = check_notebook(args.notebook)
    rows = result.cells
    print(format_table(rows, title=f"{args.notebook}", notes=result.notes))
    full = all(r.passed for r in rows)
    print("full marks" if full else "not full marks yet: read the messages above, fix, save, and check again")
    return 0 if full else 1


def _cmd_roundtrip(args) -> int:
    from .check import format_table, roundtrip

    ok = True
    for nb in args.notebooks:
        solved, untouched = roundtrip(nb)
        print(format_table(solved, title=f"{nb} submitted as a student:"))
        print(format_table(untouched, title=f"{nb} released and untouched:"))
        good = all(r.passed for r in solved) and all(r.points == 0 for r in untouched)
        print(f"{nb}: {'OK' if good else 'ROUND TRIP FAILED'}\n")
        ok &= good
    return 0 if ok else 1


def _cmd_grade(args) -> int:
    from .grade import grade

    overrides = {}
    for f in fields(Limits):
        v = getattr(args, f.name)
        if v is not None:
            overrides[f.name] = v if f.type == "bool" else (int(v) if float(v).is_integer() and "float" not in f.type else v)
    limits = Limits(**overrides)
    try:
        rows = grade(args.submissions, args.out, workers=args.workers, force=args.force, limits=limits,
                     sandbox=not args.no_sandbox, progress=not args.no_progress)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # a learner's broken notebook is a result (status "error" in the CSV); only the grader failing is not
    return 1 if any(r["status"] == "error" and r["message"].startswith("grader error") for r in rows) else 0


def _cmd_progress(args) -> int:
    from .progress import format_progress, progress

    if not args.weeks_dir.is_dir():
        print(f"error: {args.weeks_dir} is not a folder (give your weeks/ folder)", file=sys.stderr)
        return 2
    print(format_progress(progress(args.weeks_dir, cache=args.cache)))
    return 0


def _cmd_update(args) -> int:
    from .workspace import update

    for line in update(args.src, args.dest).lines():
        print(line)
    return 0


def _cmd_normalize(args) -> int:
    from .notebook import normalize

    bad = 0
    for nb in args.notebooks:
        problems = normalize(nb)
        print(f"{nb}: {'clean' if not problems else str(len(problems)) + ' problem(s)'}")
        for pr in problems:
            print(f"  - {pr}")
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
