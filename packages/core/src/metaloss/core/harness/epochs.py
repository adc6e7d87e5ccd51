"""The loops every recipe shares: the checkpointed epoch loop, one SGD epoch, eval-mode prediction.

Recipes own what an epoch does (``epoch_fn``); ``train_epochs`` owns what every
run needs around it: resume from the last checkpoint, select the model on
validation data only, report the test metric measured at the selected epoch,
and checkpoint every learned table after each epoch so a killed run resumes
where it stopped. ``sgd_epoch`` is the one batch loop (loss, backward, step)
and ``predict`` the one eval-mode forward pass that recipes build epochs from.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..checks import check_choice, check_finite_loss, check_int
from .unit import EPOCH, MODEL, RESERVED_KEYS, SELECTED_MODEL, SELECTOR


class ValidationSelector:
    """Keeps the epoch with the best validation metric and the test metric there.

    Ties keep the earlier epoch. The test metric is never used for selection.
    """

    def __init__(self, mode: str = "max"):
        self.mode = check_choice("mode", mode, ("max", "min"))
        self.best_epoch: int | None = None
        self.best_val: float | None = None
        self.test_at_best: float | None = None

    def improves(self, val: float, where: str = "") -> bool:
        """Whether ``val`` would be the new best (ties keep the earlier epoch)."""
        if not isinstance(val, (int, float)) or math.isnan(val):
            raise ValueError(f"validation metric must be a number, got {val!r}{where}")
        return self.best_val is None or (val > self.best_val if self.mode == "max" else val < self.best_val)

    def update(self, epoch: int, val: float, test: float | None = None) -> bool:
        """Record an epoch's metrics; return True if it is the new best."""
        better = self.improves(val, where=f" at epoch {epoch}")
        if better:
            self.best_epoch, self.best_val, self.test_at_best = epoch, float(val), test
        return better

    def state_dict(self) -> dict:
        return {"best_epoch": self.best_epoch, "best_val": self.best_val, "test_at_best": self.test_at_best}

    def load_state_dict(self, state: Mapping) -> None:
        self.best_epoch, self.best_val, self.test_at_best = (
            state["best_epoch"], state["best_val"], state["test_at_best"],
        )


@dataclass
class Selected:
    """What ``train_epochs`` selected on validation data.

    ``metrics``: ``{"best_epoch", <val_key>, <test_key>}`` at the selected epoch
    (plus whatever a recipe adds before writing it as the unit's result);
    ``state``: the model's weights (state dict) at that epoch.
    """

    metrics: dict
    state: dict


def train_epochs(
    unit,
    *,
    model,
    stateful: Mapping[str, object],
    epochs: int,
    epoch_fn: Callable[[int], Mapping[str, float]],
    val_key: str = "val_acc",
    test_key: str | None = "test_acc",
    log: Callable[[dict], None] | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    test_fn: Callable[[], float] | None = None,
) -> dict:
    """Run ``epoch_fn(epoch)`` for the remaining epochs of ``unit`` and select on validation.

    Args:
        unit: a ``runs.Unit``: where checkpoints and the final result go.
        model: the model being trained; its state at the selected epoch is kept
            in the checkpoint under ``"best_model"``.
        stateful: everything else with ``state_dict``/``load_state_dict`` that
            must survive a kill (optimizer, scheduler, AMAL, ...).
        epoch_fn: trains one epoch and returns its metrics, including ``val_key``
            (and ``test_key`` if given and no ``test_fn``), measured after the epoch.
        test_fn: if given, measures the test metric, called only after epochs whose
            validation metric is a new best: the only test values ever reported.
    Returns:
        ``Selected``: the metrics at the selected epoch and the weights there.
    """
    check_int("epochs", epochs, minimum=1)
    reserved = sorted(set(stateful) & set(RESERVED_KEYS))
    if reserved:
        raise ValueError(f"stateful must not use the checkpoint's own keys {list(RESERVED_KEYS)}, "
                         f"got {reserved}")
    selector = ValidationSelector()
    best_model = copy.deepcopy(model.state_dict())
    start = 0
    state = unit.load_checkpoint()
    if state is not None:
        model.load_state_dict(state[MODEL])
        for name, obj in stateful.items():
            obj.load_state_dict(state[name])
        selector.load_state_dict(state[SELECTOR])
        best_model = state[SELECTED_MODEL]
        start = state[EPOCH] + 1
    epoch_range = range(start, epochs)
    for epoch in progress(epoch_range) if progress else epoch_range:
        metrics = dict(epoch_fn(epoch))
        if val_key not in metrics:
            raise ValueError(f"epoch_fn must return {val_key!r}; it returned {sorted(metrics)}")
        if test_fn is not None and test_key and selector.improves(metrics[val_key]):
            metrics[test_key] = test_fn()
        if selector.update(epoch, metrics[val_key], metrics.get(test_key) if test_key else None):
            best_model = copy.deepcopy(model.state_dict())
        unit.save_checkpoint({
            EPOCH: epoch,
            MODEL: model.state_dict(),
            SELECTED_MODEL: best_model,
            SELECTOR: selector.state_dict(),
            **{name: obj.state_dict() for name, obj in stateful.items()},
        })
        if log is not None:
            log({"method": unit.method, "seed": unit.seed, "epoch": epoch, **metrics})
    result = {"best_epoch": selector.best_epoch, val_key: selector.best_val}
    if test_key:
        result[test_key] = selector.test_at_best
    return Selected(result, best_model)


def sgd_epoch(
    batches: Iterable[tuple[torch.Tensor, object]],
    batch_loss: Callable[[torch.Tensor, object], torch.Tensor],
    optimizers: Sequence[torch.optim.Optimizer],
    *,
    backward: Callable[[torch.Tensor], None] | None = None,
) -> float:
    """One pass of ``batch_loss(indices, inputs)`` -> backward -> a step of every optimizer.

    ``batches`` yields ``(indices, inputs)``; ``backward`` defaults to
    ``loss.backward()`` (accelerate's ``accelerator.backward`` under processes).
    Several optimizers serve models trained jointly (a feature model and a
    label model). Returns the mean loss over the examples seen. A loss that is
    not finite (a diverged run) raises ``ValueError`` before it reaches a weight.
    """
    if not optimizers:
        raise ValueError("sgd_epoch needs at least one optimizer, got none")
    total, count = 0.0, 0
    for indices, inputs in batches:
        loss = check_finite_loss("the training loss", batch_loss(indices, inputs))
        for optimizer in optimizers:
            optimizer.zero_grad()
        if backward is None:
            loss.backward()
        else:
            backward(loss)
        for optimizer in optimizers:
            optimizer.step()
        total, count = total + loss.item() * len(indices), count + len(indices)
    return total / max(count, 1)


@torch.no_grad()
def predict(model: nn.Module, inputs: Iterable, device=None) -> torch.Tensor:
    """``model``'s outputs over batches of ``inputs`` in eval mode, concatenated on the CPU.

    The model's training mode is restored afterwards: evaluation in the middle
    of training must not leave dropout off or BatchNorm frozen.
    """
    was_training = model.training
    model.eval()
    try:
        outputs = [model(x if device is None else x.to(device)).cpu() for x in inputs]
    finally:
        model.train(was_training)
    if not outputs:
        raise ValueError("predict needs at least one batch of inputs, got none")
    return torch.cat(outputs)
