"""What a grading run must never change, checked after every submission and put back when changed.

The cohort grader takes, before the first submission, a checksum (SHA-256) and a private copy of every
file in the trees it protects: the course's sources (``solutions/``), every submission, the repository
(the course library ``llmlab/``, the grader itself, the release notebooks, ...), the worker's own copy
of the sources, and, when submissions are graded one at a time, the output folder with the gradebook.
After each submission :meth:`Guard.check` compares the trees with the record (file status first, the
checksum where it moved); :meth:`Guard.restore` puts back every changed or deleted file from the copy
and removes every new one. The submission that was running is then graded ``error``: "it tried to
modify ...".

With bubblewrap or an unprivileged uid the kernels cannot write any of this, and the check is a
second line. Without isolation (``--no-sandbox``) it is the only one: it catches and undoes a change,
it cannot stop a submission from reading (or copying out) what the grading user can read.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

SKIP_NAMES = {".git", ".venv", ".pytest_cache"}  # version control, the virtualenv, pytest's cache


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass
class Entry:
    kind: str  # "f" file, "d" folder, "l" symlink
    mode: int
    sig: tuple  # (size, mtime_ns, ctime_ns, inode): unchanged signature = unchanged file
    digest: str = ""  # SHA-256 of a file, target of a symlink


@dataclass
class Tree:
    label: str
    root: Path
    skip: set[Path] = field(default_factory=set)  # absolute paths left out (guarded by another tree)
    skip_names: set[str] = field(default_factory=set)
    copy: Path | None = None  # the private copy of its files
    entries: dict[str, Entry] = field(default_factory=dict)

    def scan(self, previous: dict[str, Entry] | None = None) -> dict[str, Entry]:
        """rel path -> Entry; a file whose signature matches ``previous`` keeps its digest (no re-hash)."""
        out: dict[str, Entry] = {}
        if not self.root.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(self.root):
            d = Path(dirpath)
            dirnames[:] = sorted(n for n in dirnames if n not in self.skip_names and d / n not in self.skip)
            for name in dirnames + sorted(filenames):
                p = d / name
                if p in self.skip:
                    continue
                try:
                    st = p.lstat()
                except OSError:
                    continue
                rel = str(p.relative_to(self.root))
                sig = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    out[rel] = Entry("l", mode, sig, os.readlink(p))
                elif stat.S_ISDIR(st.st_mode):
                    out[rel] = Entry("d", mode, ())
                    if p.is_symlink():  # (a folder link is listed by walk but not followed)
                        out[rel] = Entry("l", mode, sig, os.readlink(p))
                elif stat.S_ISREG(st.st_mode):
                    old = (previous or {}).get(rel)
                    digest = old.digest if old is not None and old.kind == "f" and old.sig == sig else _digest(p)
                    out[rel] = Entry("f", mode, sig, digest)
        return out


def _same(a: Entry, b: Entry) -> bool:
    return a.kind == b.kind and a.digest == b.digest and (a.kind == "l" or a.mode == b.mode)


class Guard:
    """Checksums and a private copy of some trees (see the module docstring)."""

    def __init__(self, backup: Path):
        self.backup = Path(backup)
        self.backup.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.trees: list[Tree] = []

    def add(self, label: str, root: Path, skip=(), skip_names=()) -> None:
        tree = Tree(label, Path(root).resolve(), {Path(p).resolve() for p in skip}, set(skip_names),
                    copy=self.backup / f"{os.getpid()}-{len(self.trees)}")  # (workers add trees of their own)
        self.trees.append(tree)
        self._record(tree, tree.scan())

    def _record(self, tree: Tree, entries: dict[str, Entry], only: set[str] | None = None) -> None:
        """Make ``entries`` the expected state, copying the files (``only``: just these paths)."""
        dest = tree.copy
        for rel, e in entries.items():
            if e.kind != "f" or (only is not None and rel not in only):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tree.root / rel, target)
        tree.entries = entries

    def accept(self, label: str) -> None:
        """The grader itself changed this tree (it wrote a submission's results): that is the new normal."""
        for tree in self.trees:
            if tree.label == label:
                now = tree.scan(tree.entries)
                self._record(tree, now, only={r for r, e in now.items() if r not in tree.entries
                                              or not _same(e, tree.entries[r])})

    def check(self) -> list[tuple[Tree, str, str]]:
        """Every difference from the record: (tree, rel path, "changed" | "added" | "removed")."""
        changes = []
        with self._lock():
            for tree in self.trees:
                now = tree.scan(tree.entries)
                for rel, e in now.items():
                    old = tree.entries.get(rel)
                    if old is None:
                        changes.append((tree, rel, "added"))
                    elif not _same(e, old):
                        changes.append((tree, rel, "changed"))
                changes += [(tree, rel, "removed") for rel in tree.entries if rel not in now]
        return changes

    def restore(self, changes: list[tuple[Tree, str, str]]) -> list[str]:
        """Undo ``changes``; returns what could not be put back (empty: all of it)."""
        problems = []
        with self._lock():
            # new things first (deepest first), then folders, then files and links
            for tree, rel, how in sorted(changes, key=lambda c: (c[2] != "added", -c[1].count(os.sep))):
                p = tree.root / rel
                try:
                    if how == "added":
                        if p.is_dir() and not p.is_symlink():
                            shutil.rmtree(p)
                        else:
                            p.unlink(missing_ok=True)
                        continue
                    e = tree.entries[rel]
                    if p.is_symlink() or (p.exists() and not p.is_dir()) and e.kind != "f":
                        p.unlink()
                    elif p.is_dir() and e.kind != "d":
                        shutil.rmtree(p)
                    p.parent.mkdir(parents=True, exist_ok=True)
                    if e.kind == "d":
                        p.mkdir(exist_ok=True)
                        os.chmod(p, e.mode)
                    elif e.kind == "l":
                        p.unlink(missing_ok=True)
                        os.symlink(e.digest, p)
                    else:
                        copy = tree.copy / rel
                        if _digest(copy) != e.digest:
                            problems.append(f"{p}: the grader's copy was changed too")
                            continue
                        p.unlink(missing_ok=True)
                        shutil.copy2(copy, p)
                except OSError as err:
                    problems.append(f"{p}: {err.strerror or err}")
            for tree in {id(c[0]): c[0] for c in changes}.values():
                # the restored files have new signatures: record them (same content, same digests)
                tree.entries = tree.scan({r: e for r, e in tree.entries.items() if e.kind != "f"})
        return problems

    def _lock(self):
        class _Lock:
            def __enter__(s):
                s.f = open(self.backup / ".lock", "w")
                fcntl.flock(s.f, fcntl.LOCK_EX)

            def __exit__(s, *exc):
                s.f.close()

        return _Lock()


def describe(changes: list[tuple[Tree, str, str]], limit: int = 3) -> str:
    """'solutions/week01/toy.ipynb (changed), REPO/VANDAL (added) and 2 more'."""
    names = [f"{c[0].root / c[1]} ({c[2]})" for c in changes[:limit]]
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return ", ".join(names) + more
