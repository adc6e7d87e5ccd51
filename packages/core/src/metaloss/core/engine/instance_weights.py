"""A table of per-example meta-parameters (N x K), addressed by dataset index.

AMAL's lambda_p, lambda_a1..aK (AMAL paper eq. 2) and L2RW-style example weights
live here. The table is updated by an explicit rule:

    g_i    = mean of the gradients accumulated for row i since the last step
    w_i   <- project( w_i - lr * g_i )          (rows with no gradient are left alone)
    project: clamp to [lower, upper]; optionally rescale each row to sum to 1.

Processes: each rank accumulates gradients for the rows its batches touched;
``step`` all-reduces the sums and counts (torch.distributed), so every rank
applies the same update and all ranks hold the same table, equal to a single
process that saw all the batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_int, check_positive, check_tensor
from .processes import sum_over_processes


class InstanceWeights(nn.Module):
    """N x K per-example weights with SGD updates, projection and cross-process sync."""

    def __init__(
        self,
        num_examples: int,
        num_weights: int,
        *,
        init: float | Sequence[float] = 1.0,
        lr: float = 1.0,
        lower: float | None = 0.0,
        upper: float | None = None,
        normalize: bool = False,
    ):
        super().__init__()
        check_int("num_examples", num_examples, minimum=1)
        check_int("num_weights", num_weights, minimum=1)
        self.lr = check_positive("lr", lr)
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"lower must be <= upper, got lower={lower}, upper={upper}")
        if normalize and (lower is None or lower < 0):
            raise ValueError("normalize=True needs lower >= 0 so that rows are proper mixtures")
        self.lower, self.upper, self.normalize = lower, upper, bool(normalize)
        init_row = torch.as_tensor(init, dtype=torch.float32).flatten()
        if init_row.numel() == 1:
            init_row = init_row.expand(num_weights)
        if init_row.numel() != num_weights:
            raise ValueError(
                f"init must be a number or {num_weights} values (one per column), "
                f"got {init_row.numel()}"
            )
        self.register_buffer("table", init_row.repeat(num_examples, 1).clone())
        self.register_buffer("grad_sum", torch.zeros(num_examples, num_weights))
        self.register_buffer("grad_count", torch.zeros(num_examples))
        self.project_()

    @property
    def num_examples(self) -> int:
        return self.table.shape[0]

    @property
    def num_weights(self) -> int:
        return self.table.shape[1]

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """The (B, K) rows of ``indices`` (a constant: the table is not an autograd leaf)."""
        return self.table[self._check_indices(indices)]

    def accumulate(self, indices: torch.Tensor, grads: torch.Tensor) -> None:
        """Add d(objective)/d(rows) for the examples in ``indices``."""
        indices = self._check_indices(indices)
        self._check_rows("grads", grads, len(indices))
        if not bool(torch.isfinite(grads).all()):
            raise ValueError("grads must be finite; got NaN or inf (check the meta learning rate)")
        self.grad_sum.index_add_(0, indices, grads.detach().to(self.grad_sum))
        self.grad_count.index_add_(0, indices, torch.ones_like(indices, dtype=self.grad_count.dtype))

    @torch.no_grad()
    def assign(self, indices: torch.Tensor, values: torch.Tensor) -> None:
        """Set the rows of ``indices`` to ``values`` (B, K), then project.

        For weights estimated outside the meta-gradient (WDUE's k-NN debiasing
        weights): the same table, checkpoint and lookup by dataset index.
        """
        indices = self._check_indices(indices)
        self._check_rows("values", values, len(indices))
        self.table[indices] = values.to(self.table)
        self.project_()

    @torch.no_grad()
    def step(self) -> int:
        """Synchronise, apply the update and the projection; return the rows updated."""
        sum_over_processes(self.grad_sum, self.grad_count)
        seen = self.grad_count > 0
        mean_grad = self.grad_sum[seen] / self.grad_count[seen, None]
        self.table[seen] -= self.lr * mean_grad
        self.project_()
        self.grad_sum.zero_()
        self.grad_count.zero_()
        return int(seen.sum())

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp to [lower, upper] (None: unbounded on that side); optionally renormalise rows to sum to 1."""
        if self.lower is not None or self.upper is not None:
            self.table.clamp_(min=self.lower, max=self.upper)
        if self.normalize:
            sums = self.table.sum(dim=1, keepdim=True)
            uniform = torch.full_like(self.table, 1.0 / self.num_weights)
            self.table.copy_(torch.where(sums > 0, self.table / sums.clamp_min(1e-12), uniform))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        table = state_dict.get("table")
        if table is not None and tuple(table.shape) != tuple(self.table.shape):
            raise ValueError(
                f"state_dict holds a {tuple(table.shape)} table; this InstanceWeights is "
                f"(num_examples, K) = {tuple(self.table.shape)}"
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _check_rows(self, name: str, rows: torch.Tensor, batch: int) -> None:
        check_tensor(name, rows, ndim=2, floating=True)
        if rows.shape != (batch, self.num_weights):
            raise ValueError(
                f"{name} must be (batch, K) = ({batch}, {self.num_weights}), got {tuple(rows.shape)}"
            )

    def _check_indices(self, indices: torch.Tensor) -> torch.Tensor:
        check_tensor("indices", indices, ndim=1, floating=False)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_examples):
            raise ValueError(
                f"indices must lie in [0, {self.num_examples - 1}] (dataset indices), "
                f"got values in [{int(indices.min())}, {int(indices.max())}]"
            )
        return indices.to(self.table.device)
