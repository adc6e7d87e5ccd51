"""Evaluation metrics: box mAP for detection (COCO's protocol) and a confusion matrix for segmentation.

- ``BoxMAP`` / ``box_map``: mAP@0.5 and mAP@0.5:0.95 through torchmetrics' ``MeanAveragePrecision``
  with the faster-coco-eval backend (COCO's 101-point interpolated precision, up to 100 detections
  per image, all object sizes).
- ``ConfusionMatrix``: pixel counts over a whole evaluation set (torchmetrics'
  ``MulticlassConfusionMatrix``), reduced to per-class IoU, mIoU and pixel accuracy. mIoU averages
  the classes that occur (union > 0) in the target or the prediction, the rule of torchmetrics'
  ``MulticlassJaccardIndex(average="macro")``: COCO128's val2017 holds only some of its classes,
  and an absent class would otherwise count as IoU 0.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence

import torch
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.detection import MeanAveragePrecision
from torchvision import tv_tensors

from metaloss.core.checks import check_int, describe


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    # tv_tensors would carry their metadata into torchmetrics' state; the metric needs numbers only.
    return tensor.detach().as_subclass(torch.Tensor).cpu()


def _check_boxes(where: str, boxes) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}['boxes'] must be a (N, 4) tensor, got {boxes!r:.80}")
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        raise ValueError(f"{where}['boxes'] must be in XYXY format, got {boxes.format.name}")
    boxes = _plain(boxes).float()
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{where}['boxes'] must be finite")
    if bool((boxes[:, 2:] < boxes[:, :2]).any()):
        raise ValueError(f"{where}['boxes'] must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
    return boxes


def _check_labels(where: str, labels, rows: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"{where}['labels'] must be an integer (N,) tensor, got {labels!r:.80}")
    if len(labels) != rows:
        raise ValueError(f"{where}['labels'] must have one entry per box ({rows}), got {len(labels)}")
    return _plain(labels).long()


def _check_detections(predictions, targets) -> tuple[list[dict], list[dict]]:
    for name, value in (("predictions", predictions), ("targets", targets)):
        if not isinstance(value, Sequence) or not all(isinstance(v, Mapping) for v in value):
            raise TypeError(f"{name} must be a list of dicts, one per image, got {type(value).__name__}")
    if len(predictions) != len(targets):
        raise ValueError(f"predictions and targets must hold one dict per image each, "
                         f"got {len(predictions)} and {len(targets)}")
    preds, gts = [], []
    for i, (p, t) in enumerate(zip(predictions, targets)):
        boxes = _check_boxes(f"predictions[{i}]", p.get("boxes"))
        scores = p.get("scores")
        ok = isinstance(scores, torch.Tensor) and scores.shape == (len(boxes),) and scores.is_floating_point()
        if not ok:
            raise ValueError(f"predictions[{i}]['scores'] must be a float ({len(boxes)},) tensor, "
                             f"got {scores!r:.80}")
        preds.append({"boxes": boxes, "scores": _plain(scores).float(),
                      "labels": _check_labels(f"predictions[{i}]", p.get("labels"), len(boxes))})
        gt_boxes = _check_boxes(f"targets[{i}]", t.get("boxes"))
        gt_labels = _check_labels(f"targets[{i}]", t.get("labels"), len(gt_boxes))
        gts.append({"boxes": gt_boxes, "labels": gt_labels})
    return preds, gts


@contextlib.contextmanager
def _quiet(logger: logging.Logger):
    """``logger`` (and its children) at WARNING inside the block, its level restored after."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class BoxMAP:
    """Streaming box mAP: ``update(predictions, targets)`` per batch, then ``compute()``.

    ``predictions``: one dict per image, ``{"boxes": (N, 4) XYXY pixels, "scores": (N,), "labels": (N,)}``;
    ``targets``: ``{"boxes": (M, 4) XYXY, "labels": (M,)}`` (a dataset's targets as they come). Inputs
    are copied to the CPU, where COCO's evaluation runs.
    """

    def __init__(self):
        self._metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="faster_coco_eval")

    def update(self, predictions: Sequence[Mapping], targets: Sequence[Mapping]) -> None:
        preds, gts = _check_detections(predictions, targets)
        self._metric.update(preds, gts)

    def compute(self) -> dict[str, float]:
        """``{"map_50": mAP@0.5, "map": mAP@0.5:0.95}``; COCO's -1 when no image had a ground-truth box."""
        with _quiet(logging.getLogger("faster_coco_eval")):  # it logs COCO's whole table at INFO
            result = self._metric.compute()
        return {"map_50": float(result["map_50"]), "map": float(result["map"])}

    def reset(self) -> None:
        self._metric.reset()


def box_map(predictions: Sequence[Mapping], targets: Sequence[Mapping]) -> dict[str, float]:
    """``{"map_50", "map"}`` of one set of images in a single call (see ``BoxMAP``)."""
    metric = BoxMAP()
    metric.update(predictions, targets)
    return metric.compute()


class ConfusionMatrix:
    """Segmentation counts over many batches: ``update(pred, target)``, then ``compute()``.

    ``pred`` is class indices (B, H, W) or logits (B, C, H, W) (argmax taken); ``target`` is (B, H, W)
    of class indices with ``ignore_index`` for pixels that count nowhere.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.ignore_index = check_int("ignore_index", ignore_index)
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index must not be a class index (0..{num_classes - 1}), "
                             f"got {ignore_index}")
        # Inputs are checked here, so torchmetrics' own (slower) value checks are off.
        self._counts = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index, validate_args=False)
        self._updated = False

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if not isinstance(target, torch.Tensor) or target.dim() != 3 or target.is_floating_point():
            raise ValueError(f"target must be an integer (B, H, W) tensor, got {describe(target)}")
        if not isinstance(pred, torch.Tensor):
            raise TypeError(f"pred must be a tensor, got {type(pred).__name__}")
        if pred.is_floating_point():
            if pred.dim() != 4 or pred.shape[1] != self.num_classes:
                raise ValueError(f"logits must be (B, {self.num_classes}, H, W), got {describe(pred)}")
            pred = pred.argmax(1)
        if pred.shape != target.shape:
            raise ValueError(f"pred must have target's shape {tuple(target.shape)}, got {describe(pred)}")
        if pred.device != target.device:
            raise ValueError(f"pred and target must be on one device, got {pred.device} and {target.device}")
        # Counting stays on the inputs' device (a GPU in training): no per-batch copy of the masks.
        pred, target = pred.detach().as_subclass(torch.Tensor).long(), target.as_subclass(torch.Tensor).long()
        self._counts.to(target.device)
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= self.num_classes):
            raise ValueError(f"pred must hold class indices in [0, {self.num_classes - 1}], "
                             f"got values in [{int(pred.min())}, {int(pred.max())}]")
        labelled = target[target != self.ignore_index]
        if labelled.numel() and (int(labelled.min()) < 0 or int(labelled.max()) >= self.num_classes):
            low, high = int(labelled.min()), int(labelled.max())
            raise ValueError(f"target must hold class indices in [0, {self.num_classes - 1}] or "
                             f"{self.ignore_index}, got values in [{low}, {high}]")
        self._counts.update(pred, target)
        self._updated = True

    def matrix(self) -> torch.Tensor:
        """Pixel counts (C, C), int64: row = target class, column = predicted class."""
        if not self._updated:
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        return self._counts.compute().long().cpu()

    def compute(self) -> dict:
        """``{"iou": (C,) float with NaN for classes absent from both, "miou", "pixel_accuracy"}``."""
        counts = self.matrix().double()
        total = counts.sum()
        if total == 0:
            raise ValueError("no labelled pixel was counted: call update() with non-ignored targets first")
        hits = counts.diagonal()
        union = counts.sum(0) + counts.sum(1) - hits
        iou = torch.where(union > 0, hits / union.clamp(min=1), torch.full_like(hits, float("nan")))
        return {"iou": iou.float(), "miou": float(iou.nanmean()), "pixel_accuracy": float(hits.sum() / total)}

    def reset(self) -> None:
        self._counts.reset()
        self._updated = False

