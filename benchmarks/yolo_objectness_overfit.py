"""Does the detector learn? YOLOv3 fitted to the 9 training images of the committed COCO128 fixture,
with eq. 30's squared-error objectness and with YOLOv3's own binary cross-entropy, side by side.

The supplement writes ℓ_conf as a squared error of the objectness sigmoid o; YOLOv3 (Redmon & Farhadi
2018, §2.1) fits it by logistic regression. With the squared error, a positive anchor's gradient is
2 o (1 - o)^2, which vanishes while o is small (the start, and wherever the no-object anchors, 99.8%
of them, have pushed o down). This fits the same model (the recipe's CPU backbone and neck, the same
seed) to the same images with each form for ``--iterations`` full-batch SGD steps and prints the loss
parts and the mAP@0.5 on those training images (evaluation transforms) every ``--every`` steps.

    python benchmarks/yolo_objectness_overfit.py [--iterations 40] [--size 192] [--lr 0.001]
"""

from __future__ import annotations

import argparse

import torch

from metaloss.core.harness import seed_everything
from metaloss.detection_seg.data import DetectionImages, collate_detection, detection_transforms, fixture_root
from metaloss.detection_seg.losses import yolo_loss
from metaloss.detection_seg.metrics import BoxMAP
from metaloss.detection_seg.models import YOLOv3, normalisation

BACKBONE = "tf_efficientnet_lite0"


def fit(objectness: str, args) -> None:
    seed_everything(0)
    mean, std = normalisation(BACKBONE)
    root = fixture_root() / "coco128"
    train = DetectionImages(root, "train2017", detection_transforms(args.size, True, mean, std))
    plain = DetectionImages(root, "train2017", detection_transforms(args.size, False, mean, std))
    model = YOLOv3(train.num_classes, backbone=BACKBONE, pretrained="lite0_wheel", width=128)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    print(f"\nobjectness = {objectness}")
    for step in range(args.iterations + 1):
        if step % args.every == 0:
            model.eval()
            metric = BoxMAP()
            with torch.no_grad():
                images, targets = collate_detection([plain[i] for i in range(len(plain))])
                metric.update(model.detect(model(images)), targets)
            model.train()
            print(f"  step {step:3d}: training-image mAP@0.5 {metric.compute()['map_50']:.3f}", flush=True)
        if step == args.iterations:
            break
        images, targets = collate_detection([train[i] for i in range(len(train))])
        parts = yolo_loss(model(images), targets, objectness=objectness)
        loss = parts.total().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.every == 0:
            loc, cls, conf = parts.per_image().mean(0).tolist()
            print(f"  step {step:3d}: loss per image loc {loc:.2f}  cls {cls:.2f}  conf {conf:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--lr", type=float, default=0.001)
    args = parser.parse_args()
    for objectness in ("squared", "bce"):
        fit(objectness, args)


if __name__ == "__main__":
    main()
