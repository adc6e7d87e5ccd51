"""An in-memory image classification dataset: uint8 pixels, int64 labels, a per-item transform.

Keeping pixels as uint8 (a quarter of float32's memory: 150 MB for CIFAR-10's 50,000 images) and
converting one item at a time is what lets the whole set sit in RAM, shared by forked loader workers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset


class ImageDataset(Dataset):
    """Item ``i`` is ``(transform(images[i] / 255), int(labels[i]))``: a float (C, H, W) image in [0, 1]
    before the transform, and the label.

    ``images`` is a uint8 tensor (N, C, H, W); ``labels`` an int64 tensor (N,); ``transform`` (optional)
    maps a float (C, H, W) tensor to a tensor, e.g. ``train_transform(...)`` from this package.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {_describe(images)}")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
            raise ValueError(f"labels must be an int64 tensor (N,), got {_describe(labels)}")
        if len(images) != len(labels):
            raise ValueError(
                f"images and labels must have the same length, got {len(images)} and {len(labels)}"
            )
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def with_transform(self, transform: Callable | None) -> ImageDataset:
        """The same images and labels (shared, not copied) under another transform."""
        return ImageDataset(self.images, self.labels, transform)

    def subset(self, rows: torch.Tensor) -> ImageDataset:
        """The examples at ``rows`` (an index tensor), same transform."""
        return ImageDataset(self.images[rows], self.labels[rows], self.transform)

    def features(self, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
        """Float (N, C, H, W) images normalised by per-channel ``mean`` and ``std`` (on the [0, 1] scale),
        unaugmented: the inputs a model sees, e.g. for instance-dependent label noise."""
        channels = self.images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need one value per channel ({channels}), "
                             f"got {len(mean)} and {len(std)}")
        shape = (1, channels, 1, 1)
        return (self.images.float() / 255 - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return f"ImageDataset(n={n}, channels={c}, size={h}x{w}, transform={self.transform!r})"


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
