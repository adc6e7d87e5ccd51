"""AMAL: Adaptive Mixing of Auxiliary Losses (Sivasubramanian et al., AAAI 2023).

The student minimises, per training example i (eq. 2),

    lambda_p,i * l_p(x_i, y_i; theta) + sum_k lambda_ak,i * l_ak(x_i; theta),

and every L epochs (or steps) the lambdas take gradient steps on the validation
cross-entropy after a one-step look-ahead of theta (Algorithm 1, eqs. 4-6). The
look-ahead can be restricted to the last layer (eqs. 13-16), the paper's default
for speed, or run through the full model: ``mode="exact"`` (one-step second order),
``"first_order"`` (the validation gradient at theta instead of the looked-ahead
theta: about two thirds of the cost) or ``"finite_difference"``.

Scale: the gradient of example i is taken for the *sum* over the batch (the
batch mean's derivative times B), i.e. -lr * delta_i^T (G_val h_i + g_val) in
last-layer mode, so the lambda learning rate does not depend on the batch size.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from ..checks import check_choice, check_int, check_positive
from .hypergradient import (
    MODES,
    Lookahead,
    hypergradient,
    last_layer_hypergradient,
    preserved_buffers,
)
from .instance_weights import InstanceWeights
from .losses import cross_entropy, mix_losses
from .split import Split, resolve_split

LossesFn = Callable[[torch.Tensor], torch.Tensor]
MetaBatch = tuple[torch.Tensor, object, LossesFn]


class AMAL:
    """Instance-wise mixing weights of a primary loss and K auxiliary losses.

    Args:
        num_examples: size of the training set (rows of the lambda table).
        num_aux: K >= 1 auxiliary losses; column 0 of every loss matrix is the primary.
        lr: learning rate of the lambdas.
        every: L, the meta phase runs after every L units of training.
        unit: ``"epoch"`` or ``"step"``: what ``every`` counts.
        inner_steps: passes over the meta batches in one meta phase (lambda steps per example).
        init: initial (lambda_p, lambda_a1..aK); default the paper's KD setting
            (0.1, 0.9) for K = 1 and (0.1, 0.9/K, ...) for K > 1.
        mode: ``"last_layer"`` (paper default), or a full-model mode: ``"exact"``,
            ``"first_order"`` or ``"finite_difference"`` (see ``hypergradient``).
        lower, upper, normalize: the projection of ``InstanceWeights``.
        split: ``(features_fn, linear_head)`` for last-layer mode on models that
            follow neither ``LinearHeadModel`` nor timm's split (see ``split.py``).
    """

    def __init__(
        self,
        num_examples: int,
        num_aux: int = 1,
        *,
        lr: float = 1.0,
        every: int = 10,
        unit: str = "epoch",
        inner_steps: int = 1,
        init: Sequence[float] | None = None,
        mode: str = "last_layer",
        lower: float | None = 0.0,
        upper: float | None = 1.0,
        normalize: bool = False,
        split: Split | None = None,
    ):
        self.split = split
        self.num_aux = check_int("num_aux", num_aux, minimum=1)
        self.every = check_int("every", every, minimum=1)
        self.unit = check_choice("unit", unit, ("epoch", "step"))
        self.inner_steps = check_int("inner_steps", inner_steps, minimum=1)
        self.mode = check_choice("mode", mode, MODES)
        if init is None:
            init = [0.1] + [0.9 / num_aux] * num_aux
        if len(init) != 1 + num_aux:
            raise ValueError(
                f"init needs 1 + num_aux = {1 + num_aux} values (lambda_p, lambda_a1..aK), "
                f"got {len(init)}"
            )
        self.weights = InstanceWeights(
            num_examples, 1 + num_aux, init=init, lr=check_positive("lr", lr),
            lower=lower, upper=upper, normalize=normalize,
        )

    def to(self, device) -> AMAL:
        self.weights.to(device)
        return self

    def loss(self, indices: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The mixed training loss of a batch: eq. 2 with the current lambdas."""
        self._check_losses(losses, indices.shape[0] if isinstance(indices, torch.Tensor) else None)
        return mix_losses(losses, self.weights(indices).to(losses))

    def due(self, completed: int) -> bool:
        """Whether a meta phase is due after ``completed`` epochs (or steps) of training."""
        check_int("completed", completed, minimum=0)
        return completed > 0 and completed % self.every == 0

    def meta_step(
        self,
        model: nn.Module,
        indices: torch.Tensor,
        inputs,
        losses_fn: LossesFn,
        *,
        lookahead: Lookahead | float,
        val_inputs=None,
        val_targets: torch.Tensor | None = None,
        val_features: torch.Tensor | None = None,
        outer_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Hypergradient of this batch's lambdas, accumulated into the table.

        ``losses_fn(logits) -> (B, 1 + K)`` gives the per-example losses.
        Last-layer mode accepts precomputed ``val_features`` (see ``meta_phase``).
        Returns the (B, 1 + K) gradient.
        """
        outer_fn = outer_loss or _mean_cross_entropy
        if val_targets is None:
            raise ValueError("meta_step needs val_targets (the validation labels)")
        batch = indices.shape[0]

        def inner(z, lam):
            return mix_losses(self._check_losses(losses_fn(z), batch), lam)

        def outer(z):
            return outer_fn(z, val_targets)

        lam = self.weights(indices).clone()
        if self.mode == "last_layer":
            features, head = resolve_split(model, self.split)
            with torch.no_grad(), preserved_buffers(model):
                h_in = features(inputs)
                h_out = val_features if val_features is not None else features(val_inputs)
            grad = last_layer_hypergradient(head, h_in, inner, h_out, outer, lam, lookahead=lookahead)
        else:
            grad = hypergradient(
                model, inputs, inner, val_inputs, outer, lam, lookahead=lookahead, mode=self.mode
            )
        grad = grad * batch  # per-example derivative of the batch sum (see module docstring)
        self.weights.accumulate(indices, grad)
        return grad

    def meta_phase(
        self,
        model: nn.Module,
        batches: Callable[[], Iterable[MetaBatch]],
        val_batches: Iterable[tuple[object, torch.Tensor]],
        *,
        lookahead: Lookahead | float,
        outer_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, float]:
        """Algorithm 1's lambda update: ``inner_steps`` passes of meta steps.

        ``batches()`` yields ``(indices, inputs, losses_fn)`` for the training set;
        ``val_batches`` yields ``(inputs, targets)``. Last-layer mode computes the
        validation features once (eval mode: the backbone is fixed during the
        phase) and uses the whole validation set for every meta step; the other
        modes cycle through validation batches, one per meta step. Returns
        statistics of the table after the phase.
        """
        was_training = model.training
        val_batches = list(val_batches)
        if not val_batches:
            raise ValueError("meta_phase needs at least one validation batch")
        try:
            if self.mode == "last_layer":
                model.eval()
                features, _ = resolve_split(model, self.split)
                with torch.no_grad():
                    h_val = torch.cat([features(x) for x, _ in val_batches])
                y_val = torch.cat([y for _, y in val_batches])
                val_iter = itertools.repeat((None, y_val, h_val))
            else:
                val_iter = itertools.cycle([(x, y, None) for x, y in val_batches])
            for _ in range(self.inner_steps):
                for (indices, inputs, losses_fn), (x_val, y_val_b, h_val_b) in zip(batches(), val_iter):
                    self.meta_step(
                        model, indices, inputs, losses_fn, lookahead=lookahead,
                        val_inputs=x_val, val_targets=y_val_b, val_features=h_val_b,
                        outer_loss=outer_loss,
                    )
                self.weights.step()
        finally:
            model.train(was_training)
        return self.summary()

    def summary(self) -> dict[str, float]:
        table = self.weights.table
        stats = {"lambda_p_mean": float(table[:, 0].mean())}
        for k in range(1, table.shape[1]):
            stats[f"lambda_a{k}_mean"] = float(table[:, k].mean())
        return stats

    def state_dict(self) -> dict:
        return self.weights.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.weights.load_state_dict(state)

    def _check_losses(self, losses: torch.Tensor, batch: int | None) -> torch.Tensor:
        expected = 1 + self.num_aux
        if not isinstance(losses, torch.Tensor) or losses.ndim != 2 or losses.shape[1] != expected:
            shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
            raise ValueError(
                f"per-example losses must be (batch, 1 + K) = (batch, {expected}) with the "
                f"primary loss in column 0; got {shape}"
            )
        if batch is not None and losses.shape[0] != batch:
            raise ValueError(f"losses have {losses.shape[0]} rows for a batch of {batch} indices")
        return losses


def trust_in_guides(table: torch.Tensor) -> torch.Tensor:
    """lambda_a - lambda_p per example: reliance on the K guides over the primary loss (AMAL Figure 2).

    ``table``: an AMAL lambda table (N, 1 + K); lambda_a is the sum of the K guide columns.
    """
    if not isinstance(table, torch.Tensor) or table.ndim != 2 or table.shape[1] < 2:
        shape = tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__
        raise ValueError(f"table must be an AMAL lambda table (N, 1 + K) with K >= 1, got {shape}")
    return table[:, 1:].sum(1) - table[:, 0]


def trust_by_group(table: torch.Tensor, groups: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean trust (``trust_in_guides``) inside and outside each group of examples.

    ``groups`` maps a name (e.g. ``"label_noisy"``) to a bool mask over the
    table's rows. Returns ``trust_<name>`` and ``trust_not_<name>`` for every
    side that has examples: the result keys every recipe reports.
    """
    trust = trust_in_guides(table)
    means = {}
    for name, mask in groups.items():
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != trust.shape:
            got = (tuple(mask.shape), mask.dtype) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"groups[{name!r}] must be a bool mask of shape {tuple(trust.shape)}, got {got}")
        for key, side in ((f"trust_{name}", mask), (f"trust_not_{name}", ~mask)):
            if side.any():
                means[key] = float(trust[side].mean())
    return means


def _mean_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return cross_entropy(logits, targets).mean()
