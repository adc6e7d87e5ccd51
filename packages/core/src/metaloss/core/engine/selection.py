"""Small-loss selection: the examples of a batch that a noisy-label method trusts.

Deep networks fit clean labels before noisy ones, so early in training the
examples with the smallest loss are mostly clean (Arpit et al. 2017). Co-teaching
(Han et al., NeurIPS 2018, Algorithm 1) keeps the R(T) fraction of smallest-loss
examples of each mini-batch, with

    R(T) = 1 - min(T / T_k * tau, tau)              (Han et al., eq. 1, T the epoch)

so the kept fraction falls from 1 to 1 - tau over the first T_k epochs, tau being
the expected noise rate. ``small_loss_mask`` is the selection and
``coteaching_keep_ratio`` the schedule. ``small_loss_mask_per_class`` keeps a
ratio of each class's examples instead of the batch's (a class-dependent
criterion R(c), as DML's eq. 8 uses), so a frequent or easy class cannot crowd
a rare or hard one out of the selection.
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


def small_loss_mask_per_class(
    losses: torch.Tensor, classes: torch.Tensor, ratios: torch.Tensor
) -> torch.Tensor:
    """Bool (B,) mask keeping, in every class c of the batch, its ceil(ratios[c] * n_c) smallest losses.

    ``classes`` (B,) gives each example's class (a label, or a model's prediction); ``ratios`` (C,)
    the kept fraction of each class, in [0, 1]. A class with a ratio of 0 keeps nothing; a class
    absent from the batch contributes nothing. Ties are broken by position, as in ``small_loss_mask``.
    """
    check_tensor("losses", losses, ndim=1, floating=True)
    check_tensor("classes", classes, ndim=1, floating=False)
    check_tensor("ratios", ratios, ndim=1, floating=True)
    if classes.shape != losses.shape:
        raise ValueError(f"classes must give one class per loss: {tuple(losses.shape)} losses, "
                         f"{tuple(classes.shape)} classes")
    if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= len(ratios)):
        raise ValueError(f"classes must lie in [0, {len(ratios) - 1}] (one ratio per class), "
                         f"got values in [{int(classes.min())}, {int(classes.max())}]")
    if not bool(((ratios >= 0) & (ratios <= 1)).all()):  # NaN fails both comparisons
        raise ValueError(f"ratios must lie in [0, 1], got {ratios.tolist()}")
    mask = torch.zeros_like(losses, dtype=torch.bool)
    for c in classes.unique().tolist():
        members = (classes == c).nonzero().flatten()
        keep = math.ceil(float(ratios[c]) * len(members) - 1e-9)  # the 1e-9: ratio * n exact in reals
        order = torch.sort(losses.detach()[members], stable=True).indices
        mask[members[order[:keep]]] = True
    return mask
