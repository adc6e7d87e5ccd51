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

from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from metaloss.core import AMAL, Lookahead, cross_entropy, epoch_batches, kd_loss, train_epochs
from metaloss.core.launch import Recipe
from metaloss.core.runs import Run, seed_everything

from ..data import DigitsSplits, load_digits_splits
from ..models.mlp import MLP
from ..noise import symmetric_noise

METHODS = ("ce", "kd", "amal")


def main(run: Run) -> None:
    cfg = run.config
    unknown = sorted(set(cfg["methods"]) - set(METHODS))
    if unknown:
        raise ValueError(f"methods must be drawn from {list(METHODS)}, got unknown {unknown}")
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
        _plot_lambdas(lambda_tables, run.dir / "plots" / "amal_lambda_hist.png")


def _train_teacher(run: Run, accelerator: Accelerator, splits: DigitsSplits, seed: int) -> MLP:
    cfg = run.config
    unit = run.unit("teacher", seed)
    seed_everything(seed)
    teacher = MLP(64, 10, cfg["teacher"]["hidden"], cfg["teacher"]["depth"], cfg["teacher"]["dropout"])
    if unit.done:
        teacher.load_state_dict(unit.load_checkpoint()["best_model"])
    else:
        result = _fit(run, accelerator, unit, teacher, splits, splits.teacher_train,
                      lambda z, pos: cross_entropy(z, splits.labels[splits.teacher_train][pos]).mean(),
                      cfg["teacher"]["epochs"])
        teacher.load_state_dict(result.pop("best_model"))
        unit.finish(result)
    return teacher.to(accelerator.device).eval()


def _train_student(run, accelerator, splits, seed, method, labels, teacher_logits, masks):
    """Train one student on (possibly noisy) ``labels``; return AMAL's lambda table, else None."""
    cfg = run.config
    unit = run.unit(method, seed)
    seed_everything(seed)
    student = MLP(64, 10, cfg["student"]["hidden"], cfg["student"]["depth"], cfg["student"]["dropout"])
    tau, lambda_a = cfg["kd"]["tau"], cfg["kd"]["lambda_a"]
    amal = None
    if method == "amal":
        a = cfg["amal"]
        amal = AMAL(len(labels), 1, lr=a["lr"], every=a["every"], unit=a["unit"],
                    inner_steps=a["inner_steps"], init=a["init"], mode=a["mode"])
    if unit.done:
        if amal is not None:
            amal.load_state_dict(unit.load_checkpoint()["amal"])
            return amal.weights.table.cpu()
        return None

    def losses(z, pos):  # (B, 2): CE on the true label, KD against the teacher
        return torch.stack([cross_entropy(z, labels[pos].to(z.device)),
                            kd_loss(z, teacher_logits[pos].to(z.device), tau)], dim=1)

    def loss_fn(z, pos):
        per_example = losses(z, pos)
        if method == "ce":
            return per_example[:, 0].mean()
        if method == "kd":
            return ((1 - lambda_a) * per_example[:, 0] + lambda_a * per_example[:, 1]).mean()
        return amal.loss(pos.to(z.device), per_example)

    result = _fit(run, accelerator, unit, student, splits, splits.student_train, loss_fn,
                  cfg["student"]["epochs"], amal=amal, amal_losses=losses)
    result.pop("best_model")
    if amal is not None:
        table = amal.weights.table.cpu()
        trust = table[:, 1] - table[:, 0]  # lambda_a - lambda_p: reliance on the teacher
        for name, mask in masks.items():
            if mask.any():
                result[f"trust_{name}"] = float(trust[mask].mean())
            if (~mask).any():
                result[f"trust_not_{name}"] = float(trust[~mask].mean())
    unit.finish(result)
    return None if amal is None else table


def _fit(run, accelerator, unit, model, splits, train_idx, loss_fn, epochs, amal=None, amal_losses=None):
    """SGD + cosine over ``train_idx``; ``loss_fn(logits, positions)`` gives the batch loss."""
    o = run.config["optim"]
    device = accelerator.device
    model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"],
                                weight_decay=o["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    prepared, prepared_optimizer = accelerator.prepare(model, optimizer)
    images = splits.images.to(device)
    x_train = images[train_idx]
    val = (images[splits.val], splits.labels[splits.val].to(device))
    test = (images[splits.test], splits.labels[splits.test].to(device))

    def batches(epoch):
        return epoch_batches(len(train_idx), o["batch_size"], seed=unit.seed, epoch=epoch,
                             rank=accelerator.process_index, world_size=accelerator.num_processes)

    def epoch_fn(epoch: int) -> dict:
        metrics = {"lr": optimizer.param_groups[0]["lr"]}
        if amal is not None and amal.due(epoch):
            metrics |= amal.meta_phase(
                accelerator.unwrap_model(prepared),
                lambda: ((pos.to(device), x_train[pos],
                          lambda z, pos=pos: amal_losses(z, pos)) for pos in batches(epoch)),
                [val], lookahead=Lookahead.from_optimizer(optimizer),
            )
        prepared.train()
        total, count = 0.0, 0
        for pos in batches(epoch):
            loss = loss_fn(prepared(x_train[pos]), pos)
            prepared_optimizer.zero_grad()
            accelerator.backward(loss)
            prepared_optimizer.step()
            total, count = total + loss.item() * len(pos), count + len(pos)
        scheduler.step()
        return {**metrics, "train_loss": total / max(count, 1),
                "val_acc": _accuracy(prepared, *val), "test_acc": _accuracy(prepared, *test)}

    stateful = {"optimizer": optimizer, "scheduler": scheduler}
    if amal is not None:
        stateful["amal"] = amal.weights
    return train_epochs(unit, model=accelerator.unwrap_model(prepared), stateful=stateful,
                        epochs=epochs, epoch_fn=epoch_fn, log=run.log,
                        progress=lambda it: run.progress(it, desc=f"{unit.method} seed {unit.seed}"))


@torch.no_grad()
def _accuracy(model, x, y) -> float:
    was_training = model.training
    model.eval()
    acc = float((model(x).argmax(1) == y).float().mean())
    model.train(was_training)
    return acc


def _plot_lambdas(tables, path: Path) -> None:
    """AMAL paper Fig. 2 analogue: lambda_a - lambda_p split by label noise and by teacher error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trust = torch.cat([t[:, 1] - t[:, 0] for t, _ in tables]).numpy()
    bins = np.linspace(trust.min(), trust.max() + 1e-6, 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = (("label_noisy", "training label corrupted", "label clean"),
              ("teacher_wrong", "teacher wrong", "teacher right"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for ax, (key, yes, no) in zip(axes, panels):
        mask = torch.cat([m[key] for _, m in tables]).numpy()
        for selected, label in ((~mask, no), (mask, yes)):
            if selected.any():
                ax.hist(trust[selected], bins=bins, alpha=0.6, density=True,
                        label=f"{label} (n={selected.sum()})")
        ax.set_xlabel(r"$\lambda_a - \lambda_p$ at the end of training")
        ax.set_ylabel("density")
        ax.legend()
    fig.suptitle("AMAL: per-example trust in the teacher (all seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


RECIPE = Recipe(
    name="kd_digits",
    description="CE vs KD vs AMAL: MLP teacher -> 8-unit student, UCI digits, 40% label noise (~30 s)",
    default_config=Path(__file__).with_name("kd_digits.yaml"),
    main=main,
)
