"""Writing run files safely: atomic replacement and plain-JSON conversion.

Every file a run writes (config, checkpoints, results, caches) goes through
``atomic_write``, so a run killed at any moment leaves either the old file or
the new one, never a half-written one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` then rename ``tmp`` to ``path``.

    Readers and a kill at any moment see either the old file or the new one,
    never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def to_jsonable(value, where: str):
    """``value`` as plain JSON: tensors and numpy scalars become numbers, NaN becomes null."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        size = value.size if isinstance(value, np.ndarray) else value.numel()
        if size != 1:
            raise TypeError(f"{where} must be a scalar, got an array of shape {tuple(value.shape)}")
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # JSON has no NaN/inf; null keeps the file readable by every JSON parser.
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"{where} must be a number, str, bool, None or a list/dict of them, "
        f"got {type(value).__name__}"
    )
