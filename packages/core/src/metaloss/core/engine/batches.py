"""A dataset wrapper that yields each example's index.

Per-example meta-parameters (``InstanceWeights``) are addressed by dataset
index, so the training loop must know which rows of the table a batch touches.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..checks import check_int


class IndexedDataset(Dataset):
    """Wrap ``dataset`` so item ``i`` is ``(i, *dataset[i])`` (or ``(i, dataset[i])``)."""

    def __init__(self, dataset):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                "IndexedDataset needs a map-style dataset with __getitem__ and __len__, "
                f"got {type(dataset).__name__}"
            )
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if isinstance(item, tuple):
            return (index, *item)
        return index, item


def epoch_batches(
    num_examples: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
) -> list[torch.Tensor]:
    """This rank's batches of positions for one epoch, a pure function of (seed, epoch).

    Deriving the order from (seed, epoch) instead of a stateful sampler is what
    lets a resumed run see exactly the batches an uninterrupted run would.
    Batch b goes to rank ``b % world_size``; the last batch may be smaller.
    """
    for name, value, low in (("num_examples", num_examples, 1), ("batch_size", batch_size, 1),
                             ("world_size", world_size, 1), ("epoch", epoch, 0), ("rank", rank, 0)):
        check_int(name, value, minimum=low)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size={world_size}, got {rank}")
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    batches = torch.randperm(num_examples, generator=g).split(batch_size)
    return list(batches[rank::world_size])
