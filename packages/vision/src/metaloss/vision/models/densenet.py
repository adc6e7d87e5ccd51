"""CIFAR DenseNet (the original, without bottleneck or compression), registered in timm.

This is the CIFAR network of Huang et al., "Densely Connected Convolutional
Networks", CVPR 2017, Section 3 ("Implementation Details") and Table 2: a
3x3 stem convolution with 16 filters, three dense blocks of L = (depth - 4) / 3
layers on 32x32, 16x16 and 8x8 maps, and between them transition layers
BN-ReLU-conv1x1-avgpool2 that keep the channel count (no compression). Each
layer of a dense block is BN-ReLU-conv3x3 producing ``growth_rate`` (k) new
maps, concatenated to its input, so a block adds L * k channels. After the
last block: BN-ReLU, global average pooling and a linear classifier. The
optional dropout follows every convolution but the stem, as the paper does
when training without data augmentation (§4.2, rate 0.2).

DenseNet-40-12 (L = 12, k = 12, 16 + 36 * 12 = 448 features) has 1.02M
parameters at 10 classes (paper: 1.0M). Importing this module registers
``cifar_densenet40_12``, so ``timm.create_model("cifar_densenet40_12",
num_classes=100)`` builds one. There are no pretrained weights;
``pretrained=True`` is an error.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from metaloss.core.checks import check_int, check_probability

from ._timm import CifarClassifier, cifar_cfg, create_model

__all__ = ["CifarDenseNet", "DenseLayer", "Transition"]

# Read by timm.register_model: gives each registered name a pretrained_cfg without weights.
default_cfgs = {
    "cifar_densenet40_12": cifar_cfg(
        paper_name="Densely Connected Convolutional Networks", paper_ids="arXiv:1608.06993"
    )
}

# Filters of the stem convolution for the non-bottleneck DenseNet (Huang et al. §3).
_STEM_CHS = 16


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3-[dropout] producing ``growth_rate`` maps, concatenated to the input."""

    def __init__(self, in_chs: int, growth_rate: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_chs)
        self.conv = nn.Conv2d(in_chs, growth_rate, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.dropout(self.conv(F.relu(self.bn(x))))
        return torch.cat([x, new], dim=1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1-[dropout]-avgpool2 between dense blocks; keeps the channel count."""

    def __init__(self, chs: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn = nn.BatchNorm2d(chs)
        self.conv = nn.Conv2d(chs, chs, 1, bias=False)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.dropout(self.conv(F.relu(self.bn(x)))), 2)


class CifarDenseNet(CifarClassifier):
    """DenseNet-``depth`` with growth rate ``growth_rate`` for 32x32 images (Huang et al. 2017, §3).

    Args:
        depth: total number of weighted layers, 3L + 4 with L >= 1 layers per
            dense block (40 and 100 in the paper).
        growth_rate: k, the maps each layer adds (12 or 24 in the paper).
        num_classes: outputs of the linear classifier (>= 1).
        in_chans: input channels.
        drop_rate: dropout probability after every convolution but the stem,
            in [0, 1) (the paper uses 0.2 without data augmentation, 0 with).

    ``forward_features`` returns the final BN-ReLU map
    (B, 16 + 3L * k, H/4, W/4); ``forward_head`` average-pools it and applies
    the classifier ``fc`` (or stops before it with ``pre_logits=True``).
    """

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int = 12,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        valid = isinstance(depth, int) and not isinstance(depth, bool)
        if not valid or depth < 7 or (depth - 4) % 3 != 0:
            raise ValueError(
                "DenseNet depth must be 3L + 4 with L >= 1 layers per dense block, e.g. 40 or 100; "
                f"got {depth!r}"
            )
        check_int("growth_rate", growth_rate, minimum=1)
        check_int("num_classes", num_classes, minimum=1)
        check_int("in_chans", in_chans, minimum=1)
        check_probability("drop_rate", drop_rate, high_open=True)
        self.depth = depth
        self.growth_rate = growth_rate
        self.layers_per_block = (depth - 4) // 3
        self.in_chans = in_chans
        self.drop_rate = drop_rate

        self.conv1 = nn.Conv2d(in_chans, _STEM_CHS, 3, stride=1, padding=1, bias=False)
        chs = _STEM_CHS
        stages = []
        for i in range(3):
            layers: list[nn.Module] = []
            for _ in range(self.layers_per_block):
                layers.append(DenseLayer(chs, growth_rate, drop_rate))
                chs += growth_rate
            if i < 2:
                layers.append(Transition(chs, drop_rate))
            stages.append(nn.Sequential(*layers))
        # Stages 1 and 2 are a dense block followed by its transition layer; stage 3 is a dense block.
        self.stage1, self.stage2, self.stage3 = stages
        self.bn = nn.BatchNorm2d(chs)
        self._init_classifier(chs, num_classes)
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        return F.relu(self.bn(x))


@register_model
def cifar_densenet40_12(pretrained: bool = False, **kwargs: Any) -> CifarDenseNet:
    """DenseNet-40 (L = 12) with growth rate 12, 1.0M parameters, for CIFAR; Huang et al. 2017."""
    name = "cifar_densenet40_12"
    return create_model(
        CifarDenseNet, name, default_cfgs[name], pretrained, kwargs, depth=40, growth_rate=12
    )
