"""PSPNet with per-pixel CE vs with the DLN as its per-pixel loss (L2T-DLN supplement §2 and §6).

Per seed: the COCO128 train2017 images with masks (or VOC train) split into training images, the
teacher's meta images and the selection images; COCO128 val2017 (or VOC val) is the test set.
Per method one unit (``training.fit_dense``): ``standard`` trains on per-pixel CE (main head +
0.4 x auxiliary head); ``dln`` and ``l2t_dln`` put the DLN over every labelled pixel's C - 1
1-vs-1 pairs in its place, adjusted by Adam or by the LSTM teacher from the main head's per-pixel
CE on the meta images. The epoch is selected by mIoU on the selection images; results hold mIoU
and pixel accuracy there, on the test set and on the training images.
``plots/segmentations_<method>.png`` shows a few selection images, their ground truth and the
selected model's masks (first seed), as the supplement's Figure 2 does.
"""

from __future__ import annotations

from functools import partial

from metaloss.core.harness import Run

from ..data import (
    IGNORE_INDEX,
    SegmentationImages,
    collate_segmentation,
    denormalize,
    segmentation_transforms,
    voc_segmentation,
)
from ..losses import pixel_cross_entropy, pspnet_loss
from ..metrics import ConfusionMatrix
from ..models import PSPNet, normalisation
from ..plots import plot_segmentations
from ..training import DenseTask, evaluating, run_methods, split_opener


def segmentation_task(cfg: dict, num_classes: int) -> DenseTask:
    """PSPNet on the config's backbone, its per-pixel loss and mIoU."""
    model_cfg, loss_cfg = cfg["model"], cfg["loss"]
    loss = partial(pspnet_loss, aux_weight=loss_cfg["aux_weight"], loss_stride=loss_cfg["loss_stride"])

    def teacher_loss(outputs, masks):  # the main head's per-pixel CE
        main = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return loss(main, masks, pixel_loss=pixel_cross_entropy).mean()

    return DenseTask(
        new_model=lambda: PSPNet(num_classes, backbone=model_cfg["backbone"],
                                 pretrained=model_cfg["pretrained"], head_width=model_cfg["head_width"],
                                 aux_width=model_cfg["aux_width"],
                                 freeze_backbone=model_cfg["freeze_backbone"]),
        standard_loss=loss, objective=lambda outputs, masks, dln: loss(outputs, masks, pixel_loss=dln),
        teacher_loss=teacher_loss, evaluate=partial(evaluate_segmenter, num_classes=num_classes),
        select="miou", collate=collate_segmentation,
        dln_kwargs={"class_dim": 1, "ignore_index": IGNORE_INDEX},
    )


def evaluate_segmenter(model: PSPNet, loader, num_classes: int) -> dict:
    """mIoU (over the classes present in predictions or ground truth) and pixel accuracy (eval mode)."""
    counts = ConfusionMatrix(num_classes, IGNORE_INDEX)
    with evaluating(model) as device:
        for images, masks in loader:
            counts.update(model(images.to(device)).argmax(1), masks.to(device))
    result = counts.compute()
    return {"miou": result["miou"], "pixel_accuracy": result["pixel_accuracy"]}


def main(run: Run) -> None:
    cfg = run.config
    mean, std = normalisation(cfg["model"]["backbone"])
    open_split = split_opener(cfg["data"], (mean, std), transforms=segmentation_transforms,
                              coco128=SegmentationImages, voc=voc_segmentation)
    names = open_split("test", False).names

    def draw(model: PSPNet, images, masks, method: str) -> None:
        plot_segmentations(denormalize(images, mean, std), model(images).argmax(1), masks, names,
                           run.dir / "plots" / f"segmentations_{method}.png")

    run_methods(run, segmentation_task(cfg, len(names)), open_split, draw)
