"""YOLOv3 output layout, anchors and box decoding (Redmon & Farhadi 2018), shared by the loss and evaluation.

Conventions every detection module follows:

- Model output: a sequence of S scale tensors, each (B, A, H_s, W_s, 5 + C) of raw values
  (tx, ty, tw, th, objectness logit, C class logits), A anchors per scale. Scale s has stride
  ``strides[s]`` (default ``STRIDES`` = (8, 16, 32)); the input image is (H_s * stride_s,
  W_s * stride_s) pixels, the same for every scale.
- Anchors: (w, h) in input pixels, darknet's convention: ``COCO_ANCHORS`` lists nine, the
  first three for stride 8, the next three for 16, the last three for 32.
- Per-anchor tensors are flattened scale, then anchor, then y, then x (each scale's
  (B, A, H, W) flattened and concatenated along dim 1), giving A_total = sum_s A * H_s * W_s.
- Decoding (YOLOv3 §2.1): centre = (cell + sigmoid(t_xy)) * stride, size = anchor * exp(t_wh),
  returned as xyxy input pixels.
- Ground-truth boxes follow torchvision: float (N, 4) xyxy input pixels with int64 labels (N,).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from metaloss.core.checks import check_int, check_tensor

COCO_ANCHORS: tuple[tuple[int, int], ...] = (
    (10, 13), (16, 30), (33, 23),
    (30, 61), (62, 45), (59, 119),
    (116, 90), (156, 198), (373, 326),
)
STRIDES: tuple[int, ...] = (8, 16, 32)

# ground-truth boxes may poke out of the image by rounding (resizing, augmentation)
_BOX_TOLERANCE_PX = 1e-3


class Decoded(NamedTuple):
    """Every anchor's prediction in the flattened order: boxes (B, A_total, 4) xyxy pixels,
    objectness (B, A_total) logits, class_logits (B, A_total, C)."""

    boxes: torch.Tensor
    objectness: torch.Tensor
    class_logits: torch.Tensor


class GridLayout(NamedTuple):
    """What the outputs' shapes imply, with per-anchor geometry on the outputs' device and dtype.

    ``anchors`` (S, A, 2) pixels; ``image_size`` (height, width) pixels; ``grids`` (H_s, W_s) per
    scale; ``offsets`` where each scale starts in the flattened order; ``cells`` (A_total, 2) the
    (x, y) cell, ``cell_stride`` (A_total,) and ``cell_anchor`` (A_total, 2) of every flattened anchor.
    """

    batch: int
    num_classes: int
    image_size: tuple[int, int]
    strides: tuple[int, ...]
    grids: tuple[tuple[int, int], ...]
    offsets: tuple[int, ...]
    anchors: torch.Tensor
    cells: torch.Tensor
    cell_stride: torch.Tensor
    cell_anchor: torch.Tensor


def anchor_tensor(anchors, num_scales: int) -> torch.Tensor:
    """Anchors as a float64 tensor (S, A, 2) of (w, h) pixels.

    ``anchors`` is a sequence of S * A (w, h) pairs (split into S consecutive groups) or a
    tensor (S, A, 2); every size must be finite and positive.
    """
    num_scales = check_int("num_scales", num_scales, minimum=1)
    if isinstance(anchors, torch.Tensor):
        if anchors.ndim != 3 or anchors.shape[0] != num_scales or anchors.shape[2] != 2:
            raise ValueError(f"anchors as a tensor must have shape ({num_scales}, A, 2), "
                             f"got {tuple(anchors.shape)}")
        table = anchors.detach().to(torch.float64)
    else:
        try:
            table = torch.as_tensor(anchors, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"anchors must be a sequence of (w, h) pairs or a tensor (S, A, 2), "
                            f"got {type(anchors).__name__}") from error
        if table.ndim != 2 or table.shape[1] != 2 or table.shape[0] == 0:
            raise ValueError(f"anchors must be a non-empty sequence of (w, h) pairs, got shape "
                             f"{tuple(table.shape)}")
        if table.shape[0] % num_scales:
            raise ValueError(f"anchors must split evenly into {num_scales} scales, "
                             f"got {table.shape[0]} pairs")
        table = table.reshape(num_scales, -1, 2)
    if table.shape[1] == 0:
        raise ValueError("anchors must hold at least one anchor per scale, got none")
    if not bool(torch.isfinite(table).all()) or bool((table <= 0).any()):
        raise ValueError(f"anchors must be finite positive (w, h) sizes in pixels, got {table.tolist()}")
    return table


def check_outputs(outputs, anchors=COCO_ANCHORS, strides=STRIDES) -> GridLayout:
    """Validate the raw model outputs against ``anchors`` and ``strides``; return their layout."""
    if isinstance(outputs, torch.Tensor) or not isinstance(outputs, Sequence) or not outputs:
        raise TypeError(f"outputs must be a non-empty list of per-scale tensors (B, A, H, W, 5 + C), "
                        f"got {type(outputs).__name__}")
    if isinstance(strides, (str, bytes)) or not isinstance(strides, Sequence):
        raise TypeError(f"strides must be a sequence of ints, got {type(strides).__name__}")
    strides = tuple(check_int(f"strides[{s}]", v, minimum=1) for s, v in enumerate(strides))
    if len(strides) != len(outputs):
        raise ValueError(f"strides must give one stride per output scale ({len(outputs)}), "
                         f"got {len(strides)}: {strides}")
    first = check_tensor("outputs[0]", outputs[0], ndim=5, floating=True)
    batch, num_anchors, _, _, channels = first.shape
    if channels < 6:
        raise ValueError(f"outputs[0] must have 5 + C >= 6 channels in its last dimension, got {channels}")
    sizes = set()
    for s, out in enumerate(outputs):
        check_tensor(f"outputs[{s}]", out, ndim=5, floating=True)
        if out.shape[0] != batch or out.shape[1] != num_anchors or out.shape[4] != channels:
            raise ValueError(f"outputs[{s}] must have shape ({batch}, {num_anchors}, H, W, {channels}) "
                             f"like outputs[0] (batch, anchors, 5 + C), got {tuple(out.shape)}")
        if out.dtype != first.dtype or out.device != first.device:
            raise ValueError(f"outputs[{s}] must share outputs[0]'s dtype and device "
                             f"({first.dtype}, {first.device}), got ({out.dtype}, {out.device})")
        sizes.add((out.shape[2] * strides[s], out.shape[3] * strides[s]))
    if len(sizes) > 1:
        raise ValueError(f"outputs must describe one input image: H_s * stride_s and W_s * stride_s must "
                         f"agree across scales, got (height, width) {sorted(sizes)} for strides {strides}")
    table = anchor_tensor(anchors, len(outputs))
    if table.shape[1] != num_anchors:
        raise ValueError(f"anchors must give {num_anchors} anchors per scale to match outputs' dim 1, "
                         f"got {table.shape[1]}")
    table = table.to(device=first.device, dtype=first.dtype)

    grids = tuple((int(out.shape[2]), int(out.shape[3])) for out in outputs)
    counts = [num_anchors * h * w for h, w in grids]
    offsets = tuple(sum(counts[:s]) for s in range(len(counts)))
    cells, cell_stride, cell_anchor = [], [], []
    for s, (h, w) in enumerate(grids):
        ys, xs = torch.meshgrid(torch.arange(h, device=first.device, dtype=first.dtype),
                                torch.arange(w, device=first.device, dtype=first.dtype), indexing="ij")
        cells.append(torch.stack((xs, ys), dim=-1).reshape(1, h * w, 2).expand(num_anchors, -1, -1)
                     .reshape(-1, 2))
        cell_stride.append(first.new_full((counts[s],), float(strides[s])))
        cell_anchor.append(table[s].repeat_interleave(h * w, dim=0))
    return GridLayout(
        batch=int(batch), num_classes=int(channels) - 5, image_size=next(iter(sizes)), strides=strides,
        grids=grids, offsets=offsets, anchors=table, cells=torch.cat(cells),
        cell_stride=torch.cat(cell_stride), cell_anchor=torch.cat(cell_anchor),
    )


def flatten_outputs(outputs) -> torch.Tensor:
    """The raw outputs as one (B, A_total, 5 + C) tensor in the flattened anchor order (no checks)."""
    return torch.cat([out.reshape(out.shape[0], -1, out.shape[-1]) for out in outputs], dim=1)


def decode_flat(raw: torch.Tensor, layout: GridLayout) -> torch.Tensor:
    """Boxes (B, A_total, 4) xyxy pixels from flattened raw outputs (differentiable)."""
    centre = (layout.cells + torch.sigmoid(raw[..., 0:2])) * layout.cell_stride[:, None]
    size = layout.cell_anchor * torch.exp(raw[..., 2:4])
    return torch.cat((centre - size / 2, centre + size / 2), dim=-1)


def decode(outputs, anchors=COCO_ANCHORS, strides=STRIDES) -> Decoded:
    """Every anchor's box, objectness logit and class logits in the flattened order (differentiable)."""
    layout = check_outputs(outputs, anchors, strides)
    raw = flatten_outputs(outputs)
    return Decoded(boxes=decode_flat(raw, layout), objectness=raw[..., 4], class_logits=raw[..., 5:])


def check_boxes(name: str, boxes, labels, num_classes: int, image_size) -> None:
    """Raise unless ``boxes`` (N, 4) float xyxy lie inside the (height, width) ``image_size`` (1e-3 px
    tolerance) with x2 > x1 and y2 > y1, and ``labels`` (N,) int64 are class indices in [0, C)."""
    num_classes = check_int("num_classes", num_classes, minimum=1)
    if isinstance(image_size, torch.Tensor) or not isinstance(image_size, Sequence) or len(image_size) != 2:
        raise TypeError(f"image_size must be a (height, width) pair, got {image_size!r}")
    height, width = (float(v) for v in image_size)
    if not (math.isfinite(height) and math.isfinite(width) and height > 0 and width > 0):
        raise ValueError(f"image_size must be a positive (height, width), got {tuple(image_size)}")
    check_tensor(f"{name}['boxes']", boxes, ndim=2, floating=True)
    if boxes.shape[1] != 4:
        raise ValueError(f"{name}['boxes'] must have shape (N, 4) (xyxy pixels), got {tuple(boxes.shape)}")
    check_tensor(f"{name}['labels']", labels, ndim=1)
    if labels.dtype != torch.int64:
        raise TypeError(f"{name}['labels'] must be int64 class indices, got dtype {labels.dtype}")
    if labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"{name}['labels'] must give one label per box ({boxes.shape[0]}), "
                         f"got {labels.shape[0]}")
    values = boxes.detach()

    def first_bad(bad: torch.Tensor, what: str) -> None:
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(f"{name}['boxes'][{i}] = {values[i].tolist()} {what}")

    first_bad(~torch.isfinite(values).all(dim=1), "must be finite")
    first_bad((values[:, 2] <= values[:, 0]) | (values[:, 3] <= values[:, 1]),
              "must have x2 > x1 and y2 > y1 (xyxy pixels, positive size)")
    tol = _BOX_TOLERANCE_PX
    outside = (values[:, :2] < -tol).any(dim=1) | (values[:, 2] > width + tol) | (values[:, 3] > height + tol)
    first_bad(outside, f"must lie inside the image [0, {width:g}] x [0, {height:g}] (x, y pixels)")
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"{name}['labels'][{i}] = {int(labels[i])} must be a class index in "
                         f"[0, {num_classes - 1}]")
