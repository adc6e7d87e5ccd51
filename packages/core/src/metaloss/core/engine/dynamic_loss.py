"""L2T-DLN's loss network (NeurIPS 2023): the 1-vs-1 transformation and the DLN itself.

``one_vs_one`` is the supplement's §2: a C-class prediction becomes C - 1 binary tasks, each the
pair (sigma(z_y), sigma(z_j)) of the true class y and one other class j, with the sigmoid as the
normaliser. The class axis is any axis, so one call serves images (B, C), pixels (B, C, H, W) and
anchors (B, A, C, with ``class_dim=-1``).

``DynamicLossNetwork`` is the DLN of §5.1: a five-layer fully connected network (40 units per
hidden layer, Leaky-ReLU, one output) applied to each pair. Its input row is the authors' code's
[sigma(z_y), sigma(z_j), 1, 0]: the pair's two predictions followed by the pair's binary labels
(the true class is 1, the other 0); their layers have no bias. The student's loss for an example
is the mean of the DLN over its C - 1 pairs and over its positions (pixels, anchors), reduction
none, so it composes with per-example weights.

Two readings of the authors' code that differ:
- their loss also averages C rows of zeros (the j = y row), i.e. it is ours times (C - 1) / C;
  we average over the C - 1 real pairs so the scale does not depend on C;
- their DLN starts from random weights (Kaiming normal, fan-out), which gives the student a
  loss of random sign until the teacher has reshaped it (``init="kaiming"`` reproduces it). Our
  default ``init="pairwise_ce"`` draws the same random weights and then fits them, by a few
  hundred Adam steps on a grid of pairs, to the pair's binary cross-entropy
  -log sigma(z_y) - log(1 - sigma(z_j)); from the first step the student is pushed to raise
  sigma(z_y) and lower sigma(z_j), and the teacher starts from a sensible loss.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch
from torch import nn

from ..checks import check_choice, check_class_indices, check_int, check_positive, check_tensor

INITS = ("pairwise_ce", "kaiming")


class OneVsOne(NamedTuple):
    """``pairs`` (*target.shape, C - 1, 2): (sigma(z_y), sigma(z_j)) for j != y in increasing j.

    ``valid`` (target.shape, bool): False where the target is ``ignore_index``; those positions'
    pairs are computed against class 0 and must be masked by the caller.
    """

    pairs: torch.Tensor
    valid: torch.Tensor


def one_vs_one(logits: torch.Tensor, target: torch.Tensor, *, class_dim: int = 1,
               ignore_index: int | None = None) -> OneVsOne:
    """Every (true class, other class) pair of sigmoid outputs (supplement §2).

    Args:
        logits: (..., C, ...) with the classes on ``class_dim`` (1 for images and pixels,
            -1 for anchors (B, A, C)), C >= 2.
        target: class indices with the logits' shape minus the class axis.
        ignore_index: a target value marking positions without a label (unlabeled pixels).
    """
    check_tensor("logits", logits, floating=True)
    check_tensor("target", target, floating=False)
    if logits.ndim < 2:
        raise ValueError(f"logits must have a batch and a class axis, got shape {tuple(logits.shape)}")
    check_int("class_dim", class_dim, minimum=-logits.ndim, maximum=logits.ndim - 1)
    scores = logits.movedim(class_dim, -1)
    num_classes = scores.shape[-1]
    if num_classes < 2:
        raise ValueError(f"one_vs_one needs at least 2 classes on class_dim={class_dim}, got {num_classes}")
    if target.shape != scores.shape[:-1]:
        raise ValueError(
            f"target must have the logits' shape without the class axis {tuple(scores.shape[:-1])} "
            f"(class_dim={class_dim}), got {tuple(target.shape)}"
        )
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    check_class_indices("targets", target[valid], num_classes,
                        why="" if ignore_index is None else f" or ignore_index={ignore_index}")
    true_class = torch.where(valid, target, torch.zeros_like(target)).unsqueeze(-1)
    probs = torch.sigmoid(scores)
    others = torch.arange(num_classes - 1, device=target.device)
    others = others + (others >= true_class).long()  # skip y: 0..y-1, y+1..C-1
    s_true = probs.gather(-1, true_class).expand(*others.shape)
    s_other = probs.gather(-1, others)
    return OneVsOne(torch.stack((s_true, s_other), dim=-1), valid)


class DynamicLossNetwork(nn.Module):
    """The DLN: a bias-free MLP 4 -> 40 -> 40 -> 40 -> 40 -> 1 (Leaky-ReLU) on 1-vs-1 rows.

    ``forward(logits, target)`` returns the per-example loss (B,); ``pair_loss(pairs)`` the
    network's value on (..., 2) pairs (sigma(z_y), sigma(z_j)), which the plots draw as a surface.
    ``seed`` fixes the initial weights without touching the global random state.
    """

    def __init__(self, hidden: int = 40, hidden_layers: int = 4, *, negative_slope: float = 0.01,
                 init: str = "pairwise_ce", seed: int = 0):
        super().__init__()
        check_int("hidden", hidden, minimum=1)
        check_int("hidden_layers", hidden_layers, minimum=1)
        check_positive("negative_slope", negative_slope, allow_zero=True)
        check_choice("init", init, INITS)
        widths = [4] + [hidden] * hidden_layers
        layers: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):  # nn.Linear's default draw is overwritten below
            for width_in, width_out in zip(widths[:-1], widths[1:]):
                layers += [nn.Linear(width_in, width_out, bias=False), nn.LeakyReLU(negative_slope)]
            layers.append(nn.Linear(hidden, 1, bias=False))
        self.net = nn.Sequential(*layers)
        self._initialise(init, seed, negative_slope)

    def pair_loss(self, pairs: torch.Tensor) -> torch.Tensor:
        """The DLN on pairs (..., 2) of (sigma(z_y), sigma(z_j)); returns (...)."""
        labels = torch.tensor([1.0, 0.0], dtype=pairs.dtype, device=pairs.device).expand_as(pairs)
        return self.net(torch.cat((pairs, labels), dim=-1)).squeeze(-1)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, *, class_dim: int = 1,
                ignore_index: int | None = None) -> torch.Tensor:
        """Per-example loss (B,): the mean over the C - 1 pairs and over the labelled positions."""
        pairs, valid = one_vs_one(logits, target, class_dim=class_dim, ignore_index=ignore_index)
        per_position = self.pair_loss(pairs).mean(dim=-1) * valid
        if per_position.ndim == 1:
            return per_position
        counts = valid.flatten(1).sum(1).clamp(min=1)  # an example with no labelled pixel adds 0
        return per_position.flatten(1).sum(1) / counts

    def _initialise(self, init: str, seed: int, negative_slope: float) -> None:
        if init == "pairwise_ce":
            # The fit is deterministic: every DLN with these settings starts from the same weights.
            widths = tuple(layer.weight.shape for layer in self.net if isinstance(layer, nn.Linear))
            self.load_state_dict(_fitted_to_pairwise_ce(widths, negative_slope, seed))
            return
        _draw_kaiming(self, seed, negative_slope)


def _draw_kaiming(dln: DynamicLossNetwork, seed: int, negative_slope: float) -> None:
    """The authors' start: Kaiming normal weights (fan-out), from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in dln.net:
            if isinstance(layer, nn.Linear):
                fan_out = layer.weight.shape[0]
                gain = nn.init.calculate_gain("leaky_relu", negative_slope)
                layer.weight.normal_(0.0, gain / fan_out**0.5, generator=generator)


@functools.cache
def _pairwise_ce_fit(widths: tuple, negative_slope: float, seed: int) -> dict[str, torch.Tensor]:
    """Kaiming weights regressed onto -log s_y - log(1 - s_j) over [0.01, 0.99]^2 by 400 full-batch
    Adam steps (deterministic), computed once per process for each architecture and seed."""
    dln = DynamicLossNetwork(widths[0][0], len(widths) - 1, negative_slope=negative_slope, init="kaiming",
                             seed=seed)
    s = torch.linspace(0.01, 0.99, 25)
    s_true, s_other = torch.meshgrid(s, s, indexing="ij")
    pairs = torch.stack((s_true, s_other), dim=-1).reshape(-1, 2)
    target = -torch.log(pairs[:, 0]) - torch.log1p(-pairs[:, 1])
    optimizer = torch.optim.Adam(dln.parameters(), lr=1e-2)
    with torch.enable_grad():
        for _ in range(400):
            optimizer.zero_grad()
            ((dln.pair_loss(pairs) - target) ** 2).mean().backward()
            optimizer.step()
    return {name: value.detach().clone() for name, value in dln.state_dict().items()}


def _fitted_to_pairwise_ce(widths: tuple, negative_slope: float, seed: int) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in _pairwise_ce_fit(widths, negative_slope, seed).items()}
