"""Input validation shared by metaloss-core's public functions.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the
argument, what was expected and what was given, so a user's mistake surfaces at
the call that made it instead of as a silent wrong answer later on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def check_same_rows(**tensors: torch.Tensor) -> int:
    """All tensors share their first dimension; return it."""
    sizes = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"expected the same number of rows (examples), got {sizes}")
    return next(iter(sizes.values()))


def check_finite_loss(name: str, loss: torch.Tensor) -> torch.Tensor:
    """A NaN or infinite loss would poison every parameter it touches: stop here."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise ValueError(
            f"{name} must be finite, got {loss.detach().flatten()[:5].tolist()} "
            "(check the learning rate, the inputs and the targets)"
        )
    return loss


def check_positive(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")
    return float(value)


def check_int(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
