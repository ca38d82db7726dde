"""Assertion helpers for the notebooks' test cells.

Every failure message follows one pattern, first line first (the autograder shows that line):

    <what is wrong, in one line>
      expected: ...
      got:      ...
      likely mistake: ...

``assert_close`` can also be given the outputs of typical *wrong* implementations
(``mistakes={"forgot the 1/sqrt(d_k) scaling": wrong_tensor}``); when the learner's answer
matches one of them, the message names that mistake instead of guessing.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch


class GradingError(AssertionError):
    """A test-cell failure with a message written for the learner."""


def _fmt(x: Any, limit: int = 6) -> str:
    if isinstance(x, torch.Tensor):
        flat = x.detach().flatten()
        vals = ", ".join(f"{v:.4g}" for v in flat[:limit].tolist()) if x.is_floating_point() else ", ".join(str(v) for v in flat[:limit].tolist())
        more = ", ..." if flat.numel() > limit else ""
        return f"tensor(shape={tuple(x.shape)}, dtype={str(x.dtype).replace('torch.', '')}, values=[{vals}{more}])"
    text = repr(x)
    return text if len(text) < 200 else text[:197] + "..."


def fail(summary: str, *, expected: Any = None, got: Any = None, hint: str | None = None) -> None:
    lines = [summary]
    if expected is not None:
        lines.append(f"  expected: {expected if isinstance(expected, str) else _fmt(expected)}")
    if got is not None:
        lines.append(f"  got:      {got if isinstance(got, str) else _fmt(got)}")
    if hint:
        lines.append(f"  likely mistake: {hint}")
    raise GradingError("\n".join(lines))


def check(condition: bool, summary: str, *, expected: Any = None, got: Any = None, hint: str | None = None) -> None:
    """``assert condition`` with a learner-friendly message."""
    if not condition:
        fail(summary, expected=expected, got=got, hint=hint)


def as_tensor(x: Any, name: str) -> torch.Tensor:
    if x is None:
        fail(f"{name} returned None", expected="a torch.Tensor", got="None", hint="a missing `return` statement")
    if not isinstance(x, torch.Tensor):
        fail(f"{name} should return a torch.Tensor", expected="torch.Tensor", got=type(x).__name__)
    return x


def assert_shape(x: Any, shape: tuple, name: str = "output", hint: str | None = None) -> None:
    x = as_tensor(x, name)
    if tuple(x.shape) != tuple(shape):
        fail(f"{name} has the wrong shape", expected=str(tuple(shape)), got=str(tuple(x.shape)), hint=hint)


def _matches(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    if a.shape != b.shape:
        return False
    a, b = a.detach().double(), b.detach().double()
    return bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def assert_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    name: str = "output",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str | None = None,
    mistakes: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Check ``actual`` against a trusted ``expected`` tensor.

    ``atol``/``rtol`` default to float32 round-off after a few matmuls (~1e-6 relative), with margin.
    """
    actual = as_tensor(actual, name)
    expected = expected.detach()
    if tuple(actual.shape) != tuple(expected.shape):
        diagnosis = hint
        if actual.dim() == expected.dim() and actual.shape == expected.transpose(-1, -2).shape:
            diagnosis = hint or "the last two dimensions are swapped (a transpose too many or too few)"
        fail(f"{name} has the wrong shape", expected=str(tuple(expected.shape)), got=str(tuple(actual.shape)), hint=diagnosis)
    if torch.isnan(actual).any() and not torch.isnan(expected).any():
        where = torch.isnan(actual).nonzero()[0].tolist()
        fail(
            f"{name} contains NaN (first at index {where})",
            expected=expected,
            got=actual,
            hint=hint or "a softmax over a row that is entirely -inf, or a division by zero",
        )
    if _matches(actual, expected, atol, rtol):
        return
    diff = (actual.detach().double() - expected.double()).abs()
    diff = torch.nan_to_num(diff, nan=math.inf)
    idx = tuple(torch.nonzero(diff == diff.max())[0].tolist())
    for mistake, wrong in (mistakes or {}).items():
        if _matches(actual, wrong, atol, rtol):
            hint = mistake
            break
    fail(
        f"{name} does not match the reference: max |difference| {diff.max().item():.3g} at index {idx} "
        f"(tolerance atol={atol:g}, rtol={rtol:g})",
        expected=f"{expected[idx].item():.6g} at {idx}; {_fmt(expected)}",
        got=f"{actual[idx].item():.6g} at {idx}; {_fmt(actual)}",
        hint=hint,
    )


def assert_allclose_grads(model_a: torch.nn.Module, model_b: torch.nn.Module, name_map: Mapping[str, str] | None = None,
                          atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Compare the gradients of two models parameter by parameter (names mapped a -> b)."""
    params_b = dict(model_b.named_parameters())
    for n, p in model_a.named_parameters():
        other = params_b[name_map.get(n, n) if name_map else n]
        if p.grad is None:
            fail(f"parameter {n} got no gradient", expected="a gradient tensor", got="None",
                 hint="the parameter is not used in forward(), or the graph was cut with .detach()/.data")
        assert_close(p.grad, other.grad, name=f"gradient of {n}", atol=atol, rtol=rtol)
