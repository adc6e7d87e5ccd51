"""PSPNet (Zhao et al. 2017) on any timm backbone, dilated to output stride 8.

The backbone's last level feeds the pyramid pooling module: average pooling to 1x1, 2x2, 3x3 and
6x6 bins, each a 1x1 conv (BatchNorm, ReLU) to a quarter of the channels, upsampled back and
concatenated with the features; then a 3x3 conv (512), dropout 0.1 and a 1x1 conv to the classes.
The auxiliary head (3x3 conv to 256, dropout 0.1, 1x1 conv) reads the level before it, and its loss
weighs 0.4 (``AUX_WEIGHT``). This is the layout of the authors' PyTorch reference (hszhao/semseg),
learned from reading it. Logits are upsampled bilinearly to the input size.

``forward`` returns ``(main, aux)`` logits (B, C, H, W) in training mode, ``main`` alone in eval
mode. Training batches need at least two images: the 1x1 bin's BatchNorm has one value per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from metaloss.core.checks import check_int, describe

from .backbones import create_backbone, feature_strides

AUX_WEIGHT = 0.4
BINS = (1, 2, 3, 6)


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class PyramidPooling(nn.Module):
    """The pyramid pooling module: the input concatenated with its pooled-and-upsampled summaries."""

    def __init__(self, channels: int, bins: Sequence[int] = BINS):
        super().__init__()
        for i, b in enumerate(bins):
            check_int(f"bins[{i}]", b, minimum=1)
        reduced = max(channels // len(bins), 1)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(channels, reduced, 1)) for b in bins
        )
        self.out_channels = channels + reduced * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=True)
                  for stage in self.stages]
        return torch.cat([x, *pooled], dim=1)


class PSPNet(nn.Module):
    """PSPNet for ``num_classes`` classes.

    Args:
        backbone: a timm model name (``resnet50`` for PSPNet-50; ``tf_efficientnet_lite0`` on a CPU).
        pretrained: see ``backbones.create_backbone``.
        bins: the pyramid's bin sizes; ``head_width``/``aux_width``: the heads' 3x3 conv widths
            (512 and 256 in PSPNet).
        output_stride: 8 in PSPNet (the last stages dilated instead of strided).
        freeze_backbone: train the pyramid and heads only (``backbones.create_backbone``'s ``frozen``).
    """

    def __init__(self, num_classes: int, *, backbone: str = "resnet50", pretrained: str = "none",
                 bins: Sequence[int] = BINS, head_width: int = 512, aux_width: int = 256,
                 output_stride: int = 8, dropout: float = 0.1, freeze_backbone: bool = False):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        check_int("head_width", head_width, minimum=1)
        check_int("aux_width", aux_width, minimum=1)
        levels = len(feature_strides(backbone))
        self.backbone = create_backbone(backbone, (levels - 2, levels - 1), pretrained=pretrained,
                                        output_stride=output_stride, frozen=freeze_backbone)
        aux_channels, channels = self.backbone.feature_info.channels()
        self.ppm = PyramidPooling(channels, bins)
        self.head = nn.Sequential(conv_bn_relu(self.ppm.out_channels, head_width, 3), nn.Dropout2d(dropout),
                                  nn.Conv2d(head_width, num_classes, 1))
        self.aux = nn.Sequential(conv_bn_relu(aux_channels, aux_width, 3), nn.Dropout2d(dropout),
                                 nn.Conv2d(aux_width, num_classes, 1))

    def forward(self, images: torch.Tensor):
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(f"images must be a (B, 3, H, W) tensor, got {describe(images)}")
        if self.training and images.shape[0] < 2:
            raise ValueError(f"PSPNet trains on batches of at least 2 images (BatchNorm after the 1x1 bin), "
                             f"got {images.shape[0]}")
        size = images.shape[-2:]
        aux_features, features = self.backbone(images)
        main = F.interpolate(self.head(self.ppm(features)), size=size, mode="bilinear", align_corners=True)
        if not self.training:
            return main
        aux = F.interpolate(self.aux(aux_features), size=size, mode="bilinear", align_corners=True)
        return main, aux
