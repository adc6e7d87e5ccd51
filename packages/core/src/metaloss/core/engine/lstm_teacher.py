"""L2T-DLN's teacher (NeurIPS 2023, supplement §3): a coordinate-wise LSTM that updates the DLN.

Following Andrychowicz et al. 2016, one small LSTM is shared by every coordinate of the DLN's
parameters, each coordinate with its own hidden and cell state, so the teacher has few weights
and its update does not depend on the order of the coordinates. Its input is a gradient g of the
validation loss with respect to one DLN coordinate, preprocessed by eq. 27 (p = 10):

    g -> (log|g| / p, sign g)   if |g| >= e^-p,
    g -> (-1, e^p g)            otherwise,

which separates magnitude from sign and keeps both inputs of order one. Four stacked LSTM cells
(64, 64, 64, 1 units, as in §5.1 and the authors' code) turn it into one output per coordinate
in (-1, 1); the caller scales it (the DLN learning rate, 1e-3) and subtracts it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import check_int, check_positive, check_tensor

LSTMState = list[tuple[torch.Tensor, torch.Tensor]]


def preprocess_gradient(grad: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """Eq. 27 on every element of ``grad``: returns ``grad.shape + (2,)``."""
    check_tensor("grad", grad, floating=True)
    check_positive("p", p)
    large = grad.abs() >= math.exp(-p)
    # clamp: log of the small branch's values is computed but never used; keep it finite
    log_part = torch.where(large, torch.log(grad.abs().clamp(min=math.exp(-p))) / p, -torch.ones_like(grad))
    sign_part = torch.where(large, torch.sign(grad), math.exp(p) * grad)
    return torch.stack((log_part, sign_part), dim=-1)


class LSTMTeacher(nn.Module):
    """Coordinate-wise stacked LSTM: ``forward(grad, state) -> (update, state)``.

    ``grad`` is a flat (N,) vector, one entry per DLN coordinate; ``state`` holds one (h, c)
    pair per layer, each (N, units), from ``initial_state(N)`` or a previous call.
    """

    def __init__(self, hidden: int = 64, layers: int = 4, *, p: float = 10.0):
        super().__init__()
        check_int("hidden", hidden, minimum=1)
        check_int("layers", layers, minimum=2)
        self.p = check_positive("p", p)
        widths = [2] + [hidden] * (layers - 1) + [1]
        self.cells = nn.ModuleList(nn.LSTMCell(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def initial_state(self, coordinates: int) -> LSTMState:
        check_int("coordinates", coordinates, minimum=1)
        weight = self.cells[0].weight_ih
        return [
            (weight.new_zeros(coordinates, cell.hidden_size), weight.new_zeros(coordinates, cell.hidden_size))
            for cell in self.cells
        ]

    def forward(self, grad: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        check_tensor("grad", grad, ndim=1, floating=True)
        if len(state) != len(self.cells) or any(h.shape[0] != grad.shape[0] for h, _ in state):
            raise ValueError(
                f"state must hold {len(self.cells)} (h, c) pairs with {grad.shape[0]} rows (one per "
                f"coordinate), got {[tuple(h.shape) for h, _ in state]}"
            )
        x = preprocess_gradient(grad, self.p)
        new_state = []
        for cell, (h, c) in zip(self.cells, state):
            h, c = cell(x, (h, c))
            new_state.append((h, c))
            x = h
        return x.squeeze(-1), new_state
