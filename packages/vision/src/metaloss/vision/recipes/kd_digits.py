"""Default recipe: CE vs KD vs AMAL for a tiny student of a large teacher, on digits.

The teacher (an MLP of 3 x 256 units) learns from its own split of the UCI
handwritten digits; the student (one hidden layer of 8 units, ~600 weights)
learns from another split with noisy labels (40% symmetric by default) and the
teacher's soft labels. AMAL (AAAI 2023) learns per example how much to trust
each of the two; the results report lambda_a - lambda_p ("trust" in the teacher)
on corrupted vs clean labels and where the teacher is wrong vs right.
Test accuracy is reported at the validation-selected epoch, mean +- std over seeds.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator

from metaloss.core import AMAL, cross_entropy, epoch_batches, trust_by_group
from metaloss.core.harness import Run, seed_everything
from metaloss.vision_catalog import KD_DIGITS_MIXING as MIXING

from ..data import DigitsSplits, load_digits_splits
from ..distillation import distillation_losses, mixed_loss
from ..models.mlp import MLP
from ..noise import symmetric_noise
from ..plots import plot_lambda_histograms
from ..training import accuracy, fit


def main(run: Run) -> None:
    cfg = run.config
    accelerator = Accelerator()
    lambda_tables = []
    for seed in cfg["seeds"]:
        splits = load_digits_splits(seed, **{k: v for k, v in cfg["data"].items() if k != "label_noise"})
        teacher = _train_teacher(run, accelerator, splits, seed)
        with torch.no_grad():
            teacher_logits = teacher(splits.images[splits.student_train].to(accelerator.device)).cpu()
        labels, label_noisy = symmetric_noise(
            splits.labels[splits.student_train], cfg["data"]["label_noise"], 10, seed=seed
        )
        masks = {"label_noisy": label_noisy,
                 "teacher_wrong": teacher_logits.argmax(1) != splits.labels[splits.student_train]}
        for method in cfg["methods"]:
            table = _train_student(run, accelerator, splits, seed, method, labels, teacher_logits, masks)
            if table is not None:
                lambda_tables.append((table, masks))
    if run.is_main and lambda_tables:
        plot_lambda_histograms(lambda_tables, run.dir / "plots", names={
            "label_noisy": ("training label corrupted", "label clean"),
            "teacher_wrong": ("teacher wrong", "teacher right")})


def _train_teacher(run: Run, accelerator: Accelerator, splits: DigitsSplits, seed: int) -> MLP:
    cfg = run.config
    unit = run.unit("teacher", seed)
    seed_everything(seed)
    teacher = MLP(64, 10, cfg["teacher"]["hidden"], cfg["teacher"]["depth"], cfg["teacher"]["dropout"])
    teacher_labels = splits.labels[splits.teacher_train]
    unit.train_or_load(teacher, lambda: _fit(
        run, accelerator, unit, teacher, splits, splits.teacher_train,
        lambda z, pos: cross_entropy(z, teacher_labels[pos]).mean(), cfg["teacher"]["epochs"]))
    return teacher.to(accelerator.device).eval()


def _train_student(run, accelerator, splits, seed, method, labels, teacher_logits, masks):
    """Train one student on (possibly noisy) ``labels``; return AMAL's lambda table, else None."""
    cfg = run.config
    unit = run.unit(method, seed)
    seed_everything(seed)
    student = MLP(64, 10, cfg["student"]["hidden"], cfg["student"]["depth"], cfg["student"]["dropout"])
    amal = None
    if method == "amal":
        a = cfg["amal"]
        amal = AMAL(len(labels), 1, lr=a["lr"], every=a["every"], unit=a["unit"],
                    inner_steps=a["inner_steps"], init=a["init"], mode=a["mode"])

    def losses(z, pos):  # (B, 2): CE on the training label, KD against the teacher
        return distillation_losses(z, labels[pos].to(z.device), [teacher_logits[pos].to(z.device)],
                                   cfg["kd"]["tau"])

    def loss_fn(z, pos):
        return mixed_loss(losses(z, pos), MIXING[method], pos, amal=amal, lambda_a=cfg["kd"]["lambda_a"])

    def train():
        selected = _fit(run, accelerator, unit, student, splits, splits.student_train, loss_fn,
                        cfg["student"]["epochs"], amal=amal, amal_losses=losses)
        if amal is not None:
            selected.metrics |= trust_by_group(amal.weights.table.cpu(), masks)
        return selected

    unit.train_or_load(student, train, restore=None if amal is None else {"amal": amal})
    return None if amal is None else amal.weights.table.cpu()


def _fit(run, accelerator, unit, model, splits, train_idx, loss_fn, epochs, amal=None, amal_losses=None):
    """SGD over ``train_idx`` (in memory); losses get positions into ``train_idx``."""
    device = accelerator.device
    images = splits.images.to(device)
    x_train = images[train_idx]
    val = (images[splits.val], splits.labels[splits.val].to(device))
    test = (images[splits.test], splits.labels[splits.test].to(device))

    def batches(epoch):
        positions = epoch_batches(len(train_idx), run.config["optim"]["batch_size"], seed=unit.seed,
                                  epoch=epoch, rank=accelerator.process_index,
                                  world_size=accelerator.num_processes)
        return ((pos, x_train[pos]) for pos in positions)

    by_position = None if amal_losses is None else (lambda z, pos, x: amal_losses(z, pos))
    return fit(run, unit, model, accelerator=accelerator, train_batches=batches,
               loss_fn=lambda z, pos, x: loss_fn(z, pos), optim=run.config["optim"], epochs=epochs,
               evaluate=lambda m: {"val_acc": accuracy(m, [val]), "test_acc": accuracy(m, [test])},
               amal=amal, amal_losses=by_position, amal_val_batches=[val])

