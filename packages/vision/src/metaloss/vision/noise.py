"""Label-noise generators. Each is seeded and returns (noisy labels, corrupted mask).

Symmetric noise (as in the AMAL paper's noisy-label KD, section 5.2): each label
is, with probability ``rate``, replaced by a class drawn uniformly from the
*other* classes, so the corrupted mask is exactly where the label changed and
the realised rate is ``rate`` in expectation.
"""

from __future__ import annotations

import torch


def symmetric_noise(
    labels: torch.Tensor, rate: float, num_classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each label with probability ``rate`` to a uniformly random other class."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise TypeError("labels must be a 1-D integer tensor of class indices")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be a probability in [0, 1], got {rate!r}")
    g = torch.Generator().manual_seed(seed)
    corrupted = torch.rand(labels.shape, generator=g) < rate
    shift = torch.randint(1, num_classes, labels.shape, generator=g)
    noisy = torch.where(corrupted, (labels + shift) % num_classes, labels)
    return noisy, corrupted
