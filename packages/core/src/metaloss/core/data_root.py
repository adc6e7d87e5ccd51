"""The data root every domain package's loaders share: a config value, else ``$METALOSS_DATA``.

A *data root* is a directory holding one folder per dataset (``cifar10/``, ``coco128/``, ...);
with neither a value nor the variable, loaders take their online path.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "METALOSS_DATA"


def data_root(value: str | os.PathLike | None = None) -> Path | None:
    """The data root: ``value`` if given, else ``$METALOSS_DATA``, else None (use the online path).

    An empty ``$METALOSS_DATA`` counts as unset, so ``METALOSS_DATA= cmd`` switches it off.
    """
    if value is None:
        value = os.environ.get(DATA_ENV) or None
        source = f"${DATA_ENV}"
    else:
        source = "the data root"
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"the data root must be a str or os.PathLike, or None, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{source} must be a directory, got an empty string")
    path = Path(value).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{source} {str(path)!r} does not exist")
    if not path.is_dir():
        raise FileNotFoundError(f"{source} {str(path)!r} is not a directory")
    return path
