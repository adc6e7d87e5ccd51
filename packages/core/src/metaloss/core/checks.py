"""Input validation shared by every metaloss package's public functions.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the
argument, what was expected and what was given, so a user's mistake surfaces at
the call that made it instead of as a silent wrong answer later on.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Sequence

import torch


def check_tensor(name: str, value, *, ndim: int | None = None, floating: bool | None = None):
    """Return ``value`` if it is a tensor of the expected rank and dtype kind."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    if floating is True and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if floating is False and value.is_floating_point():
        raise TypeError(f"{name} must be an integer tensor, got dtype {value.dtype}")
    return value


def describe(value) -> str:
    """What was given, for an error message: a tensor's dtype and shape, else the type's name."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_same_rows(**tensors: torch.Tensor) -> int:
    """All tensors share their first dimension; return it."""
    sizes = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"expected the same number of rows (examples), got {sizes}")
    return next(iter(sizes.values()))


def check_class_indices(name: str, labels: torch.Tensor, num_classes: int, *, why: str = "") -> None:
    """Every entry of the integer tensor ``labels`` lies in [0, num_classes - 1]; ``why`` is added to
    the message (e.g. " (one centre per class)")."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{name} must be class indices in [0, {num_classes - 1}]{why}, "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")


def check_finite_loss(name: str, loss: torch.Tensor) -> torch.Tensor:
    """A NaN or infinite loss would poison every parameter it touches: stop here."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise ValueError(
            f"{name} must be finite, got {loss.detach().flatten()[:5].tolist()} "
            "(check the learning rate, the inputs and the targets)"
        )
    return loss


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (``allow_zero``: >= 0); a bool is not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return float(value)


class InputTypeError(TypeError, ValueError):
    """A value of the wrong type: also a ``ValueError``, since for the caller it is a wrong value."""


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is one (a bool is not) and lies in [minimum, maximum]."""
    bounds = [f">= {minimum}"] * (minimum is not None) + [f"<= {maximum}"] * (maximum is not None)
    bound = " " + " and ".join(bounds) if bounds else ""
    message = f"{name} must be an int{bound}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(message)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(message)
    return int(value)


def check_unit_interval(name: str, value, *, low_open: bool = False, high_open: bool = False,
                        what: str = "a number") -> float:
    """Return ``value`` as a float if it lies in [0, 1] (``low_open``: > 0; ``high_open``: < 1)."""
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    message = f"{name} must be {what} in {interval}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(message)
    if not (0 < value if low_open else 0 <= value) or not (value < 1 if high_open else value <= 1):
        raise ValueError(message)
    return float(value)


def check_probability(name: str, value, *, high_open: bool = False) -> float:
    """A probability in [0, 1] (``high_open``: [0, 1), e.g. a dropout or noise rate that must leave some)."""
    return check_unit_interval(name, value, high_open=high_open, what="a probability")


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` (e.g. a mode or a dataset name)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_subset(name: str, values, allowed: Collection[str]) -> list[str]:
    """Return ``values`` as a list if each is one of ``allowed`` (e.g. the quantities to plot).

    A single string is refused rather than read as a list of its characters.
    """
    if isinstance(values, str):
        raise InputTypeError(f"{name} must be a list drawn from {sorted(allowed)}, got the string {values!r}")
    values = list(values)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"{name} must be drawn from {sorted(allowed)}, got {unknown}")
    return values
