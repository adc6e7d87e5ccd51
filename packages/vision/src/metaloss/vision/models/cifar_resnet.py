"""CIFAR-style ResNets (ResNet-8 ... ResNet-110), registered in timm's model registry.

This is the small-image ResNet family of He et al., "Deep Residual Learning
for Image Recognition", CVPR 2016, Section 4.2 (CIFAR-10 and analysis): depth
6n + 2, a 3x3 stem convolution with 16 filters, three stages of n basic blocks
with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 maps (the first block of
stages 2 and 3 has stride 2), global average pooling and a linear classifier.
The shortcuts are identities throughout; where a block changes shape the
shortcut subsamples spatially and zero-pads the new channels ("option A" of
§3.3, the design used in §4.2), so the shortcuts add no parameters and the
counts match the paper: ResNet-20 0.27M, ResNet-56 0.85M, ResNet-110 1.7M
(10 classes).

The models follow timm's conventions (``forward_features`` / ``forward_head``
/ ``get_classifier`` / ``reset_classifier``, ``num_features``); the
meta-learning engine in ``metaloss.core`` uses the penultimate features and
the linear head separately. Importing this module registers ``cifar_resnet8``,
``cifar_resnet14``, ``cifar_resnet20``, ``cifar_resnet32``, ``cifar_resnet56``
and ``cifar_resnet110``, so that e.g.
``timm.create_model("cifar_resnet56", num_classes=100)`` builds one. There are
no pretrained weights; ``pretrained=True`` is an error.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from metaloss.core.checks import check_int

from ._timm import CifarClassifier, cifar_cfg, create_model

__all__ = ["CifarResNet", "BasicBlock"]

_DEPTHS = (8, 14, 20, 32, 56, 110)
# Read by timm.register_model: gives each registered name a pretrained_cfg without weights.
default_cfgs = {
    f"cifar_resnet{d}": cifar_cfg(
        paper_name="Deep Residual Learning for Image Recognition", paper_ids="arXiv:1512.03385"
    )
    for d in _DEPTHS
}


class _PadShortcut(nn.Module):
    """Parameter-free shortcut (option A): subsample by ``stride``, zero-pad the new channels."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        if out_chs < in_chs:
            raise ValueError(
                f"zero-padding shortcut cannot reduce channels ({in_chs} -> {out_chs})"
            )
        self.stride = stride
        self.pad_before = (out_chs - in_chs) // 2
        self.pad_after = out_chs - in_chs - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads from the last dimension backwards: (W, W, H, H, C, C).
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_before}, {self.pad_after})"


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection; ReLU after the addition."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        if stride != 1 or in_chs != out_chs:
            self.shortcut: nn.Module = _PadShortcut(in_chs, out_chs, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(CifarClassifier):
    """ResNet-(6n+2) for 32x32 images (He et al. 2016, §4.2).

    Args:
        depth: total number of weighted layers, 6n + 2 with n >= 1
            (8, 14, 20, 32, 44, 56, 110, ...).
        num_classes: outputs of the linear classifier (>= 1).
        in_chans: input channels.
        width: filters of the stem and of the first stage; stages 2 and 3
            have ``2 * width`` and ``4 * width`` (16 in the paper).

    ``forward_features`` returns the last stage's map (B, 4 * width, H/4, W/4);
    ``forward_head`` average-pools it and applies the classifier ``fc``
    (or stops before it with ``pre_logits=True``).
    """

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3, width: int = 16):
        super().__init__()
        valid = isinstance(depth, int) and not isinstance(depth, bool)
        if not valid or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(
                "CIFAR ResNet depth must be 6n + 2 with n >= 1, i.e. one of 8, 14, 20, 26, 32, "
                f"44, 56, 110, ... (registered: {', '.join(map(str, _DEPTHS))}); got {depth!r}"
            )
        check_int("num_classes", num_classes, minimum=1)
        check_int("in_chans", in_chans, minimum=1)
        check_int("width", width, minimum=1)
        self.depth = depth
        self.blocks_per_stage = (depth - 2) // 6
        self.in_chans = in_chans
        self.width = width

        self.conv1 = nn.Conv2d(in_chans, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        chs = width
        stages = []
        for i, stage_width in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(self.blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(chs, stage_width, stride))
                chs = stage_width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self._init_classifier(chs, num_classes)
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        return self.layer3(x)


def _create(name: str, depth: int, pretrained: bool, kwargs: dict[str, Any]) -> CifarResNet:
    return create_model(CifarResNet, name, default_cfgs[name], pretrained, kwargs, depth=depth)


@register_model
def cifar_resnet8(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-8 (n = 1) for CIFAR, He et al. 2016 §4.2."""
    return _create("cifar_resnet8", 8, pretrained, kwargs)


@register_model
def cifar_resnet14(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-14 (n = 2) for CIFAR, He et al. 2016 §4.2."""
    return _create("cifar_resnet14", 14, pretrained, kwargs)


@register_model
def cifar_resnet20(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-20 (n = 3, 0.27M parameters) for CIFAR, He et al. 2016 §4.2."""
    return _create("cifar_resnet20", 20, pretrained, kwargs)


@register_model
def cifar_resnet32(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-32 (n = 5, 0.46M parameters) for CIFAR, He et al. 2016 §4.2."""
    return _create("cifar_resnet32", 32, pretrained, kwargs)


@register_model
def cifar_resnet56(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-56 (n = 9, 0.85M parameters) for CIFAR, He et al. 2016 §4.2."""
    return _create("cifar_resnet56", 56, pretrained, kwargs)


@register_model
def cifar_resnet110(pretrained: bool = False, **kwargs: Any) -> CifarResNet:
    """ResNet-110 (n = 18, 1.7M parameters) for CIFAR, He et al. 2016 §4.2."""
    return _create("cifar_resnet110", 110, pretrained, kwargs)
