"""Small-loss selection: the examples of a batch that a noisy-label method trusts.

Deep networks fit clean labels before noisy ones, so early in training the
examples with the smallest loss are mostly clean (Arpit et al. 2017). Co-teaching
(Han et al., NeurIPS 2018, Algorithm 1) keeps the R(T) fraction of smallest-loss
examples of each mini-batch, with

    R(T) = 1 - min(T / T_k * tau, tau)              (Han et al., eq. 1, T the epoch)

so the kept fraction falls from 1 to 1 - tau over the first T_k epochs, tau being
the expected noise rate. ``small_loss_mask`` is the selection and
``coteaching_keep_ratio`` the schedule.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_int, check_probability, check_tensor


def coteaching_keep_ratio(epoch: int, forget_rate: float, warmup_epochs: int) -> float:
    """R(T) = 1 - min(T / T_k * tau, tau).

    T is ``epoch`` (counted from 0), tau the ``forget_rate`` and T_k the ``warmup_epochs``.
    """
    check_int("epoch", epoch, minimum=0)
    tau = check_probability("forget_rate", forget_rate, high_open=True)
    t_k = check_int("warmup_epochs", warmup_epochs, minimum=1)
    return 1.0 - min(epoch / t_k * tau, tau)


def small_loss_mask(losses: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """Bool (B,) mask of the ceil(keep_ratio * B) smallest ``losses`` (at least one when B > 0).

    Ties are broken by position (a stable sort), so the mask is deterministic.
    """
    check_tensor("losses", losses, ndim=1, floating=True)
    check_probability("keep_ratio", keep_ratio)
    batch = losses.shape[0]
    keep = min(batch, max(1, math.ceil(keep_ratio * batch))) if batch else 0
    order = torch.sort(losses.detach(), stable=True).indices
    mask = torch.zeros(batch, dtype=torch.bool, device=losses.device)
    mask[order[:keep]] = True
    return mask
