"""YOLOv3 with its standard loss vs with the DLN as its class loss (L2T-DLN supplement §4), and
vs AMAL's per-image weights of the loss's three parts (AMAL eq. 2 over (ℓ_loc, ℓ_cls, ℓ_conf)).

Per seed: COCO128 train2017 (or VOC train) split into training images, the teacher's meta images
and the selection images; COCO128 val2017 (or VOC val) is the test set. Per method one unit
(``training.fit_dense``): ``standard`` trains on eqs. 28-30; ``dln`` and ``l2t_dln`` replace eq.
29's BCE by the DLN over each assigned anchor's 1-vs-1 class pairs, adjusted by Adam or by the LSTM
teacher from the standard loss on the meta images; ``amal`` trains on w_loc ℓ_loc + w_cls ℓ_cls +
w_conf ℓ_conf per image, the weights (from 1) learned from the same meta images. The epoch is
selected by mAP@0.5 on the selection images; results hold mAP@0.5 and mAP@0.5:0.95 there, on the
test set and on the training images. ``plots/detections_<method>.png`` draws the selected model's
boxes on a few selection images beside the ground truth (first seed), as the supplement's Figure 2
does for segmentation.
"""

from __future__ import annotations

from functools import partial

from metaloss.core.harness import Run

from ..data import DetectionImages, collate_detection, denormalize, detection_transforms, voc_detection
from ..losses import yolo_loss
from ..metrics import BoxMAP
from ..models import YOLOv3, normalisation
from ..plots import plot_detections
from ..training import DenseTask, evaluating, run_methods, split_opener


def detection_task(cfg: dict, num_classes: int) -> DenseTask:
    """YOLOv3 on the config's backbone, its loss (eqs. 28-30) and mAP."""
    model_cfg, loss = cfg["model"], partial(yolo_loss, **cfg["loss"])

    def standard(outputs, targets):
        return loss(outputs, targets).total()

    def with_dln(outputs, targets, dln):
        return loss(outputs, targets, cls_loss=dln).total()

    return DenseTask(
        new_model=lambda: YOLOv3(num_classes, backbone=model_cfg["backbone"],
                                 pretrained=model_cfg["pretrained"], width=model_cfg["width"],
                                 freeze_backbone=model_cfg["freeze_backbone"]),
        standard_loss=standard, objective=with_dln,
        teacher_loss=lambda outputs, targets: standard(outputs, targets).mean(),
        evaluate=partial(evaluate_detector, detect=cfg["detect"]), select="map_50",
        collate=collate_detection, dln_kwargs={"class_dim": 1, "ignore_index": None},
        parts=lambda outputs, targets: loss(outputs, targets).per_image(), part_names=("loc", "cls", "conf"),
    )


def evaluate_detector(model: YOLOv3, loader, detect: dict) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 of ``model``'s detections over ``loader`` (eval mode, restored)."""
    metric = BoxMAP()
    with evaluating(model) as device:
        for images, targets in loader:
            metric.update(model.detect(model(images.to(device)), **detect), targets)
    return metric.compute()


def main(run: Run) -> None:
    cfg = run.config
    mean, std = normalisation(cfg["model"]["backbone"])
    open_split = split_opener(cfg["data"], (mean, std), transforms=detection_transforms,
                              coco128=DetectionImages, voc=voc_detection)
    names = open_split("test", False).names

    def draw(model: YOLOv3, images, targets, method: str) -> None:
        plot_detections(denormalize(images, mean, std), model.detect(model(images), **cfg["detect"]), targets,
                        names, run.dir / "plots" / f"detections_{method}.png")

    run_methods(run, detection_task(cfg, len(names)), open_split, draw)
