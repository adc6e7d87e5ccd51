"""The YOLOv3 loss as the L2T-DLN supplement writes it (§4, eqs. 28-30), per anchor, in three parts.

Layout, anchors and decoding follow ``metaloss.detection_seg.boxes`` (outputs: S tensors
(B, A, H_s, W_s, 5 + C); per-anchor tensors flattened scale, anchor, y, x into A_total).

Target assignment (YOLOv3, Redmon & Farhadi 2018, §2.1-2.3), done under ``no_grad`` from the
detached outputs:

- each ground-truth box goes to the one anchor, over all S * A, whose (w, h) best matches its
  own by IoU of centred boxes, at the cell (floor(cx / stride), floor(cy / stride)) of that
  anchor's scale, clamped to the grid. If two boxes land on the same anchor and cell the later
  one in the image's list wins;
- offset targets: q0 = cx / stride - gx, q1 = cy / stride - gy, q2 = log(w / anchor_w),
  q3 = log(h / anchor_h); their predictions are sigmoid(tx), sigmoid(ty), tw, th;
- ignore: a non-positive anchor whose decoded predicted box has IoU > ``ignore_threshold`` with
  any ground-truth box of its image gets no no-object loss (YOLOv3 §2.1).

The three parts, each (B, A_total) with no reduction and no weighting between them (the paper
has none):

- ℓ_loc (eq. 28) = 1^obj (2 - w h) sum_k (q_k - q̃_k)^2, squared error on all four offsets. The
  paper writes the factor as (2 - q2 q3); we read it as YOLOv3's box-size scale, with w and h the
  box's width and height divided by the input image's, so small boxes weigh up to twice as much
  (q2 and q3 themselves are log ratios, whose product would not be a size).
- ℓ_cls (eq. 29) = 1^obj BCE(p, p̃): binary cross-entropy of the per-class sigmoids against the
  one-hot label, summed over the C classes, or ``cls_loss(logits, labels)`` where given (a
  learned loss network plugs in here).
- ℓ_conf (eq. 30) = 1^obj (o - 1)^2 + 1^noobj (o - 0)^2 with o = sigmoid(objectness logit):
  squared error as the paper writes it, not the binary cross-entropy of darknet; ignored anchors
  are in neither set.

Everything is made of ordinary differentiable torch ops without in-place updates of tensors that
need grad, so the loss can be differentiated twice (look-ahead steps under
``torch.func.functional_call``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from metaloss.core.checks import check_choice, check_unit_interval

from ..boxes import (
    COCO_ANCHORS,
    STRIDES,
    GridLayout,
    check_boxes,
    check_outputs,
    decode_flat,
    flatten_outputs,
)

OBJECTNESS = ("squared", "bce")


class YOLOTargets(NamedTuple):
    """Per-anchor targets (flattened order): ``positive`` and ``ignored`` (B, A_total) bool (never
    both), ``box`` (B, A_total, 4) the q0..q3 targets, ``scale`` (B, A_total) the (2 - w h) factor,
    ``labels`` (B, A_total) int64; box, scale 0 and labels -1 where not positive."""

    positive: torch.Tensor
    ignored: torch.Tensor
    box: torch.Tensor
    scale: torch.Tensor
    labels: torch.Tensor


class YOLOLossParts(NamedTuple):
    """ℓ_loc (eq. 28), ℓ_cls (eq. 29) and ℓ_conf (eq. 30), each (B, A_total) unreduced, 0 where a
    part does not apply."""

    loc: torch.Tensor
    cls: torch.Tensor
    conf: torch.Tensor

    def per_image(self) -> torch.Tensor:
        """(B, 3): each image's loc, cls and conf summed over its anchors."""
        return torch.stack((self.loc.sum(1), self.cls.sum(1), self.conf.sum(1)), dim=1)

    def total(self) -> torch.Tensor:
        """(B,): each image's loc + cls + conf."""
        return self.loc.sum(1) + self.cls.sum(1) + self.conf.sum(1)


def _check_targets(targets, layout: GridLayout, device, dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (boxes, labels) of each image, validated and moved to the outputs' device and dtype."""
    if isinstance(targets, (str, bytes, Mapping)) or not isinstance(targets, Sequence):
        raise TypeError(f"targets must be a list of dicts with 'boxes' and 'labels', one per image, "
                        f"got {type(targets).__name__}")
    if len(targets) != layout.batch:
        raise ValueError(f"targets must hold one dict per image of the batch ({layout.batch}), "
                         f"got {len(targets)}")
    checked = []
    for i, target in enumerate(targets):
        if not isinstance(target, Mapping) or "boxes" not in target or "labels" not in target:
            got = sorted(target) if isinstance(target, Mapping) else type(target).__name__
            raise TypeError(f"targets[{i}] must be a dict with 'boxes' and 'labels', got {got}")
        check_boxes(f"targets[{i}]", target["boxes"], target["labels"], layout.num_classes, layout.image_size)
        checked.append((target["boxes"].detach().to(device=device, dtype=dtype), target["labels"].to(device)))
    return checked


def _assign(raw: torch.Tensor, layout: GridLayout, targets, ignore_threshold: float) -> YOLOTargets:
    """Target assignment from the detached flattened outputs ``raw`` (B, A_total, 5 + C)."""
    batch, total = raw.shape[:2]
    device, dtype = raw.device, raw.dtype
    positive = torch.zeros(batch, total, dtype=torch.bool, device=device)
    ignored = torch.zeros_like(positive)
    box = torch.zeros(batch, total, 4, dtype=dtype, device=device)
    scale = torch.zeros(batch, total, dtype=dtype, device=device)
    labels = torch.full((batch, total), -1, dtype=torch.int64, device=device)

    num_anchors = layout.anchors.shape[1]
    shapes = layout.anchors.reshape(-1, 2)  # all S * A anchors, scale-major
    stride = torch.tensor(layout.strides, device=device, dtype=dtype).repeat_interleave(num_anchors)
    grid_h = torch.tensor([h for h, _ in layout.grids], device=device).repeat_interleave(num_anchors)
    grid_w = torch.tensor([w for _, w in layout.grids], device=device).repeat_interleave(num_anchors)
    offset = torch.tensor(layout.offsets, device=device).repeat_interleave(num_anchors)
    anchor_in_scale = torch.arange(num_anchors, device=device).repeat(len(layout.grids))
    image_h, image_w = layout.image_size
    predicted = decode_flat(raw, layout)

    for b, (gt, gt_labels) in enumerate(targets):
        if gt.shape[0] == 0:
            continue
        w, h = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
        cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
        inter = torch.minimum(w[:, None], shapes[:, 0]) * torch.minimum(h[:, None], shapes[:, 1])
        union = (w * h)[:, None] + shapes.prod(dim=1) - inter
        best = (inter / union).argmax(dim=1)  # first maximum on a tie
        s_stride, s_h, s_w = stride[best], grid_h[best], grid_w[best]
        gx = torch.minimum(torch.floor(cx / s_stride).long().clamp(min=0), s_w - 1)
        gy = torch.minimum(torch.floor(cy / s_stride).long().clamp(min=0), s_h - 1)
        flat = offset[best] + (anchor_in_scale[best] * s_h + gy) * s_w + gx
        # a later box on the same anchor and cell wins: drop every box that a later one repeats
        keep = ~torch.triu(flat[:, None] == flat[None, :], diagonal=1).any(dim=1)
        flat = flat[keep]
        positive[b, flat] = True
        box[b, flat] = torch.stack((cx / s_stride - gx, cy / s_stride - gy,
                                    torch.log(w / shapes[best, 0]), torch.log(h / shapes[best, 1])),
                                   dim=1)[keep]
        scale[b, flat] = (2 - (w / image_w) * (h / image_h))[keep]
        labels[b, flat] = gt_labels[keep]
        overlaps = box_iou(predicted[b], gt).amax(dim=1)
        ignored[b] = (overlaps > ignore_threshold) & ~positive[b]
    return YOLOTargets(positive=positive, ignored=ignored, box=box, scale=scale, labels=labels)


def assign_targets(outputs, targets, *, anchors=COCO_ANCHORS, strides=STRIDES,
                   ignore_threshold: float = 0.5) -> YOLOTargets:
    """YOLOv3's per-anchor targets for ``targets`` (a list of B dicts {"boxes": (N, 4) xyxy pixels,
    "labels": (N,) int64}) given the raw ``outputs``, which only the ignore rule reads."""
    layout = check_outputs(outputs, anchors, strides)
    ignore_threshold = check_unit_interval("ignore_threshold", ignore_threshold, low_open=True,
                                           what="an IoU threshold")
    with torch.no_grad():
        raw = flatten_outputs(outputs).detach()
        return _assign(raw, layout, _check_targets(targets, layout, raw.device, raw.dtype), ignore_threshold)


def yolo_loss(outputs, targets, *, anchors=COCO_ANCHORS, strides=STRIDES, ignore_threshold: float = 0.5,
              cls_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
              objectness: str = "squared") -> YOLOLossParts:
    """ℓ_loc, ℓ_cls and ℓ_conf (eqs. 28-30) of raw YOLOv3 ``outputs`` against ``targets``, per anchor.

    ``cls_loss(logits (N, C), labels (N,)) -> (N,)``, if given, replaces eq. 29's BCE at the N
    positive anchors (in the flattened order, image by image); it is called even when N = 0 so
    that its parameters always take part in the graph. ``objectness``: ``"squared"`` is eq. 30;
    ``"bce"`` is YOLOv3's own logistic regression of the objectness (§2.1 of Redmon & Farhadi), the
    same targets and anchors with binary cross-entropy in place of the squared error (whose
    gradient at a positive anchor, 2 o (1 - o)^2, vanishes while o is small).
    """
    check_choice("objectness", objectness, OBJECTNESS)
    if cls_loss is not None and not callable(cls_loss):
        raise TypeError(f"cls_loss must be a callable (logits, labels) -> per-anchor losses or None, "
                        f"got {type(cls_loss).__name__}")
    layout = check_outputs(outputs, anchors, strides)
    ignore_threshold = check_unit_interval("ignore_threshold", ignore_threshold, low_open=True,
                                           what="an IoU threshold")
    raw = flatten_outputs(outputs)
    checked = _check_targets(targets, layout, raw.device, raw.dtype)
    with torch.no_grad():
        target = _assign(raw.detach(), layout, checked, ignore_threshold)

    pos = target.positive.to(raw.dtype)
    offsets = torch.cat((torch.sigmoid(raw[..., 0:2]), raw[..., 2:4]), dim=-1)
    loc = pos * target.scale * (offsets - target.box).pow(2).sum(dim=-1)

    counted = (~target.ignored).to(raw.dtype)  # positives are never ignored
    if objectness == "squared":
        conf = counted * (torch.sigmoid(raw[..., 4]) - pos).pow(2)
    else:
        conf = counted * F.binary_cross_entropy_with_logits(raw[..., 4], pos, reduction="none")

    where = target.positive.nonzero(as_tuple=True)
    logits, labels = raw[..., 5:][where], target.labels[where]
    if cls_loss is None:
        values = F.binary_cross_entropy_with_logits(
            logits, F.one_hot(labels, layout.num_classes).to(raw.dtype), reduction="none").sum(dim=1)
    else:
        values = cls_loss(logits, labels)
        if not isinstance(values, torch.Tensor) or values.shape != labels.shape:
            got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(f"cls_loss must return one loss per positive anchor, "
                             f"shape ({labels.shape[0]},), got {got}")
    cls = raw.new_zeros(raw.shape[:2]).index_put(where, values.to(raw.dtype))
    return YOLOLossParts(loc=loc, cls=cls, conf=conf)
