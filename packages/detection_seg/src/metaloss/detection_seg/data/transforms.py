"""Joint image + target transforms for detection and segmentation (torchvision.transforms.v2).

v2 moves every tv_tensor of an item together: ``BoundingBoxes`` follow a flip or a resize, a
``Mask`` is resized with nearest neighbour (class indices must not blend), and the colour and dtype
steps touch the image only.

- training: random horizontal flip, letterbox (longer side resized to ``size``, then padded to
  ``size`` x ``size`` at a random offset: a random translation for free), small colour jitter;
- evaluation: the same letterbox without randomness (longer side resized to ``size``, padded at
  the bottom and right), so objects keep the aspect ratio they were trained at;
- both end with float32 in [0, 1] and per-channel normalisation; detection then drops the boxes a
  resize shrank below a pixel, with their labels.

Random draws use torch's global generator, so seeding it per item makes augmentation reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from metaloss.core.checks import check_int

from .coco128 import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    for name, value in (("mean", mean), ("std", std)):
        if not isinstance(value, Sequence) or len(value) != 3:
            raise ValueError(f"{name} must be 3 numbers (one per RGB channel), got {value!r}")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if not numbers or not all(math.isfinite(v) for v in value):
            raise ValueError(f"{name} must hold finite numbers, got {value!r}")
    if not all(s > 0 for s in std):
        raise ValueError(f"std must be > 0, got {std!r}")
    return [float(m) for m in mean], [float(s) for s in std]


class PadBottomRight(v2.Transform):
    """Pad an item's image, boxes and mask at the bottom and right to ``size`` x ``size``; boxes keep
    their coordinates. ``fill``: per tv_tensor type, as v2's own transforms take it."""

    def __init__(self, size: int, fill: dict):
        super().__init__()
        self.size, self.fill = check_int("size", size, minimum=1), fill

    def make_params(self, flat_inputs: list) -> dict:
        image = next(x for x in flat_inputs if isinstance(x, tv_tensors.Image))
        height, width = v2.functional.get_size(image)
        if height > self.size or width > self.size:
            raise ValueError(f"an item of {height}x{width} cannot be padded to {self.size}x{self.size}")
        return {"padding": [0, 0, self.size - width, self.size - height]}

    def transform(self, inpt, params: dict):
        fill = next((f for kind, f in self.fill.items() if isinstance(inpt, kind)), 0)
        return self._call_kernel(v2.functional.pad, inpt, padding=params["padding"], fill=fill)


def _steps(size: int, train: bool, mean, std, mask_fill: int) -> list:
    check_int("size", size, minimum=1)
    if not isinstance(train, bool):
        raise TypeError(f"train must be a bool, got {type(train).__name__}")
    mean, std = _check_stats(mean, std)
    # Pad with the mean colour, which normalisation turns into zeros; masks pad with "ignore".
    fill = {tv_tensors.Image: [round(255 * m) for m in mean], tv_tensors.Mask: mask_fill}
    if train:
        steps = [
            v2.RandomHorizontalFlip(),
            v2.Resize(size=None, max_size=size),
            v2.RandomCrop(size, pad_if_needed=True, fill=fill),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
        ]
    else:
        steps = [v2.Resize(size=None, max_size=size), PadBottomRight(size, fill)]
    return [*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def detection_transforms(size: int, train: bool, mean: Sequence[float] = IMAGENET_MEAN,
                         std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """``transform(image, target) -> (image, target)`` for ``DetectionImages``: a float32 (3, size, size)
    normalised image; boxes moved with it, and those left under a pixel wide or high dropped together
    with their labels."""
    return v2.Compose([*_steps(size, train, mean, std, IGNORE_INDEX), v2.SanitizeBoundingBoxes()])


def segmentation_transforms(size: int, train: bool, mean: Sequence[float] = IMAGENET_MEAN,
                            std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """``transform(image, mask) -> (image, mask)`` for ``SegmentationImages``: a float32 (3, size, size)
    normalised image and its int64 (size, size) mask, resized with nearest neighbour; letterbox padding
    is the ignore index 255."""
    return v2.Compose(_steps(size, train, mean, std, IGNORE_INDEX))


def denormalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Undo the normalisation: uint8 images (..., 3, H, W) for plotting, from the transformed floats."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.dim() not in (3, 4):
        raise ValueError(f"images must be a float tensor (3, H, W) or (B, 3, H, W), got {images!r:.80}")
    if images.shape[-3] != 3:
        raise ValueError(f"images must have 3 channels, got shape {tuple(images.shape)}")
    mean, std = _check_stats(mean, std)
    shape = (3, 1, 1)
    pixels = images * torch.tensor(std, device=images.device).view(shape) + torch.tensor(
        mean, device=images.device).view(shape)
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
