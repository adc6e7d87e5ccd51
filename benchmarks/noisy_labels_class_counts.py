"""Examples per class of a noisy_labels run's training, validation and meta splits, per seed.

The setting is rebuilt from the run folder's saved config (``make_noisy_data`` is deterministic).
Counts of the labels each method sees (the noisy ones for training and validation), so a reader can
tell how many validation examples stand behind each class of a balanced accuracy.

    python benchmarks/noisy_labels_class_counts.py results/noisy_labels_cifar10_cpu/longtail
"""

from __future__ import annotations

import sys

import torch

from metaloss.core.harness import open_run
from metaloss.vision.noisy_data import make_noisy_data


def main() -> None:
    cfg = open_run(sys.argv[1]).config
    print("| seed | split | total | per class |\n|---|---|---|---|")
    for seed in cfg["seeds"]:
        data, _ = make_noisy_data(cfg, seed)
        splits = (("train", data.train), ("val", data.val), ("meta", data.meta))
        for name, split in ((n, s) for n, s in splits if s is not None):  # no meta set when meta.size = 0
            counts = torch.bincount(split.labels, minlength=data.num_classes).tolist()
            print(f"| {seed} | {name} | {len(split)} | {counts} |")


if __name__ == "__main__":
    main()
