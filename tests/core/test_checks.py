"""The public validation helpers: what each accepts; messages name the argument, the rule and the value."""

import math

import numpy as np
import pytest
import torch

from metaloss.core.checks import (
    InputTypeError,
    check_choice,
    check_finite_loss,
    check_int,
    check_positive,
    check_probability,
    check_same_rows,
    check_subset,
    check_tensor,
    check_unit_interval,
)


def test_check_int_accepts_ints_in_bounds_and_numpy_ints():
    assert check_int("n", 3, minimum=1) == 3
    assert check_int("n", 0) == 0
    value = check_int("n", np.int64(5), minimum=1, maximum=5)
    assert value == 5 and type(value) is int


@pytest.mark.parametrize("value, bounds, message", [
    (0, {"minimum": 1}, "n must be an int >= 1, got 0"),
    (7, {"maximum": 5}, "n must be an int <= 5, got 7"),
    (-1, {"minimum": 0, "maximum": 3}, "n must be an int >= 0 and <= 3, got -1"),
])
def test_check_int_out_of_bounds_is_a_value_error(value, bounds, message):
    with pytest.raises(ValueError, match=f"^{message}$") as err:
        check_int("n", value, **bounds)
    assert not isinstance(err.value, TypeError)


@pytest.mark.parametrize("value", [True, 2.0, "3", None])
def test_check_int_refuses_bools_floats_and_strings_as_both_error_types(value):
    with pytest.raises(InputTypeError, match=f"n must be an int >= 1, got {value!r}"):
        check_int("n", value, minimum=1)
    # the old hand-written checks raised ValueError, the old private one TypeError: both still catch it
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, ValueError)


def test_check_unit_interval_ends():
    assert check_unit_interval("w", 0) == 0.0 and check_unit_interval("w", 1) == 1.0
    assert check_unit_interval("w", np.float32(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"^w must be a number in \(0, 1\], got 0$"):
        check_unit_interval("w", 0, low_open=True)
    with pytest.raises(ValueError, match=r"^w must be a number in \[0, 1\), got 1.0$"):
        check_unit_interval("w", 1.0, high_open=True)
    with pytest.raises(ValueError, match=r"^lambda_a must be a weight in \[0, 1\], got 1.5$"):
        check_unit_interval("lambda_a", 1.5, what="a weight")
    with pytest.raises(ValueError, match=r"got nan"):
        check_unit_interval("w", math.nan)
    with pytest.raises(InputTypeError, match=r"w must be a number in \[0, 1\], got True"):
        check_unit_interval("w", True)


def test_check_probability_closed_or_leaving_some():
    assert check_probability("p", 1) == 1.0
    assert check_probability("dropout", 0.0, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"^dropout must be a probability in \[0, 1\), got 1$"):
        check_probability("dropout", 1, high_open=True)
    with pytest.raises(ValueError, match=r"^p must be a probability in \[0, 1\], got -0.1$"):
        check_probability("p", -0.1)
    with pytest.raises(InputTypeError, match=r"p must be a probability in \[0, 1\], got '0.5'"):
        check_probability("p", "0.5")


def test_check_positive():
    assert check_positive("lr", 1) == 1.0 and check_positive("wd", 0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="^lr must be a finite number > 0, got 0$"):
        check_positive("lr", 0)
    with pytest.raises(ValueError, match="^wd must be a finite number >= 0, got -1$"):
        check_positive("wd", -1, allow_zero=True)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got inf"):
        check_positive("lr", math.inf)
    with pytest.raises(TypeError, match="lr must be a number, got bool"):
        check_positive("lr", True)


def test_check_choice_and_check_subset():
    assert check_choice("mode", "exact", ("exact", "last_layer")) == "exact"
    with pytest.raises(ValueError, match=r"^mode must be one of \['exact', 'last_layer'\], got 'exactt'$"):
        check_choice("mode", "exactt", ("exact", "last_layer"))
    allowed = {"trust": 1, "total": 2}
    assert check_subset("quantities", ("total",), allowed) == ["total"]
    assert check_subset("quantities", [], allowed) == []
    unknown = r"^quantities must be drawn from \['total', 'trust'\], got \['a', 'b'\]$"
    with pytest.raises(ValueError, match=unknown):
        check_subset("quantities", ["trust", "b", "a"], allowed)
    with pytest.raises(InputTypeError, match=r"quantities must be a list drawn from .*the string 'trust'"):
        check_subset("quantities", "trust", allowed)


def test_tensor_checks():
    x = torch.zeros(3, 2)
    assert check_tensor("x", x, ndim=2, floating=True) is x
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        check_tensor("x", [1.0])
    with pytest.raises(ValueError, match=r"x must have 1 dimensions, got shape \(3, 2\)"):
        check_tensor("x", x, ndim=1)
    with pytest.raises(TypeError, match="x must be an integer tensor"):
        check_tensor("x", x, floating=False)
    assert check_same_rows(a=x, b=torch.zeros(3)) == 3
    with pytest.raises(ValueError, match=r"same number of rows .*'a': 3, 'b': 4"):
        check_same_rows(a=x, b=torch.zeros(4))
    loss = torch.tensor(0.5)
    assert check_finite_loss("loss", loss) is loss
    with pytest.raises(ValueError, match=r"loss must be finite, got \[nan\]"):
        check_finite_loss("loss", torch.tensor(math.nan))
