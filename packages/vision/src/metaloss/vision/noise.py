"""Label-noise generators for the noisy-label experiments, and the empirical transition matrix.

Every generator is seeded (its own ``torch.Generator``, so the global RNG is untouched) and returns
``(noisy_labels, corrupted_mask)`` where the mask is exactly ``noisy_labels != labels``. Writing
``T[i, j] = P(noisy = j | clean = i)`` for the label transition matrix:

- ``symmetric_noise`` (the AMAL paper's noisy-label KD, section 5.2): ``T[i, i] = 1 - rate`` and
  ``T[i, j] = rate / (C - 1)`` for every ``j != i``.
- ``pair_noise``: the pair flipping of Han et al. 2018 ("Co-teaching", NeurIPS), ``T[i, i] = 1 - rate``
  and ``T[i, (i + 1) mod C] = rate``.
- ``asymmetric_noise``: an explicit class -> class map, flipped with probability ``rate``; classes
  outside the map stay clean. ``CIFAR10_ASYMMETRIC`` is the CIFAR-10 map of Patrini et al. 2017
  ("Making deep neural networks robust to label noise: a loss correction approach", CVPR).
- ``two_similar_classes_noise``: the "flip" noise of Shu et al. 2019 (Meta-Weight-Net, NeurIPS):
  ``T[i, i] = 1 - rate`` and ``rate / 2`` on each of two classes similar to ``i``.
- ``instance_dependent_noise``: the instance-dependent generation of Xia et al. 2020 ("Part-dependent
  label noise: towards instance-dependent label noise", NeurIPS), where each example has its own row
  ``T(x_i)`` built from a random projection of its features.

``transition_matrix`` estimates ``T`` from a (clean, noisy) pair of label vectors. ``NOISE_GENERATORS``
names the generators that need nothing beyond ``(labels, rate, num_classes, *, seed)``;
``corrupt_labels`` picks any of the five by the name a config gives (``NOISE_KINDS``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import torch

from metaloss.core.checks import check_choice, check_int, check_probability

# CIFAR-10 class indices: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse,
# 8 ship, 9 truck. Patrini et al. 2017: truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog.
CIFAR10_ASYMMETRIC: Mapping[int, int] = MappingProxyType({9: 1, 2: 0, 4: 7, 3: 5, 5: 3})

# Standard deviation of the per-example flip rates in Xia et al. 2020's generation.
_FLIP_RATE_STD = 0.1


def _describe(value: object) -> str:
    """What was given, for error messages."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def check_class_labels(labels: torch.Tensor, num_classes: int | None, name: str = "labels") -> None:
    """1-D integer tensor with values in [0, num_classes - 1] (or just >= 0 when num_classes is None)."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point() \
            or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be a 1-D integer tensor of class indices, got {_describe(labels)}")
    if not labels.numel():
        return
    low, high = int(labels.min()), int(labels.max())
    if num_classes is None:
        if low < 0:
            raise ValueError(f"{name} must be non-negative class indices, got a minimum of {low}")
    elif low < 0 or high >= num_classes:
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}], got values in [{low}, {high}]")


def seeded_generator(seed: int) -> torch.Generator:
    """A torch generator seeded with ``seed`` (an int): every draw here is reproducible."""
    return torch.Generator().manual_seed(check_int("seed", seed))


def _validate(labels: torch.Tensor, rate: float, num_classes: int | None, seed: int) -> torch.Generator:
    """Shared checks of every generator; returns the generator seeded with ``seed``."""
    if num_classes is not None:
        check_int("num_classes", num_classes, minimum=2)
    check_class_labels(labels, num_classes)
    check_probability("rate", rate)
    return seeded_generator(seed)


def _class_index(value: object, num_classes: int | None, what: str) -> int:
    """A class index from a user-supplied map, with the map entry named in the error."""
    return check_int(what, value, minimum=0, maximum=None if num_classes is None else num_classes - 1)


def symmetric_noise(
    labels: torch.Tensor, rate: float, num_classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each label with probability ``rate`` to a uniformly random other class."""
    g = _validate(labels, rate, num_classes, seed)
    corrupted = torch.rand(labels.shape, generator=g) < rate
    shift = torch.randint(1, num_classes, labels.shape, generator=g)
    noisy = torch.where(corrupted, (labels + shift) % num_classes, labels)
    return noisy, corrupted


def pair_noise(
    labels: torch.Tensor, rate: float, num_classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair flipping (Han et al. 2018): class ``c`` becomes ``(c + 1) mod C`` with probability ``rate``."""
    g = _validate(labels, rate, num_classes, seed)
    corrupted = torch.rand(labels.shape, generator=g) < rate
    noisy = torch.where(corrupted, (labels + 1) % num_classes, labels)
    return noisy, corrupted


def asymmetric_noise(
    labels: torch.Tensor, rate: float, *, mapping: Mapping[int, int], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each label ``c`` that ``mapping`` names to ``mapping[c]`` with probability ``rate``.

    Labels of classes that are not keys of ``mapping`` never change, so the overall realised rate is
    ``rate`` times the fraction of labels in mapped classes (for balanced CIFAR-10 with
    ``CIFAR10_ASYMMETRIC``, ``rate / 2``). A key mapped to itself is rejected: it would count as a
    flip that changes nothing.
    """
    g = _validate(labels, rate, None, seed)
    if not isinstance(mapping, Mapping):
        raise TypeError(f"mapping must be a Mapping of class -> class, got {type(mapping).__name__}")
    pairs = [(_class_index(k, None, "mapping key"), _class_index(v, None, f"mapping[{k!r}]"))
             for k, v in mapping.items()]
    for source, target in pairs:
        if source == target:
            raise ValueError(f"mapping sends class {source} to itself; map each class to a different class")
    size = max([int(labels.max()) + 1 if labels.numel() else 0] + [max(s, t) + 1 for s, t in pairs])
    # table[c] is the class that c flips to; unmapped classes point to themselves and are never corrupted.
    table = torch.arange(size)
    for source, target in pairs:
        table[source] = target
    flipped = table[labels.long()].to(labels.dtype)
    corrupted = (torch.rand(labels.shape, generator=g) < rate) & (flipped != labels)
    noisy = torch.where(corrupted, flipped, labels)
    return noisy, corrupted


def _similar_table(similar: Mapping[int, Sequence[int]] | None, num_classes: int) -> torch.Tensor:
    """The (C, 2) table of each class's two similar classes, default ``(c + 1, c + 2) mod C``."""
    if similar is None:
        if num_classes < 3:
            raise ValueError("the default similar classes (c + 1, c + 2) mod C need num_classes >= 3, "
                             f"got {num_classes}; pass `similar` explicitly")
        c = torch.arange(num_classes)
        return torch.stack([(c + 1) % num_classes, (c + 2) % num_classes], dim=1)
    if not isinstance(similar, Mapping):
        raise TypeError(f"similar must be a Mapping of class -> two classes, got {type(similar).__name__}")
    missing = [c for c in range(num_classes) if c not in similar]
    if missing:
        raise ValueError(f"similar must name two similar classes for every class in [0, {num_classes - 1}], "
                         f"missing {missing}")
    rows = []
    for c in range(num_classes):
        entry = similar[c]
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 2:
            raise ValueError(f"similar[{c}] must be a pair of two classes, got {entry!r}")
        a, b = (_class_index(v, num_classes, f"similar[{c}] entries") for v in entry)
        if len({c, a, b}) != 3:
            raise ValueError(f"similar[{c}] must be two distinct classes other than {c}, got {entry!r}")
        rows.append((a, b))
    return torch.tensor(rows)


def two_similar_classes_noise(
    labels: torch.Tensor,
    rate: float,
    num_classes: int,
    *,
    seed: int,
    similar: Mapping[int, Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """"Flip" noise of Meta-Weight-Net (Shu et al. 2019): ``rate / 2`` to each of two similar classes.

    ``similar[c] = (a, b)`` names the two classes similar to ``c`` (distinct, and other than ``c``);
    every class in ``[0, num_classes)`` needs an entry. A label of class ``c`` stays with probability
    ``1 - rate`` and becomes ``a`` or ``b`` with probability ``rate / 2`` each.

    Default convention: ``similar[c] = ((c + 1) mod C, (c + 2) mod C)``. The paper does not say how
    the similar classes are chosen, and its released code draws two random other classes per class
    from a fixed NumPy seed. The default here is instead a fixed band next to the diagonal: the
    transition matrix is known without reproducing anyone's RNG stream, does not change with
    ``seed`` (which only decides which examples flip), and is the two-class extension of the pair
    flip ``c -> c + 1`` of ``pair_noise``. Pass ``similar`` for semantically similar classes (for
    example from CIFAR-100 super-classes) or for a random choice.
    """
    g = _validate(labels, rate, num_classes, seed)
    table = _similar_table(similar, num_classes)
    # One uniform per example: [0, rate/2) -> first similar class, [rate/2, rate) -> second, else clean.
    u = torch.rand(labels.shape, generator=g)
    corrupted = u < rate
    target = table[labels.long(), (u >= rate / 2).long()].to(labels.dtype)
    noisy = torch.where(corrupted, target, labels)
    return noisy, corrupted


def _truncated_normal(n: int, mean: float, std: float, g: torch.Generator) -> torch.Tensor:
    """``n`` draws from N(mean, std^2) truncated to [0, 1], by inverting the normal CDF (exact, seeded)."""
    lo, hi = (torch.tensor((bound - mean) / std, dtype=torch.float64) for bound in (0.0, 1.0))
    cdf_lo, cdf_hi = torch.special.ndtr(lo), torch.special.ndtr(hi)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    draws = mean + std * torch.special.ndtri(cdf_lo + (cdf_hi - cdf_lo) * u)
    return draws.clamp(0.0, 1.0)  # ndtri's rounding can step a hair outside the bounds


def instance_dependent_noise(
    labels: torch.Tensor, features: torch.Tensor, rate: float, num_classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Instance-dependent noise as generated by Xia et al. 2020 (Part-dependent label noise, NeurIPS).

    What is implemented, with ``n`` examples, ``C`` classes and ``x_i`` the flattened ``features[i]``
    (``d`` values):

    1. Flip rates ``q_1..q_n`` are drawn independently from N(rate, 0.1^2) truncated to [0, 1].
    2. ``C`` projections ``W_0..W_{C-1}``, each ``d x C`` with standard-normal entries, are drawn in
       class order (``W_c`` is used for the examples whose clean label is ``c``).
    3. For example ``i`` with clean label ``y``: scores ``s = x_i W_y`` (length ``C``), ``s_y = -inf``
       so the true class gets no flip mass, ``p = q_i * softmax(s)``, then ``p_y = 1 - q_i``.
    4. The noisy label is drawn from ``p`` (one uniform per example, inverted through the cumulative
       sum of ``p`` in class order, as ``numpy.random.choice`` does in the reference generation).

    So example ``i`` flips with probability exactly ``q_i``, and the class it flips to is decided
    by its features. Because the draw in step 4 goes through the cumulative sum of ``p``, which
    examples flip for a given seed also changes with the features (the flip probability does not).
    The realised rate is the mean of the truncated normal: ``rate`` to within 1e-3 for
    ``0.3 <= rate <= 0.7``, and pulled towards 0.5 near the bounds (about 0.129 for ``rate = 0.1``).
    One deviation: ``rate = 0`` gives ``q_i = 0`` (clean labels) rather than the ~0.08 mean of a
    half-normal, so that a zero rate means no noise here as for the other generators.

    Features are used as given (the reference generation uses the normalised image tensors); their
    scale sets how peaked the softmax, and so the choice of flip class, is.
    """
    g = _validate(labels, rate, num_classes, seed)
    if not isinstance(features, torch.Tensor) or not features.is_floating_point() or features.ndim < 2:
        raise TypeError("features must be a floating tensor of shape (n, ...) with n = len(labels), "
                        f"got {_describe(features)}")
    if features.shape[0] != labels.shape[0]:
        raise ValueError(f"features must have one row per label: expected {labels.shape[0]} rows, "
                         f"got shape {tuple(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite (found NaN or inf)")
    n = labels.shape[0]
    x = features.reshape(n, -1)
    q = _truncated_normal(n, rate, _FLIP_RATE_STD, g) if rate > 0 else torch.zeros(n, dtype=torch.float64)
    probs = torch.empty(n, num_classes, dtype=torch.float64)
    for c in range(num_classes):
        # Drawn for every class, present or not, so W_c does not depend on which classes appear.
        w = torch.randn(x.shape[1], num_classes, generator=g, dtype=x.dtype)
        rows = labels == c
        scores = (x[rows] @ w).double()
        scores[:, c] = -math.inf
        probs[rows] = q[rows, None] * torch.softmax(scores, dim=1)
        probs[rows, c] = 1.0 - q[rows]
    u = torch.rand(n, 1, generator=g, dtype=torch.float64)
    # First class whose cumulative mass exceeds u; zero-mass classes can never be chosen. The clamp
    # covers u beyond a cumulative sum that rounding left a hair below 1.
    noisy = (probs.cumsum(dim=1) <= u).sum(dim=1).clamp_max(num_classes - 1).to(labels.dtype)
    return noisy, noisy != labels


def transition_matrix(clean: torch.Tensor, noisy: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Empirical ``T[i, j]`` = fraction of clean-class-``i`` labels that are ``j`` in ``noisy`` (float64).

    Rows of classes present in ``clean`` sum to 1; a class absent from ``clean`` has no evidence
    and its row is all zeros.
    """
    check_int("num_classes", num_classes, minimum=2)
    check_class_labels(clean, num_classes, "clean")
    check_class_labels(noisy, num_classes, "noisy")
    if clean.shape != noisy.shape:
        raise ValueError(f"clean and noisy must have the same shape, got {tuple(clean.shape)} "
                         f"and {tuple(noisy.shape)}")
    pairs = clean.long() * num_classes + noisy.long()
    counts = torch.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes).double()
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)


NOISE_KINDS = ("symmetric", "pair", "asymmetric", "two_similar", "instance")


def corrupt_labels(kind: str, labels: torch.Tensor, rate: float, num_classes: int, *, seed: int,
                   features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noisy_labels, corrupted_mask)`` from the generator a config names (one of ``NOISE_KINDS``).

    ``"asymmetric"`` is Patrini et al.'s CIFAR-10 map (``CIFAR10_ASYMMETRIC``), so it needs 10
    classes in CIFAR-10's order; ``"instance"`` needs ``features`` (one row per label: Xia et al.
    use the normalised images). ``rate = 0`` returns the labels unchanged.
    """
    check_choice("noise kind", kind, NOISE_KINDS)
    if kind == "instance" and features is None:
        raise ValueError("instance-dependent noise needs the examples' features (features=...)")
    if kind == "asymmetric" and num_classes != 10:
        raise ValueError(f"asymmetric noise is CIFAR-10's class map and needs 10 classes, got {num_classes}; "
                         "use 'pair' for other datasets")
    if kind == "asymmetric":
        check_int("num_classes", num_classes, minimum=2)
        check_class_labels(labels, num_classes)
        return asymmetric_noise(labels, rate, mapping=CIFAR10_ASYMMETRIC, seed=seed)
    if kind == "instance":
        return instance_dependent_noise(labels, features, rate, num_classes, seed=seed)
    return NOISE_GENERATORS[kind](labels, rate, num_classes, seed=seed)


# Config name -> generator, for recipes that pick the noise by name. Only the generators called as
# ``(labels, rate, num_classes, *, seed)``; the asymmetric and instance-dependent ones need more inputs.
NOISE_GENERATORS: Mapping[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = MappingProxyType({
    "symmetric": symmetric_noise,
    "pair": pair_noise,
    "two_similar": two_similar_classes_noise,
})
