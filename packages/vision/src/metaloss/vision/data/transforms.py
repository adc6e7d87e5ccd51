"""Per-item image transforms (torchvision.transforms.v2 on float tensors in [0, 1]).

Training: random crop back to the image's own size from a zero-padded copy (padding 4 by default),
a random horizontal flip where the dataset allows it, then per-channel normalisation. Evaluation:
normalisation only. The same recipe serves RGB (CIFAR, SVHN, resized Cars / Aircraft) and grey
images (Fashion-MNIST: 1 channel, crop 28 from a 36 x 36 padded copy, i.e. shifts of up to 4 pixels,
about the relative jitter CIFAR's 4 of 32 gives).

The random draws use torch's global generator; ``make_loader`` seeds it per item from
(seed, epoch, index), which is what makes augmentation reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torchvision.transforms import v2

from metaloss.core.checks import check_int


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    mean, std = list(mean), list(std)
    if not mean or len(mean) != len(std):
        raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)} values")
    if not all(math.isfinite(m) for m in mean) or not all(math.isfinite(s) and s > 0 for s in std):
        raise ValueError(f"mean must be finite and std finite and > 0, got mean={mean}, std={std}")
    return mean, std


def eval_transform(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Normalise each channel: ``(x - mean) / std``."""
    mean, std = _check_stats(mean, std)
    return v2.Compose([v2.Normalize(mean, std)])


def train_transform(
    mean: Sequence[float], std: Sequence[float], size: int, *, padding: int = 4, flip: bool = True
) -> v2.Compose:
    """Random ``size`` x ``size`` crop of the zero-padded image, random horizontal flip (if ``flip``),
    then normalisation. Pass ``flip=False`` where mirroring changes the label (digits: SVHN)."""
    mean, std = _check_stats(mean, std)
    for name, value, low in (("size", size, 1), ("padding", padding, 0)):
        check_int(name, value, minimum=low)
    steps = [v2.RandomCrop(size, padding=padding)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.Normalize(mean, std))
    return v2.Compose(steps)
