"""llmlab.testing: failure messages say what was expected, what came back, and the likely mistake."""

import pytest
import torch

from llmlab.testing import GradingError, assert_close, assert_shape


def test_names_the_matching_mistake():
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    with pytest.raises(GradingError) as e:
        assert_close(2 * x, x, name="scores", mistakes={"forgot to divide by 2": 2 * x, "negated": -x})
    first, *rest = str(e.value).splitlines()
    assert first.startswith("scores does not match the reference")
    assert "likely mistake: forgot to divide by 2" in rest[-1]


def test_shape_transpose_and_nan_and_none():
    x = torch.zeros(2, 3)
    with pytest.raises(GradingError, match="last two dimensions are swapped"):
        assert_close(x.T, x)
    with pytest.raises(GradingError, match="contains NaN"):
        assert_close(torch.full((2, 3), float("nan")), x)
    with pytest.raises(GradingError, match="missing `return`"):
        assert_shape(None, (2, 3))


def test_passes_within_tolerance():
    x = torch.randn(5)
    assert_close(x + 1e-7, x)  # float32 round-off is within the default atol=1e-5
