"""The data of the noisy-label / long-tail stage: one seed's noisy training pool, clean meta set,
noisy validation split and clean test set (DML paper §5.1; L2T-DLN supplement §5.1).

How one setting is built (``make_noisy_data``):

1. ``load_image_splits``: the first ``train_limit`` training images, split (stratified, seeded by
   ``split_seed``) into the training pool and a validation split; the test split as it is.
2. The clean meta set: ``meta_size / C`` examples of every class drawn (seeded) from the pool and
   removed from it, so every method trains on the same pool whether it reads the meta set or not.
3. Long tail (``imbalance_ratio > 1``): the pool keeps ``floor(n_0 * mu^i)`` examples of class ``i``
   (Cui et al. 2019, ``imbalance.long_tailed_indices``); the validation split gets the same profile
   (at least one example per class), because selection must see the training distribution.
4. Label noise (``noise.corrupt_labels``): one draw corrupts the pool's and the validation split's
   labels alike; the meta set and the test set stay clean.

``NoisyData`` is what a method may read: training and validation images with their *noisy* labels,
the test set, and the meta set only for methods that need one (``without_meta``). The clean training
labels live apart, in ``LabelTruth``, which only the diagnostics (weight histograms, precision of a
selection) read: no method can learn from them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from metaloss.core.checks import check_int

from .data import ImageDataset, load_image_splits
from .imbalance import long_tailed_indices
from .noise import corrupt_labels, seeded_generator


@dataclass(frozen=True)
class NoisyData:
    """What a noisy-label method may read (labels of ``train`` and ``val`` are the corrupted ones)."""

    train: ImageDataset  # augmented
    val: ImageDataset
    test: ImageDataset
    meta: ImageDataset | None  # clean labels; None for methods that do not use a meta set
    num_classes: int
    noise_rate: float  # the configured rate: co-teaching's forget rate by default

    @property
    def meta_size(self) -> int:
        return 0 if self.meta is None else len(self.meta)

    def without_meta(self) -> NoisyData:
        return replace(self, meta=None)


@dataclass(frozen=True)
class LabelTruth:
    """The clean labels of the training pool and which ones were corrupted: diagnostics only."""

    labels: torch.Tensor
    corrupted: torch.Tensor  # bool, labels != the training labels


def balanced_subset(labels: torch.Tensor, per_class: int, num_classes: int, *, seed: int) -> torch.Tensor:
    """Sorted indices of ``per_class`` examples of every class, drawn with a generator seeded by ``seed``."""
    check_int("per_class", per_class, minimum=0)
    g = seeded_generator(seed)
    chosen = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        if len(members) < per_class:
            raise ValueError(f"the meta set needs {per_class} examples of class {c}, "
                             f"but the training pool has {len(members)}; lower meta.size")
        chosen.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.sort(torch.cat(chosen)).values


def make_noisy_data(cfg: dict, seed: int) -> tuple[NoisyData, LabelTruth]:
    """One seed's setting from the ``noisy_labels`` config (sections ``data``, ``noise``, ``meta``)."""
    d, noise = cfg["data"], cfg["noise"]
    split_seed = seed if d["split_seed"] is None else d["split_seed"]
    splits = load_image_splits(d["name"], d["root"], val_size=d["val_size"],
                               train_limit=d["train_limit"] or None, test_limit=d["test_limit"] or None,
                               seed=split_seed)
    num_classes = splits.num_classes
    pool, val = splits.train, splits.val
    per_class, remainder = divmod(cfg["meta"]["size"], num_classes)
    if remainder:
        raise ValueError(f"meta.size must be a multiple of the {num_classes} classes, "
                         f"got {cfg['meta']['size']}")
    meta_rows = balanced_subset(pool.labels, per_class, num_classes, seed=seed)
    rest = torch.ones(len(pool), dtype=torch.bool)
    rest[meta_rows] = False
    train_rows = rest.nonzero().flatten()
    ratio = cfg["imbalance_ratio"]
    if ratio > 1:
        train_rows = train_rows[long_tailed_indices(pool.labels[train_rows], num_classes,
                                                    imbalance_ratio=ratio, seed=seed)]
        val = val.subset(long_tailed_indices(val.labels, num_classes, imbalance_ratio=ratio,
                                             at_least=1, seed=seed))
    clean = pool.labels[train_rows]
    both = torch.cat([clean, val.labels])
    features = None
    if noise["kind"] == "instance":
        features = torch.cat([pool.features(splits.mean, splits.std)[train_rows],
                              val.features(splits.mean, splits.std)])
    noisy, corrupted = corrupt_labels(noise["kind"], both, noise["rate"], num_classes, seed=seed,
                                      features=features)
    n = len(clean)
    eval_transform = splits.val.transform
    data = NoisyData(
        train=ImageDataset(pool.images[train_rows], noisy[:n], pool.transform),
        val=ImageDataset(val.images, noisy[n:], eval_transform),
        test=splits.test,
        meta=pool.with_transform(eval_transform).subset(meta_rows) if per_class else None,
        num_classes=num_classes,
        noise_rate=noise["rate"],
    )
    return data, LabelTruth(clean, corrupted[:n])

