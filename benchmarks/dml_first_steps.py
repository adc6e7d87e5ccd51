"""What DML's teacher, feedback and selection do in the first steps of training (issue 14's investigation).

Runs core's ``MetaFeedback`` on the CPU reproduction's CIFAR-10 setting (40% symmetric noise,
``recipes/configs/noisy_labels_cifar10_cpu.yaml``, ResNet-8 student and teacher, SGD 0.05) for a few
hundred steps and prints, every ``--every`` steps:

- ``h``: the student's feedback of that step; ``sum_h``: its plain running sum (eq. 8 as printed) and
  ``sum_gh``: the sum of ``gamma h`` (Algorithm 2, line 9), the part of the loss threshold above eps0;
- ``R``: mean and max of the per-class ratios R_t(c); ``selected``: the share of the batch in D~ and
  ``precision``: the share of D~ whose observed label is the clean one (diagnostics only);
- ``pseudo_top``: the share of the batch's pseudo labels in their most frequent class (1.0: the
  teacher has collapsed onto one class) and ``pseudo_acc``: the share equal to the clean label.

Options are MetaFeedback's: ``--alpha``, ``--group-by``, ``--warmup-steps``, ``--epsilon0``.

    METALOSS_DATA=../shared/data python benchmarks/dml_first_steps.py [--alpha 8] [--group-by teacher]
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import torch
from accelerate import Accelerator

from metaloss.core import MetaFeedback
from metaloss.core.harness.config import apply_config_file, resolve_config
from metaloss.core.harness.launch import discover_recipes
from metaloss.vision.models.create import create_model
from metaloss.vision.noisy_data import make_noisy_data
from metaloss.vision.training import make_optimizer, train_batches

CONFIG = Path("packages/vision/src/metaloss/vision/recipes/configs/noisy_labels_cifar10_cpu.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--train-limit", type=int, default=5000, help="images of the pool (as the recipe's)")
    parser.add_argument("--alpha", type=float, default=0.0)
    parser.add_argument("--group-by", default="label", choices=["label", "teacher"])
    parser.add_argument("--warmup-steps", type=int, default=40)
    parser.add_argument("--epsilon0", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not os.environ.get("METALOSS_DATA"):
        parser.error("set METALOSS_DATA to a data root holding cifar10/")
    recipe = discover_recipes()["noisy_labels"]
    cfg = resolve_config(apply_config_file(recipe.load_defaults(), CONFIG),
                         [f"data.train_limit={args.train_limit}", "data.val_size=500", "meta.size=0"])
    data, truth = make_noisy_data(cfg, args.seed)
    torch.manual_seed(args.seed)
    student, teacher = create_model(cfg["model"]["arch"], data), create_model(cfg["model"]["arch"], data)
    optim = {**cfg["optim"], "schedule": "cosine"}  # the schedule is not stepped in a few hundred steps
    student_optimizer, _ = make_optimizer(student, optim, 1)
    teacher_optimizer, _ = make_optimizer(teacher, optim, 1)
    feedback = MetaFeedback(teacher, teacher_optimizer, data.num_classes, epsilon0=args.epsilon0,
                            alpha=args.alpha, group_by=args.group_by, warmup_steps=args.warmup_steps)
    print(f"# {vars(args)}")
    print("| step | h | sum_h | sum_gh | R mean | R max | selected | precision | pseudo_top | pseudo_acc |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    accelerator, step, sum_h = Accelerator(cpu=True), 0, 0.0
    for epoch in itertools.count():
        for idx, x in train_batches(data.train, cfg["optim"]["batch_size"], workers=0, seed=args.seed,
                                    epoch=epoch, accelerator=accelerator):
            out = feedback.step(student, student_optimizer, x, data.train.labels[idx])
            sum_h += out.feedback if step >= args.warmup_steps else 0.0  # R_t(c) waits in warm-up
            if step % args.every == 0 or step == args.steps - 1:
                clean = ~truth.corrupted[idx]
                top = torch.bincount(out.pseudo_labels, minlength=data.num_classes).max() / len(idx)
                precision = float(clean[out.selected].float().mean()) if out.selected.any() else float("nan")
                print(f"| {step} | {out.feedback:.3f} | {sum_h:.2f} | {feedback.accumulated_feedback:.3f} | "
                      f"{float(feedback.ratios.mean()):.2f} | {float(feedback.ratios.max()):.2f} | "
                      f"{float(out.selected.float().mean()):.2f} | {precision:.2f} | {float(top):.2f} | "
                      f"{float((out.pseudo_labels == truth.labels[idx]).float().mean()):.2f} |", flush=True)
            step += 1
            if step == args.steps:
                return


if __name__ == "__main__":
    main()
