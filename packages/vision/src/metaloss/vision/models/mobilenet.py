"""MobileNet (v1) adapted to 32x32 CIFAR images, registered in timm's model registry.

This is the network of Howard et al., "MobileNets: Efficient Convolutional
Neural Networks for Mobile Vision Applications", 2017: a full 3x3 stem
convolution with 32 filters, then the 13 depthwise-separable blocks of
Table 1 (§3.1-3.2: depthwise conv3x3-BN-ReLU, then pointwise conv1x1-BN-ReLU)
with 64, 128, 128, 256, 256, 512 (x6), 1024 and 1024 filters, global average
pooling and a linear classifier. The width multiplier alpha of §3.3 scales
every layer's filters (``round(alpha * filters)``); the parameter count grows
roughly as alpha^2.

CIFAR adaptation: on ImageNet the network downsamples 224 -> 7 (stride 2 in
the stem and in blocks 2, 4, 6 and 12). A 32x32 image would shrink to 1x1,
so here the stem and block 2 have stride 1 and only blocks 4, 6 and 12
downsample: the maps are 32x32 up to block 3, then 16x16, 8x8 and 4x4 for
the last two blocks. Strides do not change the parameter count. The
architecture is otherwise unchanged (no dropout, as the paper trains
MobileNets with little regularisation).

Parameter counts at 10 classes: ``cifar_mobilenet_x1`` (alpha = 1) 3.22M,
``cifar_mobilenet_x2`` (alpha = 2) 12.71M. Importing this module registers
both, so ``timm.create_model("cifar_mobilenet_x1", num_classes=100)`` builds
one. There are no pretrained weights; ``pretrained=True`` is an error.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from metaloss.core.checks import check_int

from ._timm import CifarClassifier, cifar_cfg, create_model

__all__ = ["CifarMobileNet", "DepthwiseSeparable"]

# Read by timm.register_model: gives each registered name a pretrained_cfg without weights.
default_cfgs = {
    f"cifar_mobilenet_x{m}": cifar_cfg(
        pool_size=(4, 4),
        paper_name="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
        paper_ids="arXiv:1704.04861",
    )
    for m in (1, 2)
}

_STEM_CHS = 32
# (filters, stride) of the 13 depthwise-separable blocks of Table 1, with block 2's stride
# set to 1 for 32x32 inputs (see the module docstring).
_BLOCKS = (
    (64, 1), (128, 1), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


class DepthwiseSeparable(nn.Module):
    """Depthwise conv3x3-BN-ReLU then pointwise conv1x1-BN-ReLU (MobileNet §3.1, Figure 3)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        self.conv_dw = nn.Conv2d(in_chs, in_chs, 3, stride=stride, padding=1, groups=in_chs, bias=False)
        self.bn_dw = nn.BatchNorm2d(in_chs)
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_dw(self.conv_dw(x)))
        return F.relu(self.bn_pw(self.conv_pw(x)))


class CifarMobileNet(CifarClassifier):
    """MobileNet v1 with width multiplier ``width_multiplier`` for 32x32 images (Howard et al. 2017).

    Args:
        width_multiplier: alpha of §3.3, a positive number; every layer has
            ``max(1, round(alpha * filters))`` filters (1 is the baseline MobileNet).
        num_classes: outputs of the linear classifier (>= 1).
        in_chans: input channels.

    ``forward_features`` returns the last block's map (B, round(1024 alpha), H/8, W/8);
    ``forward_head`` average-pools it and applies the classifier ``fc``
    (or stops before it with ``pre_logits=True``).
    """

    def __init__(self, width_multiplier: float = 1.0, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        valid = isinstance(width_multiplier, Real) and not isinstance(width_multiplier, bool)
        if not valid or not math.isfinite(width_multiplier) or width_multiplier <= 0:
            raise ValueError(
                f"width_multiplier must be a positive finite number (1 = baseline MobileNet), "
                f"got {width_multiplier!r}"
            )
        check_int("num_classes", num_classes, minimum=1)
        check_int("in_chans", in_chans, minimum=1)
        self.width_multiplier = width_multiplier
        self.in_chans = in_chans

        def width(filters: int) -> int:
            return max(1, round(width_multiplier * filters))

        chs = width(_STEM_CHS)
        self.conv1 = nn.Conv2d(in_chans, chs, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(chs)
        blocks = []
        for filters, stride in _BLOCKS:
            blocks.append(DepthwiseSeparable(chs, width(filters), stride))
            chs = width(filters)
        self.blocks = nn.Sequential(*blocks)
        self._init_classifier(chs, num_classes)
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.blocks(x)


def _create(name: str, width_multiplier: float, pretrained: bool, kwargs: dict[str, Any]) -> CifarMobileNet:
    return create_model(
        CifarMobileNet, name, default_cfgs[name], pretrained, kwargs, width_multiplier=width_multiplier
    )


@register_model
def cifar_mobilenet_x1(pretrained: bool = False, **kwargs: Any) -> CifarMobileNet:
    """MobileNet v1, width multiplier 1 (3.2M parameters), for 32x32 inputs; Howard et al. 2017."""
    return _create("cifar_mobilenet_x1", 1.0, pretrained, kwargs)


@register_model
def cifar_mobilenet_x2(pretrained: bool = False, **kwargs: Any) -> CifarMobileNet:
    """MobileNet v1, width multiplier 2 (12.7M parameters), for 32x32 inputs; Howard et al. 2017."""
    return _create("cifar_mobilenet_x2", 2.0, pretrained, kwargs)
