"""The UCI optical handwritten digits (8x8 grey images, 10 classes, 1797 images).

The data ships inside scikit-learn (``sklearn.datasets.load_digits``), so the
default recipe runs on real images with no download and no data directory.
Each seed draws its own disjoint splits: a teacher's training set, the
student's training set, a validation set, and the rest as the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metaloss.core.checks import check_int


@dataclass(frozen=True)
class DigitsSplits:
    images: torch.Tensor  # (1797, 64) in [0, 1]
    labels: torch.Tensor  # (1797,) int64
    teacher_train: torch.Tensor  # index tensors into images/labels
    student_train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def load_digits_splits(seed: int, teacher_train: int, student_train: int, val: int) -> DigitsSplits:
    """Disjoint random splits of the digits; the test set is what remains."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.data / 16.0, dtype=torch.float32)
    labels = torch.tensor(data.target, dtype=torch.long)
    sizes = {"teacher_train": teacher_train, "student_train": student_train, "val": val}
    for name, size in sizes.items():
        check_int(name, size, minimum=1)
    if sum(sizes.values()) >= len(labels):
        raise ValueError(
            f"teacher_train + student_train + val must leave a test set out of {len(labels)} "
            f"images, got {sum(sizes.values())}"
        )
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    a, b, c = teacher_train, teacher_train + student_train, teacher_train + student_train + val
    return DigitsSplits(images, labels, perm[:a], perm[a:b], perm[b:c], perm[c:])
