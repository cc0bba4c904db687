"""The weights' finiteness check sums each tensor instead of writing a bool tensor as large as
it (issue 28): a sum that overflows must not be taken for a bad value, and a NaN or an infinity
anywhere must still be found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.loading import check_finite


def _model(**tensors: torch.Tensor) -> torch.nn.Module:
    module = torch.nn.Module()
    for name, value in tensors.items():
        module.register_buffer(name, value)
    return module


def test_sums_that_overflow_are_not_bad_values():
    big = torch.full((4,), 3e38)  # float32: the sum is inf, every value finite
    f16 = torch.full((1000,), 60000.0, dtype=torch.float16)  # float16 would overflow at 65,504
    check_finite(_model(big=big, f16=f16, ids=torch.arange(3)), Path("m"), torch.float32)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_single_bad_value_is_found(bad):
    weights = torch.zeros(1000)
    weights[617] = bad
    with pytest.raises(UnlearnError, match=r"NaN or infinite values \(1 of 2 tensors, first 'w'"):
        check_finite(_model(ok=torch.ones(3), w=weights), Path("m"), torch.float32)
