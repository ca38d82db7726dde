"""Start a Jupyter kernel inside the grading sandbox (standard library only; run with ``python -I -S``).

Two stages, so that each step runs with the rights it needs:

``outer SPEC -- CMD...``  runs as the grader: joins the submission's cgroups, asks to be killed with
    its parent, then either execs bubblewrap (which runs the inner stage), ignoring SIGINT first
    (bwrap would otherwise die on the kernel's interrupt signal and take the sandbox with it), or,
    without bubblewrap, drops to the sandbox's unprivileged uid, applies the rlimits and execs the
    kernel directly.
``inner SPEC -- CMD...``  runs inside the namespaces: drops to the unprivileged uid (bubblewrap runs
    as root when the grader is root, so that it can read the Python installation wherever it lives),
    applies the rlimits (RLIMIT_NPROC counts per uid and user namespace, so it is set in here),
    restores SIGINT, execs the kernel.

SPEC is a JSON file written by ``autograder.sandbox.SandboxKernelManager``.
"""

import ctypes
import json
import os
import resource
import signal
import sys

PR_SET_NO_NEW_PRIVS = 38

RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}


def set_rlimits(limits):
    for name, value in limits.items():
        resource.setrlimit(RLIMITS[name], (value, value))


def outer(spec, cmd):
    # the kernel's own stdout/stderr (banner, C-level writes, fatal errors) go to a log the grader reads
    # when the kernel dies, not to the grader's terminal; RLIMIT_FSIZE caps it
    log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    for procs in spec.get("cgroup_procs", []):
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    if spec.get("cpus"):
        os.sched_setaffinity(0, spec["cpus"])
    if not spec.get("bwrap"):
        drop_rights(spec)
    # if the grading worker dies, the kernel (or bubblewrap, and with it the whole sandbox) is killed
    # too; PR_SET_PDEATHSIG is cleared by setuid, so this comes after dropping rights
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != spec["parent"]:
        os._exit(1)
    if spec.get("bwrap"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.execv(spec["bwrap"][0], spec["bwrap"] + ["--"] + spec["inner"] + ["--"] + cmd)
    inner(spec, cmd, env=spec["env"])


def drop_rights(spec):
    """Become the sandbox's unprivileged uid (a no-op when the grader is not root)."""
    uid, gid = spec.get("uid"), spec.get("gid")
    if uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    # and never gain rights again, not even through a setuid program (su, mount, ...)
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def inner(spec, cmd, env=None):
    if spec.get("bwrap"):
        # bubblewrap ran as root to build the namespaces (it keeps only CAP_SETUID/CAP_SETGID for us);
        # setuid to a non-root uid clears those too
        drop_rights(spec)
        os.chdir(spec["cwd"])
    set_rlimits(spec.get("rlimits", {}))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if env is None:
        os.execv(cmd[0], cmd)
    os.execve(cmd[0], cmd, env)


def main(argv):
    stage, spec_path, sep, cmd = argv[0], argv[1], argv[2], argv[3:]
    assert sep == "--" and cmd, "usage: _launch.py outer|inner SPEC -- CMD..."
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        (outer if stage == "outer" else inner)(spec, cmd)
    except OSError as e:
        sys.stderr.write(f"llmlab sandbox: could not start the kernel: {e}\n")
        os._exit(126)


if __name__ == "__main__":
    main(sys.argv[1:])
