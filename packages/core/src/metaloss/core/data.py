"""A dataset wrapper that yields each example's index.

Per-example meta-parameters (``InstanceWeights``) are addressed by dataset
index, so the training loop must know which rows of the table a batch touches.
"""

from __future__ import annotations

from torch.utils.data import Dataset


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
