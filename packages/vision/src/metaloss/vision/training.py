"""The supervised epoch that every vision recipe shares, around core's checkpointed loop.

``fit`` trains one model for one unit (method, seed) of a run: SGD with the
configured learning-rate schedule, an optional AMAL meta phase before every
L-th epoch (AMAL paper, Algorithm 1), the recipe's loss on each batch, and
validation/test accuracy after each epoch. ``metaloss.core.train_epochs``
around it checkpoints everything after each epoch and selects the epoch on
validation accuracy only.

Batches are addressed by dataset index: ``train_batches(epoch)`` yields
``(indices, inputs)`` and the loss looks up what it needs (labels, teacher
outputs, lambdas) by index, so the same loop serves in-memory tensors and
DataLoaders, one process or many.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from accelerate import Accelerator
from torch import nn

from metaloss.core import AMAL, Lookahead
from metaloss.core.harness import Run, Selected, Unit, predict, sgd_epoch, train_epochs

from .data import make_loader

Batches = Callable[[int], Iterable[tuple[torch.Tensor, object]]]
LossFn = Callable[[torch.Tensor, torch.Tensor, object], torch.Tensor]
StepFn = Callable[[torch.Tensor, torch.Tensor], float]  # (indices, inputs) -> the batch's loss
SCHEDULES = ("cosine", "multistep")


def make_optimizer(model: nn.Module, optim: Mapping, epochs: int):
    """SGD and its per-epoch schedule from an ``optim`` config section.

    Keys: ``lr``, ``momentum``, ``weight_decay``, ``schedule`` (``"cosine"`` or
    ``"multistep"``) and, for multistep, ``milestones`` (epochs) and ``gamma``.
    """
    schedule = optim.get("schedule", "cosine")
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    optimizer = torch.optim.SGD(model.parameters(), lr=optim["lr"], momentum=optim["momentum"],
                                weight_decay=optim["weight_decay"])
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    else:
        milestones = list(optim["milestones"])
        if milestones != sorted(milestones) or any(m < 1 for m in milestones):
            raise ValueError(f"optim.milestones must be increasing epochs >= 1, got {milestones}")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, optim["gamma"])
    return optimizer, scheduler


def train_batches(dataset, batch_size: int, *, workers: int, seed: int, epoch: int,
                  accelerator: Accelerator, indices: torch.Tensor | None = None):
    """This process's augmented ``(indices, images)`` batches of one epoch, ordered by (seed, epoch)."""
    loader = make_loader(dataset, batch_size, train=True, workers=workers, seed=seed, epoch=epoch,
                         rank=accelerator.process_index, world_size=accelerator.num_processes,
                         return_index=True, indices=indices)
    return ((idx, x) for idx, x, _ in loader)


def eval_batches(dataset, *, workers: int):
    """``(images, labels)`` batches of ``dataset`` in order, for evaluation (its transform is fixed)."""
    return make_loader(dataset, 512, train=False, workers=workers, seed=0, epoch=0)


def accuracy(model: nn.Module, batches: Iterable[tuple[object, torch.Tensor]], device=None, *,
             balanced: bool = False) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) over ``(inputs, labels)`` batches.

    ``balanced``: the mean over the classes present of each class's accuracy (balanced accuracy),
    which a long-tailed validation split needs to stand for a class-balanced test set.
    """
    right, truth = correct_predictions(model, batches, device)
    return balanced_share(right, truth) if balanced else float(right.mean())


def correct_predictions(model: nn.Module, batches: Iterable[tuple[object, torch.Tensor]],
                        device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass of ``model`` (in eval mode) over ``(inputs, labels)`` batches: float64 (N,) 1.0 where
    its top-1 prediction is right (float64: the exact fraction, as count / n), and the (N,) labels."""
    labels: list[torch.Tensor] = []

    def inputs():
        for x, y in batches:
            labels.append(y.cpu())
            yield x

    try:
        predicted = predict(model, inputs(), device).argmax(1)
    except ValueError as err:
        if not labels:
            raise ValueError("accuracy needs at least one labelled example, got none") from err
        raise
    truth = torch.cat(labels)
    return (predicted == truth).double(), truth


def balanced_share(right: torch.Tensor, truth: torch.Tensor) -> float:
    """The mean over the classes present in ``truth`` of the share of ``right`` in each."""
    return float(torch.stack([right[truth == c].mean() for c in truth.unique()]).mean())


def fit(
    run: Run,
    unit: Unit,
    model: nn.Module,
    *,
    accelerator: Accelerator,
    train_batches: Batches,
    loss_fn: LossFn | None = None,
    build_loss: Callable[[nn.Module, torch.optim.Optimizer], LossFn] | None = None,
    build_step: Callable[[nn.Module, torch.optim.Optimizer], StepFn] | None = None,
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    test: Callable[[nn.Module], float] | None = None,
    optim: Mapping,
    epochs: int,
    amal: AMAL | None = None,
    amal_losses: LossFn | None = None,
    amal_val_batches: Iterable[tuple[object, torch.Tensor]] = (),
    extra_state: Mapping[str, object] | None = None,
    on_epoch_start: Callable[[int], None] | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    val_key: str = "val_acc",
) -> Selected:
    """Train ``model`` for ``unit`` and return what was selected on validation data.

    Args:
        train_batches: ``epoch -> (indices, inputs)`` batches of this process.
        loss_fn: ``(logits, indices, inputs) -> scalar`` training loss.
        build_loss: instead of ``loss_fn``, ``(model, optimizer) -> loss_fn`` for losses
            that look ahead along the optimizer's next step (L2RW, MW-Net); ``model``
            is the plain (unwrapped) model.
        build_step: instead of a loss, ``(model, optimizer) -> step(indices, inputs) -> loss``
            for methods that take the model's step themselves (DML's ``MetaFeedback``); it is
            given the plain model, so it keeps the processes in step itself (as ``MetaFeedback``
            averages its gradients over them). A step may return None while it gathers batches
            (L2T-DLN's window of K); ``train_loss`` averages the losses that were returned.
        evaluate: ``model -> {"val_acc": ..., "test_acc": ...}`` after each epoch.
        test: ``model -> test accuracy``; if given, ``evaluate`` returns only
            ``val_acc`` and the test set is measured only at new validation bests.
        optim: the ``optim`` config section (see ``make_optimizer``).
        amal: if given, its meta phase runs when ``amal.due(epoch)``, with
            ``amal_losses(logits, indices, inputs) -> (B, 1 + K)`` per-example
            losses on the training batches and ``amal_val_batches`` as the
            validation set; its table is checkpointed with the model.
        extra_state: more objects with ``state_dict`` to checkpoint.
        on_epoch_start: called as ``(epoch)`` before each epoch's batches (e.g. a
            schedule that the loss reads).
        on_epoch_end: called as ``(epoch, model)`` after each epoch (e.g. to keep
            early-stopped snapshots).
        val_key: the metric of ``evaluate`` that selects the epoch.
    Returns:
        ``train_epochs``' ``Selected``: best epoch, val and test accuracy there,
        and the selected weights.
    """
    if amal is not None and amal_losses is None:
        raise ValueError("fit with amal needs amal_losses (the per-example loss matrix)")
    if sum(f is not None for f in (loss_fn, build_loss, build_step)) != 1:
        raise ValueError("fit needs exactly one of loss_fn, build_loss and build_step")
    device = accelerator.device
    model.to(device)
    optimizer, scheduler = make_optimizer(model, optim, epochs)
    prepared, prepared_optimizer = accelerator.prepare(model, optimizer)
    plain = accelerator.unwrap_model(prepared)
    if build_loss is not None:
        loss_fn = build_loss(plain, optimizer)
    step_fn = build_step(plain, optimizer) if build_step is not None else None
    val_batches = [(x.to(device), y.to(device)) for x, y in amal_val_batches] if amal else []

    def epoch_fn(epoch: int) -> dict:
        metrics = {"lr": optimizer.param_groups[0]["lr"]}
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        if amal is not None and amal.due(epoch):
            metrics |= amal.meta_phase(
                plain,
                lambda: ((idx.to(device), x.to(device),
                          lambda z, idx=idx, x=x: amal_losses(z, idx, x)) for idx, x in train_batches(epoch)),
                val_batches, lookahead=Lookahead.from_optimizer(optimizer),
            )
        prepared.train()

        def batch_loss(idx, x):
            x = x.to(device)
            return loss_fn(prepared(x), idx, x)

        if step_fn is not None:
            losses = [(step_fn(idx, x.to(device)), len(idx)) for idx, x in train_batches(epoch)]
            losses = [(v, n) for v, n in losses if v is not None]
            train_loss = sum(v * n for v, n in losses) / max(sum(n for _, n in losses), 1)
        else:
            train_loss = sgd_epoch(train_batches(epoch), batch_loss, [prepared_optimizer],
                                   backward=accelerator.backward)
        scheduler.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch, plain)
        return {**metrics, "train_loss": train_loss, **evaluate(prepared)}

    stateful = {"optimizer": optimizer, "scheduler": scheduler, **(extra_state or {})}
    if amal is not None:
        stateful["amal"] = amal.weights
    return train_epochs(unit, model=plain, stateful=stateful, epochs=epochs, epoch_fn=epoch_fn,
                        val_key=val_key,
                        log=run.log, test_fn=None if test is None else (lambda: test(prepared)),
                        progress=lambda it: run.progress(it, desc=f"{unit.method} seed {unit.seed}"))


def fit_images(run: Run, unit: Unit, model: nn.Module, *, accelerator: Accelerator, train_set, splits,
               optim: Mapping, epochs: int, workers: int, indices: torch.Tensor | None = None,
               test_every_epoch: bool = False, monitor: Callable[[], Mapping[str, float]] | None = None,
               select_balanced: bool = False, **fit_kwargs) -> Selected:
    """``fit`` on images: augmented batches of ``train_set`` (only its ``indices`` if given), accuracy
    on ``splits.val`` after every epoch and on ``splits.test`` at new validation bests (after every
    epoch with ``test_every_epoch``, for learning curves; selection still reads validation only).

    ``monitor()``, if given, adds its metrics to each epoch's log (e.g. what a method selected).
    ``select_balanced``: select on the validation split's balanced accuracy (``val_balanced_acc``).
    The validation batches also serve AMAL's meta phase (``amal=`` in ``fit_kwargs``).
    """
    device = accelerator.device
    val = list(eval_batches(splits.val, workers=workers))

    def batches(epoch: int):
        return train_batches(train_set, optim["batch_size"], workers=workers, seed=unit.seed, epoch=epoch,
                             accelerator=accelerator, indices=indices)

    def test(m) -> float:
        return accuracy(m, eval_batches(splits.test, workers=workers), device)

    def evaluate(m) -> dict:
        right, truth = correct_predictions(m, val, device)  # one pass serves both accuracies
        metrics = {"val_acc": float(right.mean())} | (dict(monitor()) if monitor else {})
        if select_balanced:
            metrics["val_balanced_acc"] = balanced_share(right, truth)
        return metrics | {"test_acc": test(m)} if test_every_epoch else metrics

    return fit(run, unit, model, accelerator=accelerator, train_batches=batches, evaluate=evaluate,
               test=None if test_every_epoch else test, optim=optim, epochs=epochs, amal_val_batches=val,
               val_key="val_balanced_acc" if select_balanced else "val_acc", **fit_kwargs)
