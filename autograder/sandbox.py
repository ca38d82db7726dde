"""The grading sandbox: every submission's kernel runs isolated and limited, with real OS mechanisms.

What a sandboxed kernel gets (each mechanism is probed once at grading start; :func:`report` says
which ones are in force, and a missing one is reported, never pretended):

- **bubblewrap** (``bwrap``, Debian package ``bubblewrap``): new mount, pid, network, ipc, uts and
  user namespaces. The file system the kernel sees holds the OS (``/usr``, ``/etc``, read-only), the
  Python installation and the course library (read-only), the course data (read-only), a private
  ``/tmp`` (size-limited tmpfs), its connection folder, and its scratch folder (a copy of the one
  submission plus the files the assignment ships) -- the only place it can write. ``solutions/``,
  the gradebook, the submissions folder and other students' work do not exist in there. No network:
  the network namespace has only a loopback device, so the kernel talks to the grader over ZMQ
  *ipc* (Unix-socket files in its connection folder) instead of TCP.
- **an unprivileged uid** (when the grader runs as root): one uid per grading worker
  (``uid_base`` + n, no account needed), so student code never has the grader's rights, and
  killing "everything that uid runs" cleans up after a fork bomb. Without bubblewrap the uid must
  be able to reach the Python it runs: when the interpreter lives in a folder other users cannot
  enter (pyenv under ``/root``), the kernel runs a hard-linked copy of it (:func:`python_runtime`,
  in ``/var/tmp``) with the virtualenv's site-packages; what stays unreachable is reported.
- **cgroups** (v1 or v2, when writable): a memory limit and a process limit for the whole
  sandbox (every process it starts), and a reliable "kill them all" at the end.
- **rlimits** (always): CPU seconds, address space, processes, file size, open files, no core dumps.
- **time limits** (always, in the grader): a time limit per cell (``solutions/timeouts.toml`` via ``autograder/timeouts.py``), a wall
  limit per notebook; a cell that ignores the interrupt is killed (see ``autograder.execute``).
- **output limit** (always, in the grader): output kept per notebook is capped.
- **leftover processes** (always): after every cell, every process the cell left running (found
  through the cgroup, the sandbox uid, the kernel's descendants and the orphans reparented to the
  grading worker, a child subreaper) is killed before the next cell runs.
- **no writes to the course library or caches**: kernels run with ``PYTHONDONTWRITEBYTECODE`` and
  import ``llmlab`` from a read-only bind (bubblewrap) or a private copy next to the kernel.

``LLMLAB_SANDBOX`` chooses how much isolation may be used: ``auto`` (default: the strongest that
works), ``uid`` (never bubblewrap) or ``none`` (neither: what a machine without either looks like;
``python -m autograder grade`` then refuses unless ``--no-sandbox``). The test suite honours it.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from jupyter_client import AsyncKernelManager

REPO = Path(__file__).resolve().parents[1]
LAUNCH = Path(__file__).with_name("_launch.py")
MB = 1024 * 1024

# set by the cohort grader for its whole run: kernel and scratch folders go under WORK_DIR and cgroups
# are tagged RUN_TAG, so that the run can remove what a killed worker left behind (``cleanup_run``)
WORK_DIR: str | None = None
RUN_TAG = "k"
# CPU seconds used by sandboxed kernels (from their cgroups), summed; the grader resets and reads it
KERNEL_CPU = {"seconds": 0.0, "measured": False}


@dataclass
class Limits:
    """Per-submission limits. Every field is configurable (CLI flags of ``python -m autograder grade``)."""

    cell_timeout_s: float | None = None  # cap on every cell's time limit (None: the course table alone)
    wall_s: float = 1800  # wall time for one notebook, all cells together
    cpu_s: int = 1800  # CPU seconds per kernel process (RLIMIT_CPU)
    memory_mb: int = 4096  # memory of the whole sandbox (cgroup) -- and the basis of the address-space rlimit
    address_space_mb: int | None = None  # RLIMIT_AS per process; default memory_mb + 8192 (torch reserves ~3 GB)
    nproc: int = 256  # processes + threads (cgroup pids.max and RLIMIT_NPROC)
    output_mb: float = 10  # output kept per notebook (figures included); the rest is cut with a note
    file_mb: int = 512  # largest file the kernel may write (RLIMIT_FSIZE)
    tmp_mb: int = 512  # size of the private /tmp (bubblewrap)
    nofile: int = 1024  # open files (RLIMIT_NOFILE)
    network: bool = False  # allow network access (only matters with bubblewrap)
    # after a time limit, how long the interrupt may take before the kernel is killed (also how long
    # the grader waits for a cell's last output after its reply: keep it generous on busy machines)
    interrupt_grace_s: float = 10

    HELP = {
        "cell_timeout_s": "cap on every cell's time limit, seconds (default: the course table solutions/timeouts.toml alone)",
        "wall_s": "wall time for one notebook, seconds", "cpu_s": "CPU seconds per kernel process",
        "memory_mb": "memory of the whole sandbox, MB (cgroup)", "address_space_mb": "address space per process, MB "
        "(default memory + 8192)", "nproc": "processes + threads", "output_mb": "output kept per notebook, MB",
        "file_mb": "largest file the kernel may write, MB", "tmp_mb": "size of the private /tmp, MB",
        "nofile": "open files", "network": "allow network access", "interrupt_grace_s": "seconds an interrupted "
        "cell may take to stop before its kernel is killed",
    }

    def rlimits(self) -> dict[str, int]:
        as_mb = self.address_space_mb or self.memory_mb + 8192
        return {"cpu": int(self.cpu_s), "as": as_mb * MB, "nproc": self.nproc, "fsize": self.file_mb * MB,
                "nofile": self.nofile, "core": 0}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Limits":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in names})


# ---------------------------------------------------------------------------------------------------
# mechanisms: what this machine offers, probed once per process


@dataclass
class Mechanisms:
    bwrap: str | None = None  # path of a working bwrap
    uid: bool = False  # can switch to an unprivileged uid
    cgroup: "CgroupKind | None" = None
    notes: dict[str, str] = field(default_factory=dict)  # mechanism -> why it is missing (or what it is)
    runtime: dict | None = None  # the Python a uid kernel runs without bubblewrap (see python_runtime)

    @property
    def isolated(self) -> bool:
        """Student code cannot act with the grader's rights: bubblewrap or an unprivileged uid is in force."""
        return bool(self.bwrap or self.uid)

    def without_isolation(self, why: str) -> "Mechanisms":
        """The same limits (cgroup, rlimits, time, output), no bubblewrap and no uid switch."""
        notes = dict(self.notes, bwrap=f"off ({why})", uid=f"off ({why}): kernels run as the grading user")
        return Mechanisms(bwrap=None, uid=False, cgroup=self.cgroup, notes=notes, runtime=None)

    def lines(self) -> list[str]:
        def row(name, ok, what):
            return f"  {'yes' if ok else 'NO '}  {name:<12} {what}"

        n = self.notes
        return [
            row("bubblewrap", self.bwrap, n.get("bwrap", "")),
            row("uid", self.uid, n.get("uid", "")),
            row("cgroup", self.cgroup, n.get("cgroup", "")),
            row("rlimits", True, "CPU seconds, address space, processes, file size, open files"),
            row("time/output", True, "per-cell and per-notebook time limits, output cap (in the grader)"),
        ]


_MECH: Mechanisms | None = None


def mechanisms(refresh: bool = False) -> Mechanisms:
    global _MECH
    if _MECH is None or refresh:
        _MECH = _probe()
    return _MECH


def report(limits: Limits | None = None, mech: Mechanisms | None = None) -> str:
    m = mech or mechanisms()
    lines = ["sandbox mechanisms:"] + m.lines()
    if limits is not None:
        lines.append(f"  limits: {limits.wall_s:g} s wall per notebook, "
                     f"{'per-cell time limits' if limits.cell_timeout_s is None else f'{limits.cell_timeout_s:g} s per cell'}, "
                     f"{limits.cpu_s} CPU s, {limits.memory_mb} MB, {limits.nproc} processes, "
                     f"{limits.output_mb:g} MB output, {limits.file_mb} MB per file, network "
                     f"{'on' if limits.network else 'off' if m.bwrap else 'not blocked (needs bubblewrap)'}")
    if not m.bwrap:
        lines.append("  without bubblewrap, student code can read every file the kernel's user can read"
                     + (" (as an unprivileged uid: world-readable files only; it can write none of the course's)"
                        if m.uid else ", and WRITE every file it can write"))
    return "\n".join(lines)


SANDBOX_ENV = "LLMLAB_SANDBOX"
MODES = ("auto", "uid", "none")


def isolation_mode() -> str:
    """``LLMLAB_SANDBOX``: auto (default), uid (never bubblewrap), none (no isolation mechanism)."""
    mode = (os.environ.get(SANDBOX_ENV) or "auto").strip().lower()
    if mode not in MODES:
        raise ValueError(f"{SANDBOX_ENV}={mode!r}: use one of {', '.join(MODES)}")
    return mode


def _probe() -> Mechanisms:
    m = Mechanisms()
    root = os.geteuid() == 0
    mode = isolation_mode()
    m.cgroup = CgroupKind.detect()
    m.notes["cgroup"] = m.cgroup.describe() if m.cgroup else CgroupKind.why_not
    bwrap = shutil.which("bwrap") if mode == "auto" else None
    uid = UID_BASE_DEFAULT if root and mode != "none" else None
    # the strongest combination that really starts Python here wins
    if bwrap:
        for try_uid in ([uid, None] if root else [None]):
            err = _trial(bwrap, try_uid)
            if err is None:
                m.bwrap = bwrap
                ver = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
                m.notes["bwrap"] = (f"{ver}: own mount/pid/net/ipc/user namespaces; reads only the OS, Python, "
                                    "llmlab and the course data; writes only its scratch folder and a private /tmp")
                m.uid = try_uid is not None
                break
            m.notes["bwrap"] = f"bwrap is installed but does not work here ({err})"
    elif mode != "auto":
        m.notes["bwrap"] = f"not used ({SANDBOX_ENV}={mode}): student code sees every file the grading user can see"
    else:
        m.notes["bwrap"] = ("not installed (apt-get install bubblewrap): student code sees every file the grading "
                            "user can see, and can use the network")
    if not m.bwrap and uid is not None:
        runtime, problem = python_runtime(uid)
        err = problem or _trial(None, uid, runtime)
        m.uid = err is None
        if err:
            m.notes["uid"] = f"cannot run Python as an unprivileged uid here: {err}"
        else:
            m.runtime = runtime
    if m.uid:
        m.notes["uid"] = f"kernels run as uid {UID_BASE_DEFAULT}+n (one per worker), never as the grader"
        if m.runtime:
            m.notes["uid"] += f" (Python from {m.runtime['prefix']}: {m.runtime['why']})"
    elif root and mode == "none":
        m.notes["uid"] = f"not used ({SANDBOX_ENV}=none): kernels run as the grading user, with all its rights"
    elif "uid" not in m.notes:
        m.notes["uid"] = ("the grader is not root, so kernels run as the grading user "
                          + ("(bubblewrap still hides the grader's files)" if m.bwrap else "with all its rights"))
    return m


def _trial(bwrap: str | None, uid: int | None, runtime: dict | None = None) -> str | None:
    """Start Python the way a kernel would start (and import the kernel); None if it worked, else why not."""
    tmp = Path(tempfile.mkdtemp(prefix="llmlab-probe-"))
    try:
        spec = _spec(tmp, tmp, uid, bwrap, Limits(), cgroup=None, runtime=runtime)
        python = runtime["python"] if runtime and not bwrap else sys.executable
        cmd = [sys.executable, "-I", "-S", str(LAUNCH), "outer", str(tmp / "spec.json"), "--",
               python, "-c", "import ipykernel_launcher"]
        tmp.chmod(0o755)
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            log = (tmp / "kernel.log").read_text(errors="replace") if (tmp / "kernel.log").exists() else ""
            last = (log.strip().splitlines() or r.stderr.strip().splitlines() or [""])[-1][:200]
            why = f"exit code {r.returncode}" + (f": {last}" if last else "")
            if uid is not None and not bwrap:
                blocked = unreachable(python, uid)
                if blocked:
                    why += f"; {blocked}"
            return why
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)[:200]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# unprivileged uids: one per grading worker, reserved with a lock file so that two graders never share one

UID_BASE_DEFAULT = 61000
_UID_LOCK = None


def reserve_uid(base: int = UID_BASE_DEFAULT, span: int = 1000) -> int:
    global _UID_LOCK
    if _UID_LOCK is not None:
        return _UID_LOCK[0]
    lockdir = Path(tempfile.gettempdir()) / "llmlab-sandbox-uids"
    lockdir.mkdir(mode=0o755, exist_ok=True)
    for uid in range(base, base + span):
        f = open(lockdir / f"{uid}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _UID_LOCK = (uid, f)
        return uid
    raise RuntimeError(f"no free sandbox uid in {base}..{base + span}")


def kill_until_gone(list_pids, rounds: int, pause: float, after_round=None) -> set[int]:
    """SIGKILL what ``list_pids()`` returns, again and again until it returns nothing (a fork bomb forks while
    it dies) or ``rounds`` run out; every pid seen."""
    seen: set[int] = set()
    for _ in range(rounds):
        pids = list_pids()
        if not pids:
            break
        seen.update(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(pause)
        if after_round is not None:
            after_round()
    return seen


def kill_uid(uid: int) -> None:
    """SIGKILL every process that runs as ``uid`` (kill(-1) from a child that has become that uid)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(50):
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    break
                time.sleep(0.01)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


# ---------------------------------------------------------------------------------------------------
# can the sandbox uid reach a file? (a Python under /root, mode 0700, is the usual reason it cannot)


def _may(st: os.stat_result, uid: int, bit: int) -> bool:
    """Does ``uid`` (in no group of the file's) have permission ``bit`` (4 r, 1 x) on a file with this stat?"""
    shift = 6 if st.st_uid == uid else (3 if st.st_gid == uid else 0)
    return bool(st.st_mode >> shift & bit)


def unreachable(path: str | Path, uid: int) -> str | None:
    """Why ``uid`` cannot read ``path`` (the first folder it cannot enter, or the file itself), or None."""
    for p in dict.fromkeys([Path(os.path.abspath(path)), Path(os.path.realpath(path))]):
        for folder in reversed(p.parents):
            try:
                st = os.stat(folder)
            except OSError as e:
                return f"{folder}: {e.strerror}"
            if not _may(st, uid, 1):
                return (f"{folder} (mode {st.st_mode & 0o7777:04o}, owner uid {st.st_uid}) cannot be entered by "
                        f"uid {uid}, so {path} cannot be read")
        try:
            st = os.stat(p)
        except OSError as e:
            return f"{p}: {e.strerror}"
        if not _may(st, uid, 4):
            return f"{p} (mode {st.st_mode & 0o7777:04o}) cannot be read by uid {uid}"
    return None


RUNTIME_BASE = Path("/var/tmp") if os.path.isdir("/var/tmp") else Path(tempfile.gettempdir())


def python_runtime(uid: int) -> tuple[dict | None, str | None]:
    """(runtime, problem): how a kernel running as ``uid`` (without bubblewrap) can start this Python.

    runtime is None when the uid can reach the interpreter as it is. Otherwise it is a copy made of hard
    links (no disk space; a plain copy across file systems) in ``/var/tmp/llmlab-python-<hash>``: the base
    installation's binary, shared library and standard library, plus a virtualenv whose site-packages is
    this one's (which must be readable: it is only linked). ``problem`` says what is unreachable when no
    copy can help."""
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix)
    in_venv = sys.prefix != sys.base_prefix
    site = Path(sys.prefix) / "lib" / ver / "site-packages"
    need = [Path(sys.executable), base / "lib" / ver / "os.py"]
    blocked = next((b for b in map(lambda p: unreachable(p, uid), need) if b), None)
    if blocked is None:
        return None, None
    if in_venv and unreachable(site, uid):
        return None, (f"{unreachable(site, uid)}: make the virtualenv readable by other users, or create it "
                      "in a folder they can enter")
    real = Path(sys.executable).resolve()
    key = hashlib.sha256(json.dumps([str(real), str(base), sys.prefix, sys.version, real.stat().st_mtime_ns,
                                     os.stat(Path(sys.prefix) / "bin").st_mtime_ns]).encode()).hexdigest()[:16]
    dest = RUNTIME_BASE / f"llmlab-python-{key}"
    runtime = {"prefix": str(dest), "python": str(dest / "venv" / "bin" / "python"), "bin": str(dest / "venv" / "bin"),
               "env": {"LD_LIBRARY_PATH": str(dest / "base" / "lib")},
               "why": blocked.split(", so")[0] + ", so kernels run a hard-linked copy"}
    if not _runtime_ok(dest):
        try:
            _build_runtime(dest, real, base, ver, site if in_venv else None)
        except OSError as e:
            return None, f"{blocked}; a readable copy could not be made in {RUNTIME_BASE} ({e})"
    problem = unreachable(runtime["python"], uid)
    return (None, problem) if problem else (runtime, None)


def _runtime_ok(dest: Path) -> bool:
    try:
        st = dest.stat()
    except OSError:
        return False
    # ours, not writable by anyone else, and finished
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and (dest / ".complete").exists()


def _build_runtime(dest: Path, real: Path, base: Path, ver: str, site: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        tmp.chmod(0o755)
        skip = {base / "lib" / ver / "test"} | ({base / "lib" / ver / "site-packages"} if site else set())
        (tmp / "base" / "bin").mkdir(parents=True)
        _link_or_copy(real, tmp / "base" / "bin" / real.name)
        _mirror(base / "lib", tmp / "base" / "lib", skip)
        vbin = tmp / "venv" / "bin"
        vbin.mkdir(parents=True)
        for name in ("python", "python3", ver):
            (vbin / name).symlink_to(dest / "base" / "bin" / real.name)
        if site is not None:
            (tmp / "venv" / "pyvenv.cfg").write_text(f"home = {dest / 'base' / 'bin'}\n"
                                                     "include-system-site-packages = false\n"
                                                     f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
            (tmp / "venv" / "lib" / ver).mkdir(parents=True)
            (tmp / "venv" / "lib" / ver / "site-packages").symlink_to(site)
        # the virtualenv's console scripts (jupyter, deepspeed, torchrun, ...), pointed at the copy
        old = f"#!{sys.prefix}/bin/"
        for script in sorted((Path(sys.prefix) / "bin").iterdir()):
            try:
                head = script.open("rb").read(len(old) + 64)
            except OSError:
                continue
            if script.is_file() and head.startswith(old.encode()) and not (vbin / script.name).exists():
                text = script.read_bytes().split(b"\n", 1)
                line = b"#!" + str(vbin).replace(str(tmp), str(dest)).encode() + b"/" + text[0][len(old):]
                (vbin / script.name).write_bytes(line + b"\n" + (text[1] if len(text) > 1 else b""))
                (vbin / script.name).chmod(0o755)
        (tmp / ".complete").write_text("")
        try:
            os.rename(tmp, dest)
        except OSError:
            if not _runtime_ok(dest):  # another grader built it at the same time: use theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _mirror(src: Path, dest: Path, skip: set[Path]) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        d = Path(dirpath)
        out = dest / d.relative_to(src)
        out.mkdir(exist_ok=True)
        out.chmod(0o755)
        keep = []
        for name in dirnames:
            if d / name in skip:
                continue
            if (d / name).is_symlink():
                (out / name).symlink_to(os.readlink(d / name))
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            f = d / name
            if f.is_symlink():
                (out / name).symlink_to(os.readlink(f))
            elif f.is_file():
                _link_or_copy(f, out / name)


# ---------------------------------------------------------------------------------------------------
# processes: the table, and the ones a cell left behind

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper(on: bool = True) -> None:
    """Orphans of this process's descendants (a kernel's double-forked children) become its children,
    so the grader still finds them without a cgroup or a uid of their own."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)


def proc_table() -> dict[int, tuple[int, int, str, int]]:
    """pid -> (parent pid, uid, state, start time in clock ticks) of every process on the machine."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry.name}/stat").read()
            uid = entry.stat().st_uid
        except OSError:
            continue
        fields_ = stat.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (int(fields_[1]), uid, fields_[0], int(fields_[19]))
    return out


def descendants(table: dict, roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


# ---------------------------------------------------------------------------------------------------
# cgroups


class CgroupKind:
    why_not = ""

    def __init__(self, version: int, bases: dict[str, Path]):
        self.version, self.bases = version, bases

    def describe(self) -> str:
        return f"cgroup v{self.version}: memory and process limits for the whole sandbox, kill-all at the end"

    @classmethod
    def detect(cls) -> "CgroupKind | None":
        if os.geteuid() != 0:
            cls.why_not = "needs root (or a delegated cgroup): memory is limited per process only (RLIMIT_AS)"
            return None
        own = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, ctrls, path = line.split(":", 2)
                for c in ctrls.split(","):
                    own[c] = path
        except OSError:
            pass
        fs = Path("/sys/fs/cgroup")
        v1 = {c: fs / c / own.get(c, "/").lstrip("/") for c in ("memory", "pids", "cpuacct")}
        if all((v1[c] / "cgroup.procs").exists() for c in ("memory", "pids")):
            if not (v1["cpuacct"] / "cgroup.procs").exists():
                del v1["cpuacct"]  # CPU accounting is a bonus
            kind = cls(1, v1)
        elif (fs / "cgroup.controllers").exists():
            base = fs / own.get("", "/").lstrip("/")
            kind = cls(2, {"unified": base})
        else:
            cls.why_not = "no cgroup file system found: memory is limited per process only (RLIMIT_AS)"
            return None
        try:
            probe = Cgroup(kind, "probe", Limits())
            probe.remove()
        except OSError as e:
            cls.why_not = f"cannot create cgroups here ({e}): memory is limited per process only (RLIMIT_AS)"
            return None
        return kind


class Cgroup:
    _ids = itertools.count()

    def __init__(self, kind: CgroupKind, tag: str, limits: Limits):
        self.kind = kind
        name = f"llmlab-{tag}-{os.getpid()}-{next(self._ids)}"
        self.dirs = [base / name for base in kind.bases.values()]
        try:
            if kind.version == 1:
                mem, pids = self.dirs[:2]
                for d in self.dirs:
                    d.mkdir()
                (mem / "memory.limit_in_bytes").write_text(str(limits.memory_mb * MB))
                try:  # no swap either, when swap accounting exists
                    (mem / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_mb * MB))
                except OSError:
                    pass
                (pids / "pids.max").write_text(str(limits.nproc))
            else:
                (d,) = self.dirs
                parent = d.parent
                ctl = (parent / "cgroup.subtree_control")
                if not {"memory", "pids"} <= set(ctl.read_text().split()):
                    ctl.write_text("+memory +pids")
                d.mkdir()
                (d / "memory.max").write_text(str(limits.memory_mb * MB))
                try:
                    (d / "memory.swap.max").write_text("0")
                except OSError:
                    pass
                (d / "pids.max").write_text(str(limits.nproc))
        except OSError:
            self.remove()
            raise

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_killed(self) -> bool:
        try:
            if self.kind.version == 1:
                text = (self.dirs[0] / "memory.oom_control").read_text()
                kills = [ln.split()[1] for ln in text.splitlines() if ln.startswith("oom_kill ")]
                if kills:
                    return int(kills[0]) > 0
                return int((self.dirs[0] / "memory.failcnt").read_text()) > 0
            text = (self.dirs[0] / "memory.events").read_text()
            return any(ln.startswith("oom_kill ") and int(ln.split()[1]) > 0 for ln in text.splitlines())
        except (OSError, ValueError, IndexError):
            return False

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process the sandbox ran (rusage does not survive bubblewrap's pid
        namespace, so this is how the grader learns what a submission cost)."""
        try:
            if self.kind.version == 1:
                acct = [d for d in self.dirs if d.parent.name == "cpuacct" or "cpuacct" in d.parts]
                return int((acct[0] / "cpuacct.usage").read_text()) / 1e9 if acct else None
            for ln in (self.dirs[0] / "cpu.stat").read_text().splitlines():
                if ln.startswith("usage_usec "):
                    return int(ln.split()[1]) / 1e6
        except (OSError, ValueError):
            pass
        return None

    def pids(self) -> list[int]:
        out = set()
        for f in self.procs_files:
            try:
                out |= {int(x) for x in Path(f).read_text().split()}
            except OSError:
                pass
        return sorted(out)

    def kill_all(self) -> None:
        if self.kind.version == 2:
            try:
                (self.dirs[0] / "cgroup.kill").write_text("1")
            except OSError:
                pass
        kill_until_gone(self.pids, rounds=100, pause=0.02)

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def cleanup_run(tag: str) -> None:
    """Kill and remove every cgroup of the run ``tag`` (after its workers are gone)."""
    kind = mechanisms().cgroup
    if kind is None:
        return
    names = {d.name for base in kind.bases.values() for d in base.glob(f"llmlab-{tag}-*")}
    for name in names:
        cg = Cgroup.__new__(Cgroup)
        cg.kind, cg.dirs = kind, [base / name for base in kind.bases.values()]
        cg.kill_all()
        cg.remove()


# ---------------------------------------------------------------------------------------------------
# the kernel manager

_ENV_PASS = ("LLMLAB_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "OMP_", "MKL_", "TORCH_", "PYTHONWARNINGS", "LANG",
             "LC_", "TZ", "TRL_")


_ENV_HIDE = ("LLMLAB_SOLUTIONS", SANDBOX_ENV)  # where the instructor's files are is the grader's business


def kernel_env(home: str, tmp: str, pythonpath: str | None = None, runtime: dict | None = None) -> dict[str, str]:
    """The kernel's whole environment: a short allow-list, never the grader's secrets. Bytecode is never
    written (a kernel must not leave .pyc files in the course library or the virtualenv); ``pythonpath``
    holds the ``llmlab`` the kernel imports; ``runtime`` (see :func:`python_runtime`) comes first on PATH."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PASS) and k not in _ENV_HIDE}
    bins = ([runtime["bin"]] if runtime else []) + [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
    env.update({
        "PATH": os.pathsep.join(bins),
        "HOME": home, "TMPDIR": tmp, "MPLCONFIGDIR": f"{tmp}/matplotlib", "PYTHONNOUSERSITE": "1",
        "XDG_CACHE_HOME": f"{tmp}/cache", "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    data = REPO.parent / "shared" / "data"
    if "LLMLAB_DATA" not in env and data.is_dir():
        env["LLMLAB_DATA"] = str(data)  # (a copy of llmlab cannot find ../shared/data beside the repository)
    if runtime:
        env.update(runtime["env"])
    env.setdefault("LANG", "C.UTF-8")
    return env


def library_copy(dest: Path) -> Path:
    """A private copy of ``llmlab`` (caches included, so imports stay fast) for a kernel without
    bubblewrap: whatever the kernel writes there (bytecode, or worse) never reaches the repository."""
    shutil.copytree(REPO / "llmlab", dest / "llmlab", symlinks=True,
                    ignore=shutil.ignore_patterns("*.ipynb_checkpoints"))
    for dirpath, dirnames, filenames in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return dest


def readable_paths() -> list[Path]:
    """What a sandboxed kernel may read besides the OS: Python, the course library, the course data."""
    paths = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent.parent,
             REPO / "llmlab", REPO.parent / "shared" / "data"}
    if os.environ.get("LLMLAB_DATA"):
        paths.add(Path(os.environ["LLMLAB_DATA"]).resolve())
    return sorted(p for p in paths if p.exists())


def _bwrap_args(bwrap: str, scratch: Path, kdir: Path, limits: Limits, env: dict[str, str]) -> list[str]:
    a = [bwrap, "--die-with-parent", "--hostname", "llmlab-sandbox"]
    if os.geteuid() == 0:
        # privileged bubblewrap: no user namespace; the inner stage needs CAP_SETUID/SETGID to drop to
        # the sandbox uid (setuid then clears every capability)
        a += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        a += ["--unshare-all"]
    if limits.network:
        a.remove("--unshare-net") if "--unshare-net" in a else a.append("--share-net")
    a += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for p in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(p):
            a += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            a += ["--ro-bind", p, p]
    a += ["--proc", "/proc", "--dev", "/dev"]
    a += ["--size", str(limits.tmp_mb * MB), "--tmpfs", "/tmp"]
    binds = [("--ro-bind", p) for p in readable_paths()] + [("--bind", scratch), ("--bind", kdir)]
    if os.path.isdir("/sys/devices/system/cpu"):  # CPU count and topology (torch's thread pools read them)
        binds.append(("--ro-bind", Path("/sys/devices/system/cpu")))
    made = {Path("/"), Path("/tmp"), Path("/usr"), Path("/etc")}
    for how, p in binds:
        # the folders above a bound path exist in the sandbox only as empty, world-traversable ones
        for parent in reversed(Path(p).parents):
            if parent not in made:
                a += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        a += [how, str(p), str(p)]
    a += ["--clearenv"]
    for k, v in env.items():
        a += ["--setenv", k, v]
    return a


def _spec(kdir: Path, scratch: Path, uid: int | None, bwrap: str | None, limits: Limits,
          cgroup: Cgroup | None, cpus: list[int] | None = None, runtime: dict | None = None) -> dict:
    launch = kdir / "_launch.py"
    shutil.copy(LAUNCH, launch)
    launch.chmod(0o644)
    # llmlab: read-only inside bubblewrap (bound from the repository), else a private copy beside the kernel
    pythonpath = str(REPO) if bwrap else str(library_copy(kdir / "lib"))
    runtime = runtime if uid is not None and not bwrap else None
    env = kernel_env(home="/tmp" if bwrap else str(scratch), tmp="/tmp" if bwrap else str(scratch / ".tmp"),
                     pythonpath=pythonpath, runtime=runtime)
    if cpus:
        # parallel workers share the machine: each kernel sees (and threads over) its own cores only
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(len(cpus))
    spec = {
        "parent": os.getpid(),
        "uid": uid, "gid": uid,
        "cgroup_procs": cgroup.procs_files if cgroup else [],
        "rlimits": limits.rlimits(),
        "env": env,
        "bwrap": _bwrap_args(bwrap, scratch, kdir, limits, env) if bwrap else None,
        "inner": [sys.executable, "-I", "-S", str(launch), "inner", str(kdir / "spec.json")],
        "cwd": str(scratch),
        "log": str(kdir / "kernel.log"),
        "cpus": cpus or [],
        "python": runtime["python"] if runtime else None,
    }
    (kdir / "spec.json").write_text(json.dumps(spec))
    (kdir / "spec.json").chmod(0o644)
    return spec


def _chown_tree(path: Path, uid: int | None) -> None:
    if uid is None:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, uid)
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chown(p, uid, uid)


def make_scratch(src: str | Path, uid: int | None) -> Path:
    """A fresh scratch folder holding a copy of ``src`` (the submission and the assignment's files)."""
    scratch = Path(tempfile.mkdtemp(prefix="llmlab-scratch-", dir=WORK_DIR))
    shutil.copytree(src, scratch, dirs_exist_ok=True, symlinks=True)
    (scratch / ".tmp").mkdir(exist_ok=True)
    _chown_tree(scratch, uid)
    return scratch


def remove_tree(path: Path) -> None:
    """Remove a folder the sandbox wrote into (whatever the permissions it left behind)."""
    if not path.exists():
        return
    for dirpath, _, _ in os.walk(path):
        try:
            os.chmod(dirpath, 0o700)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def _same_python(path: str) -> bool:
    try:
        return os.path.samefile(path, sys.executable) or Path(path).parent == Path(sys.executable).parent
    except OSError:
        return False


def _reap(exclude: int | None = None, since: int = 0) -> None:
    """Collect the exit status of killed orphans that became this process's children (no zombies)."""
    me = os.getpid()
    for pid, (ppid, _, state, started) in proc_table().items():
        if ppid == me and state == "Z" and pid != exclude and started >= since:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


class IpcKernelManager(AsyncKernelManager):
    """A kernel that talks over ZMQ ipc (Unix-socket files in a private folder), never TCP: nothing
    else on the machine can connect to it, and it works inside a network namespace."""

    kdir: Path | None = None

    def _make_kdir(self):
        # kdir (the grader's, world-readable): the launcher and its spec; kdir/conn (private; the
        # sandbox uid's when sandboxed): the connection file and the ipc sockets
        self.kdir = Path(tempfile.mkdtemp(prefix="llmlab-kernel-", dir=WORK_DIR))
        self.kdir.chmod(0o755)
        (self.kdir / "conn").mkdir(mode=0o700)
        self.transport = "ipc"
        self.ip = str(self.kdir / "conn" / "ipc")
        self.connection_file = str(self.kdir / "conn" / "kernel.json")

    async def _async_pre_start_kernel(self, **kw):
        self._make_kdir()
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            self.cleanup_sandbox()

    # AsyncKernelManager exposes the base coroutine under this name (nbclient calls it after a kernel died)
    cleanup_resources = _async_cleanup_resources

    def cleanup_sandbox(self):
        if self.kdir is not None:
            remove_tree(self.kdir)
            self.kdir = None

    def death_reason(self) -> str:
        proc = getattr(getattr(self, "provisioner", None), "process", None)
        rc = proc.poll() if proc is not None else None
        return "it stopped answering" if rc is None else f"the kernel process exited (exit code {rc})"


class SandboxKernelManager(IpcKernelManager):
    """Starts the kernel inside the sandbox (see the module docstring); used by ``GradingExecute``."""

    limits: Limits = Limits()
    uid: int | None = None
    cgroup: Cgroup | None = None
    cpus: list[int] | None = None

    def configure_sandbox(self, limits: Limits, uid: int | None, cpus: list[int] | None = None):
        self.limits, self.uid, self.cpus = limits, uid, cpus

    async def _async_pre_start_kernel(self, **kw):
        mech = mechanisms()
        cwd = Path(kw.get("cwd") or os.getcwd())
        self._make_kdir()
        self.cgroup = None
        if mech.cgroup is not None:
            try:
                self.cgroup = Cgroup(mech.cgroup, f"{RUN_TAG}-{self.uid or 'k'}", self.limits)
            except OSError:
                self.cgroup = None
        self._spec = _spec(self.kdir, cwd, self.uid if mech.uid else None, mech.bwrap, self.limits, self.cgroup,
                           cpus=self.cpus, runtime=mech.runtime)
        self._keep: set[int] = set()
        return await AsyncKernelManager._async_pre_start_kernel(self, **kw)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        # the connection file exists now: hand the folder to the sandbox's uid
        _chown_tree(self.kdir / "conn", self._spec["uid"])
        if self._spec.get("python") and _same_python(cmd[0]):
            cmd[0] = self._spec["python"]  # the copy of this Python that the sandbox uid can reach
        return [sys.executable, "-I", "-S", str(LAUNCH), "outer", str(self.kdir / "spec.json"), "--"] + cmd

    # ------------------------------------------------------------------ processes a cell leaves behind
    def _root_pid(self) -> int | None:
        proc = getattr(getattr(self, "provisioner", None), "process", None)
        return proc.pid if proc is not None else None

    def mark_kernel(self) -> None:
        """Remember the sandbox's own processes (launcher, bubblewrap, the kernel) while the kernel is idle."""
        root = self._root_pid()
        table = proc_table()
        self._keep = ({root} | descendants(table, {root})) if root else set()
        self._started = table.get(root, (0, 0, "", 0))[3]

    def leftovers(self) -> list[int]:
        """Live processes of this sandbox other than its own: in its cgroup, run by its uid, below the
        kernel, or orphans of those that were reparented to this (subreaper) process since the kernel started."""
        table = proc_table()
        root, uid, me = self._root_pid(), self._spec.get("uid"), os.getpid()
        found = set(self.cgroup.pids()) if self.cgroup is not None else set()
        if uid is not None:
            found |= {p for p, (_, u, _, _) in table.items() if u == uid}
        if root:
            found |= descendants(table, {root})
        found |= {p for p, (pp, _, _, t) in table.items() if pp == me and t >= getattr(self, "_started", 0)
                  and p != root}
        keep = getattr(self, "_keep", set())
        return sorted(p for p in found if p in table and p not in keep and p != root and p != me
                      and table[p][2] not in "ZX")

    def kill_leftovers(self) -> int:
        """SIGKILL every leftover process (again and again: a fork bomb forks while it dies); how many there were."""
        def reap():
            _reap(exclude=self._root_pid(), since=getattr(self, "_started", 0))

        seen = kill_until_gone(self.leftovers, rounds=300, pause=0.01, after_round=reap)
        reap()
        return len(seen)

    def death_reason(self) -> str:
        """Why the kernel process ended, in words (after it has ended)."""
        proc = getattr(getattr(self, "provisioner", None), "process", None)
        rc = proc.poll() if proc is not None else None
        if self.cgroup is not None and self.cgroup.oom_killed():
            return f"it ran out of memory (limit {self.limits.memory_mb} MB) and was killed"
        if rc is None:
            return "it stopped answering"
        last = self.log_tail()
        if last and ("Error" in last or "Fatal" in last or "Killed" in last):
            return f"the kernel process exited (exit code {rc}: {last})"
        sig = -rc if rc < 0 else (rc - 128 if rc > 128 else None)
        if sig == signal.SIGXCPU:
            return f"it used up its CPU time ({self.limits.cpu_s} s) and was killed"
        if sig == signal.SIGKILL:
            return "it was killed (SIGKILL; out of memory?)"
        if sig == signal.SIGSEGV:
            return "it crashed (segmentation fault)"
        if sig is not None:
            return f"it was killed by signal {signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig}"
        return f"the kernel process exited (exit code {rc})"

    def log_tail(self) -> str:
        try:
            with open(self.kdir / "kernel.log", "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 2000))
                lines = [ln for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            return lines[-1].strip()[:200] if lines else ""
        except (OSError, TypeError):
            return ""

    def cleanup_sandbox(self):
        uid = self._spec["uid"] if getattr(self, "_spec", None) else None
        if self.cgroup is not None:
            self.cgroup.kill_all()
            cpu = self.cgroup.cpu_seconds()
            if cpu is not None:
                KERNEL_CPU["seconds"] += cpu
                KERNEL_CPU["measured"] = True
            self.cgroup.remove()
            self.cgroup = None
        elif uid is not None and not mechanisms().bwrap:
            kill_uid(uid)  # bubblewrap's pid namespace already took every process down with the kernel
        if getattr(self, "_spec", None) is not None:
            self._keep = set()
            self.kill_leftovers()  # orphans that escaped to this process (no cgroup, no uid of their own)
        super().cleanup_sandbox()
