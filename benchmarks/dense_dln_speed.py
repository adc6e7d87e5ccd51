"""Seconds per training iteration of the DLN variants of the detector and the segmenter, relative to the
standard loss, measured side by side in one process.

Rows per task, at the recipes' CPU defaults (YOLOv3 on EfficientNet-Lite0 at 320 px, batches of 8;
PSPNet on it at 128 px, loss_stride 8, batches of 4), on COCO128 images of the committed fixture
through the training transforms:
- ``standard``: forward, the model's own loss, backward, SGD step;
- ``dln``: the same step with the DLN as the class loss (``L2TDLN.train_student``, no teaching);
- ``l2t_dln`` teaching round / K: one ``L2TDLN.teach`` (the DLN's hypergradient through K look-ahead
  steps, the LSTM's update through K more, then the K real steps), divided by K: the cost per
  iteration when every window teaches (``teach_every=1``); with ``teach_every=n`` it is
  ((n - 1) x dln + teaching) / n;
- ``amal meta step (<mode>)`` (detection, whose loss has parts): one ``AMAL.meta_step``, the
  hypergradient of the eight images' (loc, cls, conf) weights through the optimiser's look-ahead
  step; a meta phase takes one per training batch every L epochs, so it adds (this / L) per iteration
  to the standard step.
Each row is the median of ``--repeats`` rounds, the rows taken in turn within each round after one
warm-up each, so that machine drift hits them alike. The process's peak resident memory after each
task is printed too (the teaching round holds the most: K steps differentiated twice).

    python benchmarks/dense_dln_speed.py [--tasks detection segmentation] [--k 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import platform
import resource
import statistics
import time
from functools import partial

import torch

from metaloss.core import L2TDLN, DynamicLossNetwork, Lookahead
from metaloss.core.harness.config import resolve_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.detection_seg.data import (
    DetectionImages,
    SegmentationImages,
    detection_transforms,
    fixture_root,
    segmentation_transforms,
)
from metaloss.detection_seg.models import normalisation
from metaloss.detection_seg.recipes.detection import detection_task
from metaloss.detection_seg.recipes.segmentation import segmentation_task
from metaloss.detection_seg.training import part_mixing

TASKS = {
    "detection": (detection_task, DetectionImages, detection_transforms),
    "segmentation": (segmentation_task, SegmentationImages, segmentation_transforms),
}


def batches(task, dataset_class, transforms, cfg, count):
    mean, std = normalisation(cfg["model"]["backbone"])
    data = dataset_class(fixture_root() / "coco128", "train2017",
                         transform=transforms(cfg["data"]["image_size"], True, mean, std))
    size = cfg["optim"]["batch_size"]
    return [task.collate([data[(i * size + j) % len(data)] for j in range(size)]) for i in range(count)]


def measure(name: str, k: int, repeats: int, overrides: list[str]) -> None:
    make_task, dataset_class, transforms = TASKS[name]
    cfg = resolve_config(discover_recipes()[name].load_defaults(), overrides)
    task = make_task(cfg, dataset_class(fixture_root() / "coco128", "train2017").num_classes)
    data = batches(task, dataset_class, transforms, cfg, k + 1)
    model = task.new_model().train()
    optim = cfg["optim"]
    optimizer = torch.optim.SGD(model.parameters(), lr=optim["lr"], momentum=optim["momentum"],
                                weight_decay=optim["weight_decay"])
    l2t = L2TDLN(DynamicLossNetwork(), teacher="lstm", val_loss=task.teacher_loss,
                 objective=task.objective, **task.dln_kwargs)
    snapshot = copy.deepcopy(model.state_dict())

    def standard():
        images, targets = data[0]
        loss = task.standard_loss(model(images), targets).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    rows = {"standard": (standard, 1),
            "dln": (lambda: l2t.train_student(model, optimizer, [data[0]]), 1),
            f"l2t_dln teaching round / {k}": (lambda: l2t.teach(model, optimizer, data[:k], data[k]), k)}
    if task.parts is not None:
        for mode in ("exact", "first_order"):
            step = partial(amal_meta_step, task, model, optimizer, data, cfg, mode)
            rows[f"amal meta step ({mode})"] = (step, 1)
    times = {row: [] for row in rows}
    for round_ in range(repeats + 1):
        for row, (step, per) in rows.items():
            model.load_state_dict(snapshot)  # every row starts from the same weights
            start = time.perf_counter()
            step()
            if round_:  # round 0 warms up
                times[row].append((time.perf_counter() - start) / per)
    base = statistics.median(times["standard"])
    size = cfg["data"]["image_size"]
    print(f"\n{name} ({cfg['model']['backbone']}, {size} px, batch {optim['batch_size']}):")
    for row, values in times.items():
        seconds = statistics.median(values)
        print(f"  {row:<32} {seconds:7.2f} s/iteration   {seconds / base:5.2f}x standard")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"  peak resident memory of the process so far: {peak:.1f} GiB")


def amal_meta_step(task, model, optimizer, data, cfg, mode: str) -> None:
    mixing = part_mixing(task, len(data[0][1]), cfg["amal"] | {"mode": mode})
    (images, targets), (val_images, val_targets) = data[0], data[-1]
    mixing.meta_step(model, torch.arange(len(targets)), images, partial(task.parts, targets=targets),
                     lookahead=Lookahead.from_optimizer(optimizer), val_inputs=val_images,
                     val_targets=val_targets, outer_loss=task.teacher_loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--k", type=int, default=3, help="look-ahead steps of a teaching round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe config overrides for every task (model.freeze_backbone=true)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
          f"K = {args.k}, median of {args.repeats}, overrides {args.overrides or 'none'}")
    for name in args.tasks:
        measure(name, args.k, args.repeats, args.overrides)


if __name__ == "__main__":
    main()
