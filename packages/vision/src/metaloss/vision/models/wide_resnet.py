"""CIFAR Wide ResNets (WRN-d-k), registered in timm's model registry.

This is the network of Zagoruyko & Komodakis, "Wide Residual Networks",
BMVC 2016, Section 2 and Table 1: a 3x3 stem convolution with 16 filters,
then three groups of N = (d - 4) / 6 pre-activation basic blocks with 16k,
32k and 64k filters on 32x32, 16x16 and 8x8 maps (the first block of groups
2 and 3 has stride 2), a final BN-ReLU, global average pooling and a linear
classifier. A block is BN-ReLU-conv3x3, BN-ReLU-[dropout]-conv3x3 ("B(3,3)"
of §2, with the dropout of §2.4 between the convolutions); where a block
changes the number of channels or the resolution its shortcut is a 1x1
convolution applied, as in the authors' code, to the block's pre-activated
input. The parameter counts match the sizes the paper reports (10 classes):
WRN-16-8 10.96M (paper 11.0M), WRN-28-10 36.48M (paper 36.5M); WRN-28-2,
often used for semi-supervised CIFAR, has 1.47M.

Importing this module registers ``cifar_wrn16_1``, ``cifar_wrn16_2``,
``cifar_wrn16_3``, ``cifar_wrn16_4``, ``cifar_wrn16_6``, ``cifar_wrn16_8``,
``cifar_wrn28_2`` and ``cifar_wrn28_10``, so that e.g.
``timm.create_model("cifar_wrn28_10", num_classes=100, drop_rate=0.3)``
builds one. There are no pretrained weights; ``pretrained=True`` is an error.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from metaloss.core.checks import check_int, check_probability

from ._timm import CifarClassifier, cifar_cfg, create_model

__all__ = ["WideResNet", "WideBasicBlock"]

# (depth, widen factor) of the registered models.
_REGISTERED = ((16, 1), (16, 2), (16, 3), (16, 4), (16, 6), (16, 8), (28, 2), (28, 10))
# Read by timm.register_model: gives each registered name a pretrained_cfg without weights.
default_cfgs = {
    f"cifar_wrn{d}_{k}": cifar_cfg(paper_name="Wide Residual Networks", paper_ids="arXiv:1605.07146")
    for d, k in _REGISTERED
}


class WideBasicBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3, BN-ReLU-dropout-conv3x3 plus a shortcut (WRN §2)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.dropout = nn.Dropout(drop_rate)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_chs != out_chs:
            self.shortcut: nn.Conv2d | None = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False)
        else:
            self.shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        # The projection reads the pre-activated input (authors' code); an identity shortcut
        # carries the raw input, keeping the residual stream un-normalised.
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(CifarClassifier):
    """WRN-``depth``-``widen_factor`` for 32x32 images (Zagoruyko & Komodakis 2016, §2).

    Args:
        depth: total number of convolutional layers, 6N + 4 with N >= 1 blocks
            per group (10, 16, 22, 28, 40, ...).
        widen_factor: k; the three groups have 16k, 32k and 64k filters (k >= 1).
        num_classes: outputs of the linear classifier (>= 1).
        in_chans: input channels.
        drop_rate: dropout probability between the two convolutions of every
            block (§2.4; the paper uses 0.3 where it uses dropout), in [0, 1).

    ``forward_features`` returns the final BN-ReLU map (B, 64k, H/4, W/4);
    ``forward_head`` average-pools it and applies the classifier ``fc``
    (or stops before it with ``pre_logits=True``).
    """

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        valid = isinstance(depth, int) and not isinstance(depth, bool)
        if not valid or depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                "Wide ResNet depth must be 6n + 4 with n >= 1 blocks per group, i.e. one of 10, 16, "
                f"22, 28, 40, ...; got {depth!r}"
            )
        check_int("widen_factor", widen_factor, minimum=1)
        check_int("num_classes", num_classes, minimum=1)
        check_int("in_chans", in_chans, minimum=1)
        check_probability("drop_rate", drop_rate, high_open=True)
        self.depth = depth
        self.widen_factor = widen_factor
        self.blocks_per_stage = (depth - 4) // 6
        self.in_chans = in_chans
        self.drop_rate = drop_rate

        self.conv1 = nn.Conv2d(in_chans, 16, 3, stride=1, padding=1, bias=False)
        chs = 16
        stages = []
        for i, stage_width in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            blocks = []
            for j in range(self.blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(WideBasicBlock(chs, stage_width, stride, drop_rate))
                chs = stage_width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        # Pre-activation blocks leave their output un-normalised; this BN-ReLU closes the body.
        self.bn = nn.BatchNorm2d(chs)
        self._init_classifier(chs, num_classes)
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return F.relu(self.bn(x))


def _create(name: str, depth: int, widen_factor: int, pretrained: bool, kwargs: dict[str, Any]) -> WideResNet:
    return create_model(
        WideResNet, name, default_cfgs[name], pretrained, kwargs, depth=depth, widen_factor=widen_factor
    )


@register_model
def cifar_wrn16_1(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-16-1 (N = 2, 0.18M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn16_1", 16, 1, pretrained, kwargs)


@register_model
def cifar_wrn16_2(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-16-2 (N = 2, 0.69M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn16_2", 16, 2, pretrained, kwargs)


@register_model
def cifar_wrn16_3(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-16-3 (N = 2, 1.5M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn16_3", 16, 3, pretrained, kwargs)


@register_model
def cifar_wrn16_4(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-16-4 (N = 2, 2.7M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn16_4", 16, 4, pretrained, kwargs)


@register_model
def cifar_wrn16_6(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-16-6 (N = 2, 6.2M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn16_6", 16, 6, pretrained, kwargs)


@register_model
def cifar_wrn16_8(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-16-8 (N = 2, 11.0M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn16_8", 16, 8, pretrained, kwargs)


@register_model
def cifar_wrn28_2(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-28-2 (N = 4, 1.5M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn28_2", 28, 2, pretrained, kwargs)


@register_model
def cifar_wrn28_10(pretrained: bool = False, **kwargs: Any) -> WideResNet:
    """WRN-28-10 (N = 4, 36.5M parameters) for CIFAR, Zagoruyko & Komodakis 2016."""
    return _create("cifar_wrn28_10", 28, 10, pretrained, kwargs)
