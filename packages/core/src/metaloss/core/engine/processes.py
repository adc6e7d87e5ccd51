"""Sums and averages over the processes of a distributed run (``accelerate launch``), one home for
the components that keep their own state in step across processes (MW-Net's V, an instance-weight
table, DML's teacher and selection ratios). With one process, or without torch.distributed set up,
every function returns its input unchanged."""

from __future__ import annotations

import torch
import torch.distributed as dist


def process_count() -> int:
    """The number of processes of this run (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def sum_over_processes(*tensors: torch.Tensor) -> None:
    """Replace each tensor, in place, by its sum over the processes."""
    if process_count() > 1:
        for t in tensors:
            dist.all_reduce(t)


def averaged_over_processes(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Detached copies of ``tensors``, each averaged over the processes (as DDP averages gradients)."""
    copies = [t.detach().clone() for t in tensors]
    if process_count() > 1:
        sum_over_processes(*copies)
        for c in copies:
            c /= process_count()
    return copies
