"""Building a classifier for a dataset by its timm name (the CIFAR families are registered here too)."""

from __future__ import annotations

import timm
from torch import nn


def create_model(arch: str, splits) -> nn.Module:
    """The timm model ``arch`` for the classes and image channels of ``splits`` (an ``ImageSplits``)."""
    try:
        return timm.create_model(arch, num_classes=splits.num_classes, in_chans=splits.train.images.shape[1])
    except RuntimeError as err:  # timm's "Unknown model"
        raise ValueError(f"unknown architecture {arch!r} ({err}); try e.g. cifar_resnet8") from err
