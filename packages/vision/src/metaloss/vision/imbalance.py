"""Long-tailed (class-imbalanced) subsets of a labelled dataset, for the class-imbalance experiments.

Convention of Cui et al. 2019 ("Class-balanced loss based on effective number of samples", CVPR),
also used by LDAM-DRW and Meta-Weight-Net's imbalanced CIFAR: class ``i`` keeps

    n_i = floor(n_0 * mu^i),    mu = (1 / imbalance_ratio)^(1 / (C - 1)),

so class 0 is the head (``n_0`` examples), class ``C - 1`` the tail (``n_0 / imbalance_ratio``), and
the counts decay exponentially with the class index. To choose which classes form the head, relabel
(permute the class indices) before calling.
"""

from __future__ import annotations

import math

import torch

from metaloss.core.checks import check_int, check_unit_interval

from .noise import check_class_labels, seeded_generator


def long_tailed_counts(
    num_classes: int, n_max: int, *, imbalance_ratio: float | None = None, mu: float | None = None,
    at_least: int = 0,
) -> list[int]:
    """Per-class quotas ``floor(n_max * mu^i)`` for ``i = 0..C-1``; give exactly one of the two rates.

    With ``imbalance_ratio`` the factor is computed as ``imbalance_ratio^(-i / (C - 1))`` (so the tail
    is exactly ``n_max / imbalance_ratio`` before flooring), with ``mu`` as ``mu^i``. ``at_least``
    raises every quota to that floor (a small validation split keeps every class).
    """
    check_int("at_least", at_least, minimum=0)
    check_int("num_classes", num_classes, minimum=2)
    check_int("n_max", n_max, minimum=1)
    if (imbalance_ratio is None) == (mu is None):
        raise ValueError("give exactly one of imbalance_ratio and mu, "
                         f"got imbalance_ratio={imbalance_ratio!r} and mu={mu!r}")
    if imbalance_ratio is not None:
        if isinstance(imbalance_ratio, bool) or not isinstance(imbalance_ratio, (int, float)) \
                or not 1.0 <= imbalance_ratio < math.inf:
            raise ValueError(f"imbalance_ratio must be a finite number >= 1, got {imbalance_ratio!r}")
        factors = [imbalance_ratio ** (-i / (num_classes - 1)) for i in range(num_classes)]
    else:
        check_unit_interval("mu", mu, low_open=True)
        factors = [mu**i for i in range(num_classes)]
    # The 1e-9 absorbs float error so that exact quotas (5000 / 100 = 50) are not floored to one less.
    counts = [max(at_least, math.floor(n_max * f + 1e-9)) for f in factors]
    if counts[-1] < 1:
        raise ValueError(f"class {num_classes - 1} would keep no examples (n_max * mu^{num_classes - 1} = "
                         f"{n_max * factors[-1]:.3g} < 1); raise n_max or lower the imbalance")
    return counts


def long_tailed_indices(
    labels: torch.Tensor,
    num_classes: int,
    *,
    imbalance_ratio: float | None = None,
    mu: float | None = None,
    n_max: int | None = None,
    at_least: int = 0,
    seed: int,
) -> torch.Tensor:
    """Indices of a long-tailed subset: class ``i`` keeps ``floor(n_max * mu^i)`` of its examples.

    Give exactly one of ``imbalance_ratio`` (largest / smallest class count; ``mu`` is then
    ``(1 / imbalance_ratio)^(1 / (C - 1))``) and ``mu``. ``n_max`` (``n_0``) defaults to the number of
    examples of class 0, so the head class is kept whole. Quotas are floored as in
    ``long_tailed_counts`` (and raised to ``at_least``). Within each class the kept examples are a
    uniformly random subset drawn
    with a generator seeded by ``seed``; the returned int64 indices are sorted ascending, so the
    subset keeps the dataset's order. A class with fewer examples than its quota is an error.
    """
    check_int("num_classes", num_classes, minimum=2)
    check_class_labels(labels, num_classes)
    g = seeded_generator(seed)
    available = torch.bincount(labels.long(), minlength=num_classes).tolist()
    if n_max is None:
        n_max = available[0]
        if n_max == 0:
            raise ValueError("class 0 has no examples, so n_max cannot default to its count; pass n_max")
    counts = long_tailed_counts(num_classes, n_max, imbalance_ratio=imbalance_ratio, mu=mu, at_least=at_least)
    short = [f"class {c}: {have} < {need}" for c, (have, need) in enumerate(zip(available, counts))
             if have < need]
    if short:
        raise ValueError("too few examples for the long-tailed quotas floor(n_max * mu^i) "
                         f"with n_max={n_max} ({'; '.join(short)}); pass a smaller n_max or imbalance")
    kept = []
    for c, need in enumerate(counts):
        members = torch.nonzero(labels == c).flatten()
        kept.append(members[torch.randperm(members.numel(), generator=g)[:need]])
    return torch.sort(torch.cat(kept)).values
