"""Command line of the course's grading tools (``python -m autograder --help``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autograder", description="LLM Lab grading tools (nbgrader inside)")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("release", help="regenerate weeks/ from solutions/")
    s.add_argument("weeks", nargs="*", help="weekNN (default: all weeks)")

    s = sub.add_parser("check", help="grade one learner notebook, hidden tests included")
    s.add_argument("notebook", type=Path)

    s = sub.add_parser("roundtrip", help="solution submitted as a student = full marks; untouched release = 0")
    s.add_argument("notebooks", nargs="+", type=Path)

    s = sub.add_parser("grade", help="grade a folder of submissions (<student>/<weekNN>/*.ipynb) into a CSV")
    s.add_argument("submissions", type=Path)
    s.add_argument("--out", type=Path, default=Path("grades.csv"))

    s = sub.add_parser("normalize", help="clear outputs, set the course kernel, lint nbgrader metadata")
    s.add_argument("notebooks", nargs="+", type=Path)

    args = p.parse_args(argv)
    return globals()[f"_cmd_{args.cmd}"](args)


def _cmd_release(args) -> int:
    from .release import release

    for path in release(args.weeks or None):
        print(f"released {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return 0


def _cmd_check(args) -> int:
    from .check import check, format_table

    rows = check(args.notebook)
    print(format_table(rows, title=f"{args.notebook}"))
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
    from .grade import grade, summary

    rows = grade(args.submissions, args.out)
    print(summary(rows))
    print(f"wrote {args.out} ({len(rows)} rows)")
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
