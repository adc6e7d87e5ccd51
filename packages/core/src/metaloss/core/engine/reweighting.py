"""Example reweighting by a one-step look-ahead: L2R and MW-Net, the baselines AMAL is compared with.

- ``l2r_weights``: Learning to Reweight (Ren et al., ICML 2018, Algorithm 1). Per
  batch, eps = 0 weights the per-example losses, theta' = theta - lr * grad sum_i
  eps_i l_i, and the weights are w = max(-d L_val(theta') / d eps, 0), normalised
  to sum to one over the batch (eqs. 4-6); no state is kept between batches.
- ``MetaWeightNet``: Meta-Weight-Net (Shu et al., NeurIPS 2019): an MLP
  V(l; psi), 1 -> hidden -> 1 with a sigmoid, maps an example's loss to its weight;
  psi takes a step on the validation loss after a look-ahead of theta on the
  V-weighted batch (eqs. 3-5), then theta trains on the batch weighted by the
  updated V. Under several processes the meta-gradient is averaged over them, so
  every rank keeps the same V.

Both are built on ``hypergradient``, so they work on any model and in any of its
modes (``"last_layer"`` is exact for a linear model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from ..checks import check_int, check_positive
from .hypergradient import Lookahead, hypergradient
from .processes import averaged_over_processes

PerExampleLoss = Callable[[torch.Tensor], torch.Tensor]  # logits -> (B,) losses


def l2r_weights(
    model: nn.Module,
    inputs,
    losses_fn: PerExampleLoss,
    val_inputs,
    val_loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    lookahead: Lookahead | float,
    mode: str = "exact",
) -> torch.Tensor:
    """L2R's (B,) weights of a training batch: non-negative, summing to 1 (or all 0).

    ``losses_fn(logits) -> (B,)`` gives the per-example training losses;
    ``val_loss(val_logits) -> scalar`` the validation loss. All-zero weights mean no
    example of the batch lowers the validation loss (Ren et al. then skip the batch).
    """
    batch = _batch_size(inputs)
    eps = torch.zeros(batch)

    def inner(z, e):
        return (e.to(z) * _check_losses(losses_fn(z), batch)).sum()

    grad = hypergradient(model, inputs, inner, val_inputs, val_loss, eps, lookahead=lookahead, mode=mode)
    weights = torch.clamp(-grad, min=0.0)
    total = weights.sum()
    return weights / total if total > 0 else weights


class MetaWeightNet(nn.Module):
    """Meta-Weight-Net: the weight of an example as a learned function of its loss.

    Args:
        hidden: units of the one hidden layer (paper: 100).
        lr: learning rate of V's own optimiser (Adam; paper 1e-3).
        weight_decay: of V's optimiser (paper 1e-4).
    """

    def __init__(self, hidden: int = 100, *, lr: float = 1e-3, weight_decay: float = 1e-4):
        super().__init__()
        check_int("hidden", hidden, minimum=1)
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=check_positive("lr", lr),
                                          weight_decay=check_positive("weight_decay", weight_decay,
                                                                      allow_zero=True))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        """(B,) weights in (0, 1) for (B,) per-example losses (their values only: no gradient flows back)."""
        if losses.ndim != 1:
            raise ValueError(f"MetaWeightNet takes a (B,) vector of losses, got shape {tuple(losses.shape)}")
        return self.net(losses.detach().unsqueeze(1)).squeeze(1)

    def meta_step(
        self,
        model: nn.Module,
        inputs,
        losses_fn: PerExampleLoss,
        val_inputs,
        val_loss: Callable[[torch.Tensor], torch.Tensor],
        *,
        lookahead: Lookahead | float,
        mode: str = "exact",
    ) -> float:
        """One step of psi on the validation loss after a look-ahead on this batch; returns |grad psi|."""
        names = [n for n, _ in self.net.named_parameters()]
        params = [p.detach() for p in self.net.parameters()]
        batch = _batch_size(inputs)

        def inner(z, psi):
            losses = _check_losses(losses_fn(z), batch)
            weights = functional_call(self.net, dict(zip(names, psi)), (losses.detach().unsqueeze(1),))
            return (weights.squeeze(1).to(z) * losses).mean()

        grads = hypergradient(model, inputs, inner, val_inputs, val_loss, params,
                              lookahead=lookahead, mode=mode)
        grads = averaged_over_processes(grads)  # one V for every process, as DDP does for the model
        self.optimizer.zero_grad()
        for p, g in zip(self.net.parameters(), grads):
            p.grad = g.detach().to(p)
        self.optimizer.step()
        return float(torch.sqrt(sum((g**2).sum() for g in grads)))

    def state_dict(self, *args, **kwargs):
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        self.net.load_state_dict(state["net"], strict=strict)
        self.optimizer.load_state_dict(state["optimizer"])


def _batch_size(inputs) -> int:
    """Rows of the batch: the first tensor's first dimension (a tensor, a tuple or a dict of inputs)."""
    if isinstance(inputs, dict):
        values = inputs.values()
    else:
        values = inputs if isinstance(inputs, (tuple, list)) else [inputs]
    for value in values:
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return value.shape[0]
    raise TypeError(f"inputs must be a tensor or hold one (tuple/dict), got {type(inputs).__name__}")


def _check_losses(losses, batch: int | None) -> torch.Tensor:
    if not isinstance(losses, torch.Tensor) or losses.ndim != 1:
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(f"losses_fn must return a (B,) vector of per-example losses, got {shape}")
    if batch is not None and losses.shape[0] != batch:
        raise ValueError(f"losses_fn returned {losses.shape[0]} losses for a batch of {batch}")
    return losses
