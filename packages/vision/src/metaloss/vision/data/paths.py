"""Where image data lives: the data root, the committed fixtures, the cache, and each dataset's folder.

A *data root* is a directory holding one folder per dataset (``cifar10/``, ``fashion_mnist/``,
``cifar100/``, ...). It comes from a recipe's config value or the ``METALOSS_DATA`` environment
variable; with neither, loaders take the online path (torchvision downloads into the cache).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from metaloss.core.data_root import DATA_ENV, data_root

__all__ = ["DATA_ENV", "data_root", "default_cache_dir", "find_in_root", "fixture_root"]


def fixture_root() -> Path:
    """The committed mini data root (CIFAR-10 and Fashion-MNIST subsets; see fixtures/README.md).

    It has the same layout as a full data root, so ``load_image_splits(name, fixture_root())`` works
    from a fresh clone for ``cifar10`` and ``fashion_mnist``.
    """
    return Path(__file__).resolve().parent / "fixtures"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/metaloss``, or ``~/.cache/metaloss``: decoded arrays and online downloads."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metaloss"


def find_in_root(root: Path, name: str, candidates: Sequence[str]) -> Path:
    """The first of ``root / candidate`` that exists; ``name`` is the dataset, for the error message.

    Readers list the project's layout (``<name>/...``, also where the online path downloads to) and
    torchvision's self-named folders directly under ``root``, so an existing torchvision ``root``
    works as a data root too.
    """
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"no {name} data under {str(root)!r}: looked for {tried}")
