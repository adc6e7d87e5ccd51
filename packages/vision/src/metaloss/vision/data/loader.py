"""``make_loader``: a DataLoader whose order and augmentation are a pure function of (seed, epoch).

A resumed run must see exactly the batches, and the same augmented pixels, that an uninterrupted
run would. So nothing here carries state from one epoch to the next:

- Order: the epoch's permutation is ``metaloss.core.epoch_batches``'s (the project's one definition
  of an epoch's order, seeded from (seed, epoch)); on one process the batches are exactly its batches.
- Augmentation: before each item is transformed, torch's global CPU generator (which the torchvision
  transforms draw from) is seeded from (seed, epoch, dataset index), and its state restored after,
  so the caller's generator is untouched. Example i's crop and flip in a given epoch therefore do not
  depend on the number of workers, the batch size, the rank, or what ran before.
- Workers: the DataLoader's ``generator`` is seeded from (seed, epoch, rank), so each worker's own
  seeds (``random``, numpy, torch), which a user's transform might use, are reproducible too.

Distributed sharding is by ``rank`` / ``world_size`` arguments (pass ``accelerator.process_index`` and
``accelerator.num_processes``; do not ``accelerator.prepare`` the loader, which would replace the
sampler). Training: rank r takes positions r, r + W, r + 2W, ... of the epoch's permutation, cut to
``len // W`` each, so every rank runs the same number of steps (DDP needs that) and the ranks' parts
are disjoint; up to W - 1 examples sit out each epoch (different ones each epoch). Evaluation: no
shuffle, rank r takes dataset positions r, r + W, ..., so every example is seen exactly once overall
(the ranks' counts may differ by one; gather with ``accelerator.gather_for_metrics`` or pad).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from metaloss.core import IndexedDataset, epoch_batches
from metaloss.core.checks import check_int

_MASK = (1 << 63) - 1


class _SeededItems(Dataset):
    """Item i of ``dataset``, transformed under torch's global generator seeded from (seed, epoch, i)."""

    def __init__(self, dataset, seed: int, epoch: int):
        self.dataset = dataset
        self.base = (seed * 1_000_003 + epoch) * 2_654_435_761

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        # The CPU generator alone (CPU transforms draw from it): torch.manual_seed would also seed every
        # accelerator backend, 60x slower per item.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed((self.base + index) & _MASK)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(state)


def make_loader(
    dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int,
    epoch: int,
    workers: int = 2,
    indices: Sequence[int] | torch.Tensor | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    return_index: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset`` (or over its positions ``indices``) for one epoch.

    train: shuffle (by (seed, epoch)) and shard for training; False keeps the dataset order.
    workers: worker processes (0 loads in the calling process; same batches, same pixels).
    indices: iterate only these dataset positions (e.g. a subset for a meta phase).
    drop_last: drop this rank's last batch if it is smaller than ``batch_size``.
    return_index: batches are ``(index, *item)`` with each example's dataset index, through
        ``metaloss.core.IndexedDataset``, e.g. ``(index, image, label)`` for ``ImageDataset``.
    Build a new loader every epoch: it is what makes the epoch's randomness explicit.
    """
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"dataset must be a map-style dataset (__getitem__ and __len__), got {type(dataset).__name__}"
        )
    for name, value, low in (("batch_size", batch_size, 1), ("workers", workers, 0), ("epoch", epoch, 0),
                             ("world_size", world_size, 1), ("rank", rank, 0), ("seed", seed, None)):
        check_int(name, value, minimum=low)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size={world_size}, got {rank}")
    for name, value in (("train", train), ("drop_last", drop_last), ("return_index", return_index)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")

    positions = _positions(indices, len(dataset))
    if train:
        if len(positions) < world_size:
            raise ValueError(f"{len(positions)} examples cannot be shared by world_size={world_size} ranks")
        order = epoch_batches(len(positions), len(positions), seed=seed, epoch=epoch)[0]
        mine = positions[order][rank::world_size][: len(positions) // world_size]
    else:
        mine = positions[rank::world_size]

    items = _SeededItems(dataset, seed, epoch)
    generator = torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_033 + rank) & _MASK)
    return DataLoader(
        IndexedDataset(items) if return_index else items,
        batch_size=batch_size,
        sampler=mine.tolist(),
        num_workers=workers,
        drop_last=drop_last,
        generator=generator,
    )


def _positions(indices, size: int) -> torch.Tensor:
    if size < 1:
        raise ValueError("dataset is empty")
    if indices is None:
        return torch.arange(size)
    positions = torch.as_tensor(indices)
    if positions.dim() != 1 or positions.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(
            f"indices must be a 1-D sequence of ints, got {positions.dtype} of shape {tuple(positions.shape)}"
        )
    if len(positions) == 0:
        raise ValueError("indices is empty")
    if positions.min() < 0 or positions.max() >= size:
        raise ValueError(
            f"indices must lie in [0, {size - 1}] (the dataset's positions), "
            f"got [{int(positions.min())}, {int(positions.max())}]"
        )
    return positions.long()
