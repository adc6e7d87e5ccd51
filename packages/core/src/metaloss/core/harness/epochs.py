"""The one checkpointed epoch loop that recipes share, and validation-based selection.

Recipes own what an epoch does (``epoch_fn``); this file owns what every run
needs around it: resume from the last checkpoint, select the model on
validation data only, report the test metric measured at the selected epoch,
and checkpoint every learned table after each epoch so a killed run resumes
where it stopped.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping

from ..checks import check_choice, check_int


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
        ``{"best_epoch", "val_<...>", "test_<...>"}`` at the selected epoch, plus
        ``"best_model"`` (the selected state dict). The same dict minus the
        weights is written as the unit's result.
    """
    check_int("epochs", epochs, minimum=1)
    if "model" in stateful or "best_model" in stateful or "selector" in stateful:
        raise ValueError("stateful must not use the reserved names 'model', 'best_model', 'selector'")
    selector = ValidationSelector()
    best_model = copy.deepcopy(model.state_dict())
    start = 0
    state = unit.load_checkpoint()
    if state is not None:
        model.load_state_dict(state["model"])
        for name, obj in stateful.items():
            obj.load_state_dict(state[name])
        selector.load_state_dict(state["selector"])
        best_model = state["best_model"]
        start = state["epoch"] + 1
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
            "epoch": epoch,
            "model": model.state_dict(),
            "best_model": best_model,
            "selector": selector.state_dict(),
            **{name: obj.state_dict() for name, obj in stateful.items()},
        })
        if log is not None:
            log({"method": unit.method, "seed": unit.seed, "epoch": epoch, **metrics})
    result = {"best_epoch": selector.best_epoch, val_key: selector.best_val}
    if test_key:
        result[test_key] = selector.test_at_best
    return {**result, "best_model": best_model}
