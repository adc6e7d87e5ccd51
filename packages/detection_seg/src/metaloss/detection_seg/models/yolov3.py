"""YOLOv3 (Redmon & Farhadi 2018) on any timm backbone: three scales, three anchors each.

The backbone gives the feature maps of strides 8, 16 and 32 (``features_only``). The neck is
YOLOv3's: at the deepest scale five alternating 1x1/3x3 conv layers, then a 3x3 conv and a 1x1
conv to A * (4 + 1 + C) outputs; a 1x1 conv and a 2x upsampling carry the features to the next
scale, where they are concatenated with the backbone's and treated the same way. Conv layers are
conv + BatchNorm + LeakyReLU(0.1). ``width`` is the deepest scale's channel count (512 in
YOLOv3; halved at each finer scale), so a small backbone gets a small neck on a CPU.

``forward`` returns the raw outputs as a tuple, finest scale first (strides 8, 16, 32, the order
of ``boxes.COCO_ANCHORS``), each (B, A, H, W, 5 + C): (tx, ty, tw, th, objectness, classes), the
form ``losses.yolo_loss`` reads. ``detect`` turns them into boxes: score = sigmoid(objectness) *
sigmoid(class), per-class NMS (``torchvision.ops.batched_nms``).

The objectness bias starts at log(0.01 / 0.99) (the prior of Lin et al. 2017): at sigmoid(0) = 0.5
the thousands of empty anchors' squared confidence error would swamp the first steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from metaloss.core.checks import check_int, check_positive, describe

from ..boxes import COCO_ANCHORS, STRIDES, anchor_tensor, decode
from .backbones import create_backbone, levels_of_strides

OBJECT_PRIOR = 0.01


def conv(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1))


def conv_set(c_in: int, width: int) -> nn.Sequential:
    """YOLOv3's five conv layers at one scale: 1x1 to width, then 3x3 (2 width) / 1x1 (width) twice."""
    return nn.Sequential(conv(c_in, width, 1), conv(width, 2 * width, 3), conv(2 * width, width, 1),
                         conv(width, 2 * width, 3), conv(2 * width, width, 1))


class YOLOv3(nn.Module):
    """YOLOv3 for ``num_classes`` classes on the timm backbone ``backbone``.

    Args:
        backbone: a timm model name; its last three feature levels must have strides 8, 16, 32
            (``darknet53`` for YOLOv3 itself, ``tf_efficientnet_lite0`` for a CPU).
        out_indices: the backbone's feature levels used (None: its last three).
        pretrained: see ``backbones.create_backbone`` (``"none"``, ``"hub"`` or ``"lite0_wheel"``).
        width: the deepest scale's neck width (512 in YOLOv3).
        anchors: nine (w, h) anchors in pixels, three per scale, finest scale first.
        freeze_backbone: train the neck and heads only (``backbones.create_backbone``'s ``frozen``).
    """

    def __init__(self, num_classes: int, *, backbone: str = "darknet53",
                 out_indices: Sequence[int] | None = None, pretrained: str = "none", width: int = 512,
                 anchors: Sequence[Sequence[float]] = COCO_ANCHORS, freeze_backbone: bool = False):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        check_int("width", width, minimum=4)
        self.register_buffer("anchors", anchor_tensor(anchors, len(STRIDES)), persistent=False)
        self.strides = STRIDES
        out_indices = tuple(out_indices) if out_indices is not None else levels_of_strides(backbone, STRIDES)
        self.backbone = create_backbone(backbone, out_indices, pretrained=pretrained, frozen=freeze_backbone)
        channels, strides = self.backbone.feature_info.channels(), self.backbone.feature_info.reduction()
        if len(channels) != 3 or tuple(strides) != STRIDES:
            raise ValueError(f"the backbone's features must be three levels of strides {STRIDES}, got "
                             f"strides {tuple(strides)} for {backbone!r} with out_indices={out_indices}")
        outputs = self.anchors.shape[1] * (5 + num_classes)
        widths = (width // 4, width // 2, width)  # strides 8, 16, 32
        self.sets, self.heads, self.laterals = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        carried = 0
        for level in (2, 1, 0):  # from the deepest scale up
            self.sets.append(conv_set(channels[level] + carried, widths[level]))
            self.heads.append(nn.Sequential(conv(widths[level], 2 * widths[level], 3),
                                            nn.Conv2d(2 * widths[level], outputs, 1)))
            if level:
                self.laterals.append(conv(widths[level], widths[level - 1], 1))
                carried = widths[level - 1]
        self._init_objectness()

    def _init_objectness(self) -> None:
        anchors_per_scale, fields = self.anchors.shape[1], 5 + self.num_classes
        with torch.no_grad():
            for head in self.heads:
                bias = head[-1].bias.view(anchors_per_scale, fields)
                bias.zero_()
                bias[:, 4] = math.log(OBJECT_PRIOR / (1 - OBJECT_PRIOR))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise ValueError(f"images must be a (B, 3, H, W) tensor, got {describe(images)}")
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError(f"the image height and width must be multiples of 32, got {describe(images)}")
        features = self.backbone(images)
        outputs, carried = [], None
        for i, level in enumerate((2, 1, 0)):
            x = features[level] if carried is None else torch.cat((carried, features[level]), dim=1)
            x = self.sets[i](x)
            raw = self.heads[i](x)
            b, _, h, w = raw.shape
            raw = raw.view(b, self.anchors.shape[1], 5 + self.num_classes, h, w)
            outputs.append(raw.permute(0, 1, 3, 4, 2))
            if level:
                carried = nn.functional.interpolate(self.laterals[i](x), scale_factor=2, mode="nearest")
        return tuple(reversed(outputs))  # finest scale first, as the anchors

    @torch.no_grad()
    def detect(self, outputs: Sequence[torch.Tensor], *, score_threshold: float = 0.01,
               iou_threshold: float = 0.45, max_detections: int = 100) -> list[dict[str, torch.Tensor]]:
        """Boxes per image: ``{"boxes" (N, 4) xyxy pixels, "scores" (N,), "labels" (N,)}``."""
        check_positive("score_threshold", score_threshold, allow_zero=True)
        check_positive("iou_threshold", iou_threshold)
        check_int("max_detections", max_detections, minimum=1)
        decoded = decode(outputs, self.anchors, self.strides)
        height, width = outputs[0].shape[2] * self.strides[0], outputs[0].shape[3] * self.strides[0]
        scores, labels = (torch.sigmoid(decoded.objectness)[..., None]
                          * torch.sigmoid(decoded.class_logits)).max(dim=-1)
        detections = []
        for boxes, score, label in zip(decoded.boxes, scores, labels):
            keep = score > score_threshold
            boxes, score, label = clip_boxes_to_image(boxes[keep], (height, width)), score[keep], label[keep]
            kept = batched_nms(boxes, score, label, iou_threshold)[:max_detections]
            detections.append({"boxes": boxes[kept], "scores": score[kept], "labels": label[kept]})
        return detections
