"""Why WDUE's paper-scale config was not run on CPU: one training step of each network.

Times one SGD step (forward, cross-entropy, backward, update) at the configs' batch
size for the teacher and student of ``wdue.yaml`` (the paper's MobileNet x2 -> x1)
and of ``wdue_cifar10_cpu.yaml`` (ResNet-20 -> ResNet-8), median of the repeats
after a warm-up step, and the hours one step-4 run of the paper config would take:
distill_epochs x ceil((labeled + unlabeled) / batch) student steps. Random inputs:
the cost does not depend on pixel values.

    python benchmarks/wdue_step_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import timm
import torch
import yaml

import metaloss.vision  # noqa: F401  (registers the CIFAR models in timm)

CONFIGS = Path(__file__).resolve().parents[1] / "packages/vision/src/metaloss/vision/recipes"
PAPER, CPU = CONFIGS / "wdue.yaml", CONFIGS / "configs/wdue_cifar10_cpu.yaml"


def step_seconds(arch: str, batch: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    times = []
    for _ in range(repeats + 1):  # the first step warms up and is dropped
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    paper = yaml.safe_load(PAPER.read_text())
    batch = paper["optim"]["batch_size"]
    print(f"torch threads: {torch.get_num_threads()}, batch {batch}\n")
    print("| config | network | arch | s per step |\n|---|---|---|---|")
    seconds = {}
    for path in (PAPER, CPU):
        cfg = yaml.safe_load(path.read_text())
        for role in ("teacher", "student"):
            arch = cfg[role]["arch"]
            seconds[arch] = step_seconds(arch, batch, args.repeats)
            print(f"| {path.name} | {role} | {arch} | {seconds[arch]:.2f} |")
    steps = paper["student"]["distill_epochs"] * math.ceil(
        (paper["data"]["labeled"] + paper["data"]["unlabeled"]) / batch)
    hours = steps * seconds[paper["student"]["arch"]] / 3600
    print(f"\none step-4 run of {PAPER.name} (one method, one seed): {steps} steps, about {hours:.1f} h")


if __name__ == "__main__":
    main()
