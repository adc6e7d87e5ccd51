"""SVHN (cropped digits, 32 x 32 RGB) from torchvision's on-disk files, and its download.

Layout under a data root: ``[svhn/]{train,test}_32x32.mat`` (MATLAB files: ``X`` is (32, 32, 3, N) uint8,
``y`` is (N, 1) with the digit 0 stored as 10). The ``extra`` split is not used. Read with scipy here
rather than through ``torchvision.datasets.SVHN``, which insists on the official MD5 sums.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .paths import find_in_root

SVHN_CLASSES = tuple(str(d) for d in range(10))


def read_svhn(root: Path, split: str, limit: int | None):
    """SVHN ``split`` ("train" or "test"): uint8 (N, 3, 32, 32), int64 (N,) with 0 for the digit 0, names."""
    import scipy.io

    path = find_in_root(root, "svhn", [f"svhn/{split}_32x32.mat", f"{split}_32x32.mat"])
    mat = scipy.io.loadmat(path)
    if "X" not in mat or "y" not in mat or mat["X"].ndim != 4 or mat["X"].shape[2] != 3:
        raise ValueError(f"{path} must hold X (H, W, 3, N) and y (N, 1), got keys {sorted(mat)}")
    # (H, W, C, N) -> (N, C, H, W)
    images = np.ascontiguousarray(mat["X"][..., :limit].transpose(3, 2, 0, 1), dtype=np.uint8)
    labels = mat["y"].reshape(-1)[:limit].astype(np.int64)
    labels[labels == 10] = 0
    return images, labels, SVHN_CLASSES


def download_svhn(root: Path) -> None:
    """Download SVHN's train and test splits into the torchvision root ``root``."""
    from torchvision.datasets import SVHN

    for split in ("train", "test"):
        SVHN(str(root), split=split, download=True)
