"""End-to-end wall time of AMAL (L = 10 epochs, last-layer mode) relative to plain KD (issue 3).

Both train the same ResNet-8 student with the kd recipe's own loop (``distillation.fit_student``) on the
same CIFAR-10 images, the same schedule and the same (cached) teacher logits, for
``2 L + 1`` epochs, so AMAL runs its meta phase twice: the rate of a long run (one phase
per L epochs). The two are run alternately (KD, AMAL, KD, AMAL, ...) in one process so
that machine load hits both; the ratio of the medians is printed. Target: <= 1.1x.

    python benchmarks/amal_kd_overhead.py [--data-root DIR] [--train-limit 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from metaloss.core.harness import Run, seed_everything
from metaloss.core.harness.config import resolve_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.vision.data import fixture_root
from metaloss.vision.distillation import fit_student, make_amal, make_setting, scaled_epochs
from metaloss.vision.models import create_model


class _FixedGuide(torch.nn.Module):
    """A stand-in teacher: logits from a fixed random linear map (its cost is not what is measured)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.map = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, num_classes))

    def forward(self, x):
        return self.map(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=str(fixture_root()))
    parser.add_argument("--train-limit", type=int, default=2000)
    parser.add_argument("--every", type=int, default=10, help="L, in epochs")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    epochs = 2 * args.every + 1
    overrides = [f"data.root={args.data_root}", f"data.train_limit={args.train_limit}", "data.val_size=0",
                 "data.test_limit=1000", "data.workers=2", "kd.cache_guides=true", f"student.epochs={epochs}",
                 f"amal.every={args.every}", "amal.mode=last_layer", "optim.schedule=cosine", "seeds=[0]"]
    config = resolve_config(discover_recipes()["kd"].load_defaults(), overrides)
    setting = make_setting(config, 0)
    accelerator = Accelerator()
    seed_everything(0)
    guide = _FixedGuide(setting.splits.num_classes).eval()
    times = {"kd": [], "amal": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for method in ("kd", "amal"):
                run = Run(Path(tmp) / f"{method}-{repeat}", config, "kd")
                unit = run.unit(method, 0)
                seed_everything(0)
                student = create_model(config["student"]["arch"], setting.splits)
                amal = None
                if method == "amal":
                    amal = make_amal(config, len(setting.labels), 1, scaled_epochs(config))
                start = time.perf_counter()
                fit_student(run, accelerator, setting, unit, student, [guide], "amal" if amal else "fixed",
                            epochs, amal=amal)
                times[method].append(time.perf_counter() - start)
                print(f"{method} repeat {repeat}: {times[method][-1]:.1f} s", flush=True)
    kd, amal = statistics.median(times["kd"]), statistics.median(times["amal"])
    print(f"\n{len(setting.labels)} training images, {epochs} epochs, L = {args.every}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| KD (s) | AMAL last layer (s) | ratio (target <= 1.1) |")
    print("|---|---|---|")
    print(f"| {kd:.1f} | {amal:.1f} | {amal / kd:.3f}x |")


if __name__ == "__main__":
    main()
