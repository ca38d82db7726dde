"""A small programming helper: short Python functions, checked by running them on test cases.

Each task names a function and its behaviour ("Write a Python function `sum_even(xs)` that returns the sum of
the even numbers in the list xs."); the reference answer is a fenced code block; the verifier extracts the code
from a response and runs it in a separate Python process on the task's test cases (:func:`run_tests`).

The sandbox is a guard against accidents, not against an attacker: a fresh temporary folder as working
directory, ``python -I`` (no environment variables, no user site-packages, the folder not on sys.path), an
empty environment, resource limits on POSIX (CPU seconds, memory, file size, no core files), a wall-clock
timeout that kills the whole process group, and ``socket`` disabled inside the process. Run untrusted code in a
container.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass

from .common import Example, Verdict, check_split, rng_for, sample, split_of


@dataclass(frozen=True)
class Spec:
    """One task: the function's name and signature, what it does (English), the reference code, test inputs."""

    key: str
    signature: str  # "sum_even(xs)"
    does: str  # "returns the sum of the even numbers in the list xs"
    code: str  # the reference implementation
    tests: tuple  # argument tuples; the expected outputs come from running the reference


def _specs() -> list[Spec]:
    """Every task: fixed ones, and families with a parameter (a divisor, a character, a power...)."""
    s = [
        Spec("sum_even", "sum_even(xs)", "returns the sum of the even numbers in the list xs",
             "def sum_even(xs):\n    return sum(x for x in xs if x % 2 == 0)",
             (([1, 2, 3, 4],), ([],), ([-2, 5, 7],), ([1, 3],), ([10, 10, 1],))),
        Spec("count_vowels", "count_vowels(s)", "returns how many vowels (a, e, i, o, u, upper or lower case) the "
             "string s contains", "def count_vowels(s):\n    return sum(c in 'aeiouAEIOU' for c in s)",
             (("hello",), ("",), ("AEIOUxyz",), ("rhythm",), ("Queue",))),
        Spec("reverse_words", "reverse_words(s)", "returns the words of the string s in reverse order, joined by "
             "single spaces", "def reverse_words(s):\n    return ' '.join(s.split()[::-1])",
             (("to be or not",), ("one",), ("",), ("  a  b ",))),
        Spec("is_palindrome", "is_palindrome(s)", "returns True if the string s reads the same backwards, "
             "ignoring case and every character that is not a letter or a digit, else False",
             "def is_palindrome(s):\n    t = [c.lower() for c in s if c.isalnum()]\n    return t == t[::-1]",
             (("Racecar",), ("A man, a plan, a canal: Panama",), ("abc",), ("",), ("ab",))),
        Spec("second_largest", "second_largest(xs)", "returns the second largest distinct value in the list xs, "
             "or None if there is none", "def second_largest(xs):\n    u = sorted(set(xs))\n"
             "    return u[-2] if len(u) > 1 else None", (([3, 1, 4, 1, 5],), ([7, 7],), ([],), ([-1, -2],))),
        Spec("unique", "unique(xs)", "returns the elements of the list xs without repeats, in the order of their "
             "first occurrence", "def unique(xs):\n    seen, out = set(), []\n    for x in xs:\n"
             "        if x not in seen:\n            seen.add(x)\n            out.append(x)\n    return out",
             (([3, 1, 3, 2, 1],), ([],), (["a", "b", "a"],))),
        Spec("running_sum", "running_sum(xs)", "returns the list of running totals of the list xs",
             "def running_sum(xs):\n    out, t = [], 0\n    for x in xs:\n        t += x\n        out.append(t)\n"
             "    return out", (([1, 2, 3],), ([],), ([5, -5, 5],))),
        Spec("fizzbuzz", "fizzbuzz(n)", "returns a list of strings for 1..n: 'Fizz' for multiples of 3, 'Buzz' for "
             "multiples of 5, 'FizzBuzz' for multiples of both, otherwise the number itself as a string",
             "def fizzbuzz(n):\n    return ['FizzBuzz' if i % 15 == 0 else 'Fizz' if i % 3 == 0 else 'Buzz' "
             "if i % 5 == 0 else str(i) for i in range(1, n + 1)]", ((15,), (0,), (5,))),
        Spec("fibonacci", "fibonacci(n)", "returns the n-th Fibonacci number, with fibonacci(0) == 0 and "
             "fibonacci(1) == 1", "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b"
             "\n    return a", ((0,), (1,), (2,), (10,), (50,))),
        Spec("is_prime", "is_prime(n)", "returns True if the integer n is a prime number, else False",
             "def is_prime(n):\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n"
             "        if n % i == 0:\n            return False\n        i += 1\n    return True",
             ((1,), (2,), (9,), (97,), (0,), (-7,), (7919,))),
        Spec("digit_sum", "digit_sum(n)", "returns the sum of the decimal digits of the integer n (ignoring its sign)",
             "def digit_sum(n):\n    return sum(int(c) for c in str(abs(n)))", ((123,), (0,), (-45,), (9999,))),
        Spec("flatten", "flatten(xss)", "returns one list with the elements of the list of lists xss, in order",
             "def flatten(xss):\n    return [x for xs in xss for x in xs]", (([[1, 2], [3], []],), ([],))),
        Spec("transpose", "transpose(m)", "returns the transpose of the matrix m, given as a list of equally long "
             "rows", "def transpose(m):\n    return [list(r) for r in zip(*m)]",
             (([[1, 2, 3], [4, 5, 6]],), ([[1]],), ([],))),
        Spec("merge_sorted", "merge_sorted(a, b)", "returns the sorted merge of the two sorted lists a and b",
             "def merge_sorted(a, b):\n    return sorted(a + b)", (([1, 4], [2, 3, 5]), ([], [1]), ([], []))),
        Spec("char_counts", "char_counts(s)", "returns a dict mapping each character of the string s to how many "
             "times it occurs", "def char_counts(s):\n    d = {}\n    for c in s:\n        d[c] = d.get(c, 0) + 1\n"
             "    return d", (("hello",), ("",), ("aaa",))),
        Spec("gcd", "gcd(a, b)", "returns the greatest common divisor of the non-negative integers a and b "
             "(gcd(0, 0) == 0)", "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
             ((12, 18), (7, 0), (0, 0), (17, 5))),
        Spec("to_binary", "to_binary(n)", "returns the binary representation of the non-negative integer n as a "
             "string without prefix", "def to_binary(n):\n    return bin(n)[2:]", ((0,), (5,), (255,))),
        Spec("capitalize_words", "capitalize_words(s)", "returns the string s with the first letter of every "
             "space-separated word in upper case and the rest unchanged",
             "def capitalize_words(s):\n    return ' '.join(w[:1].upper() + w[1:] for w in s.split(' '))",
             (("hello world",), ("",), ("a bC",))),
    ]
    for k in (3, 4, 5, 7):
        s.append(Spec(f"sum_multiples_{k}", f"sum_multiples(xs)", f"returns the sum of the numbers in the list xs "
                      f"that are divisible by {k}", f"def sum_multiples(xs):\n    return sum(x for x in xs if x % {k} == 0)",
                      (([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 20, 21],), ([],), ([k, -k, k + 1],))))
    for c in "aeistz":
        s.append(Spec(f"count_char_{c}", "count_char(s)", f"returns how many times the letter '{c}' occurs in the "
                      "string s (lower case only)", f"def count_char(s):\n    return s.count('{c}')",
                      ((f"{c}x{c}{c}",), ("",), ("the quick brown fox jumps over the lazy dog",), (c.upper(),))))
    for p in (2, 3):
        s.append(Spec(f"powers_{p}", "powers(xs)", f"returns the list of the {'squares' if p == 2 else 'cubes'} of "
                      "the odd numbers in the list xs, in order", f"def powers(xs):\n    return [x ** {p} for x in xs "
                      "if x % 2 == 1]", (([1, 2, 3],), ([],), ([-3, 4],))))
    for n in (2, 3):
        s.append(Spec(f"chunks_{n}", "chunks(xs)", f"returns the list xs cut into consecutive lists of {n} elements "
                      "(the last one may be shorter)", f"def chunks(xs):\n    return [xs[i:i + {n}] for i in "
                      f"range(0, len(xs), {n})]", (([1, 2, 3, 4, 5],), ([],), ([1],))))
    for lo, hi in ((0, 100), (-10, 10)):
        s.append(Spec(f"clamp_{lo}_{hi}", "clamp(x)", f"returns x limited to the range [{lo}, {hi}]",
                      f"def clamp(x):\n    return max({lo}, min({hi}, x))", ((-50,), (5,), (500,), (lo,), (hi,))))
    return s


SPECS = {s.key: s for s in _specs()}
FRACTIONS = (0.6, 0.2, 0.2)  # a few dozen tasks: a larger share held out, so validation and test have several each
_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", re.S)
_MARK = "__LLMLAB_RESULT__"

_HARNESS = r'''
import json, socket, sys
def _no_network(*a, **k):
    raise OSError("network access is disabled in the verifier")
socket.socket = socket.create_connection = socket.socketpair = _no_network
src, fname, cases = json.loads(sys.stdin.read())
ns = {"__name__": "solution"}
results = []
try:
    exec(compile(src, "solution.py", "exec"), ns)
    fn = ns[fname]
except BaseException as e:
    print("%s" + json.dumps({"error": "the code does not define %%s: %%s: %%s" %% (fname, type(e).__name__, e)}))
    raise SystemExit
for args in cases:
    try:
        results.append({"ok": True, "value": json.loads(json.dumps(fn(*args)))})
    except BaseException as e:
        results.append({"ok": False, "value": "%%s: %%s" %% (type(e).__name__, e)})
print("%s" + json.dumps({"results": results}))
''' % (_MARK, _MARK)


def extract_code(response: str) -> str:
    """The code of a response: its fenced ```python blocks joined, or the whole text if it has none."""
    blocks = _FENCE.findall(response)
    return "\n\n".join(b.strip("\n") for b in blocks) if blocks else textwrap.dedent(response).strip("\n")


def _limits(cpu_s: int, mem_bytes: int):
    def apply():
        import resource

        for limit, value in ((resource.RLIMIT_CPU, cpu_s), (resource.RLIMIT_AS, mem_bytes),
                             (resource.RLIMIT_FSIZE, 1 << 20),  # writes beyond 1 MB fail
                             (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):  # macOS refuses RLIMIT_AS; the other limits still hold
                pass
    return apply


def run_tests(code: str, fname: str, cases: list, timeout: float = 5.0, mem_mb: int = 512) -> dict:
    """Run ``fname(*args)`` for each argument list in ``cases`` in a fresh ``python -I`` process.

    Returns ``{"results": [{"ok", "value"}...]}`` (values after a JSON round trip, so tuples come back as lists),
    or ``{"error": "..."}`` for code that does not run, a timeout, or a crash.
    """
    with tempfile.TemporaryDirectory(prefix="llmlab-verify-") as tmp:
        posix = os.name == "posix"
        proc = subprocess.Popen([sys.executable, "-I", "-c", _HARNESS], cwd=tmp, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp},
                                preexec_fn=_limits(int(timeout) + 1, mem_mb << 20) if posix else None,
                                start_new_session=posix)
        try:
            out, err = proc.communicate(json.dumps([code, fname, cases]), timeout=timeout)
        except subprocess.TimeoutExpired:
            if posix:
                os.killpg(proc.pid, 9)  # the whole group: the code may have started processes of its own
            else:
                proc.kill()
            proc.communicate()
            return {"error": f"timed out after {timeout:g} s"}
    for line in reversed(out.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    last = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"error": f"the process died: {last}"}


class Programming:
    """Write a small Python function; passed when every test case returns the reference's output."""

    name = "python"

    def __init__(self):
        self._expected: dict[str, list] = {}

    def expected(self, key: str) -> list:
        """The reference outputs of a task's test cases (computed once, in the sandbox like any response)."""
        if key not in self._expected:
            spec = SPECS[key]
            res = run_tests(spec.code, spec.signature.split("(")[0], [list(a) for a in spec.tests])
            if "error" in res or not all(r["ok"] for r in res["results"]):
                raise RuntimeError(f"reference solution of {key} fails: {res}")
            self._expected[key] = [r["value"] for r in res["results"]]
        return self._expected[key]

    def generate(self, split: str, n: int | None = None, seed: int = 0) -> list[Example]:
        split = check_split(split)
        keys = [k for k in SPECS if split_of("python:" + k, FRACTIONS) == split]
        out = []
        for key in sample(keys, n, rng_for(self.name, split, seed), self.name):
            spec = SPECS[key]
            prompt = f"Write a Python function `{spec.signature}` that {spec.does}."
            out.append(Example(self.name, split, "python:" + key, prompt, f"```python\n{spec.code}\n```", "en",
                               {"spec": key, "function": spec.signature.split("(")[0],
                                "tests": [list(a) for a in spec.tests]}))
        return out

    def verify(self, example: Example, response: str, timeout: float = 5.0) -> Verdict:
        """Score = the share of test cases whose output equals the reference's; passed = all of them."""
        m = example.meta
        want = self.expected(m["spec"])
        res = run_tests(extract_code(response), m["function"], m["tests"], timeout=timeout)
        if "error" in res:
            return Verdict(0.0, False, res["error"], {"runs": False})
        checks, reasons = {}, {}
        for i, (args, r, w) in enumerate(zip(m["tests"], res["results"], want)):
            name = f"test_{i}"
            checks[name] = r["ok"] and r["value"] == w
            call = f"{m['function']}({', '.join(map(repr, args))})"
            reasons[name] = (f"{call} raised {r['value']}" if not r["ok"] else
                             f"{call} returned {r['value']!r}, expected {w!r}")
        return Verdict.from_checks(checks, reasons)
