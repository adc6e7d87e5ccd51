"""Per-example losses (reduction none) and the weighted mix that AMAL trains on.

Every loss here returns one value per example, shape (B,), so that a table of
per-example weights can multiply it (AMAL paper eq. 2).

``generalized_cross_entropy`` is the robust loss of Zhang & Sabuncu 2018 (NeurIPS, eq. 6),
(1 - p_y^q) / q: CE as q -> 0, MAE (up to a factor) at q = 1.

KD convention (Hinton et al. 2015): ``kd_loss`` is tau^2 * KL(p_teacher^tau || p_student^tau)
*summed over classes* for each example. Its mean over the batch is therefore
PyTorch's ``kl_div(..., reduction="batchmean")`` times tau^2, the value the KD
literature reports; ``reduction="mean"`` would wrongly divide by B * C as well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import (
    check_class_indices,
    check_finite_loss,
    check_int,
    check_positive,
    check_probability,
    check_same_rows,
    check_tensor,
    check_unit_interval,
)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example CE. ``targets``: class indices (B,) or probabilities (B, C)."""
    check_tensor("logits", logits, ndim=2, floating=True)
    check_tensor("targets", targets)
    check_same_rows(logits=logits, targets=targets)
    if targets.is_floating_point():
        if targets.shape != logits.shape:
            raise ValueError(
                f"soft targets must have the logits' shape {tuple(logits.shape)}, "
                f"got {tuple(targets.shape)}"
            )
        return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
    if targets.ndim != 1:
        raise ValueError(f"class-index targets must be 1-D (B,), got shape {tuple(targets.shape)}")
    check_class_indices("targets", targets, logits.shape[1])
    return F.cross_entropy(logits, targets, reduction="none")


def generalized_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Per-example L_q = (1 - p_y^q) / q (Zhang & Sabuncu 2018, eq. 6); ``q`` in (0, 1], paper 0.7.

    ``targets`` are class indices (B,). Computed from ``log_softmax`` as
    ``-expm1(q * log p_y) / q`` so that it stays accurate when p_y is near 1.
    """
    check_unit_interval("q", q, low_open=True)
    if isinstance(targets, torch.Tensor) and targets.is_floating_point():
        raise ValueError("generalized_cross_entropy takes class-index targets (B,), got probabilities")
    log_p = -cross_entropy(logits, targets)  # validates shapes and class indices
    return -torch.expm1(q * log_p) / q


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float = 4.0
) -> torch.Tensor:
    """Per-example tau^2 * KL(softmax(teacher / tau) || softmax(student / tau)).

    The teacher is treated as a constant (its logits are detached).
    """
    check_tensor("student_logits", student_logits, ndim=2, floating=True)
    check_tensor("teacher_logits", teacher_logits, ndim=2, floating=True)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits must have the same shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    tau = check_positive("tau", tau)
    log_p_student = F.log_softmax(student_logits / tau, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / tau, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    return tau**2 * kl


def mix_losses(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Batch mean of sum_k weights[i, k] * losses[i, k] (AMAL eq. 2 on a batch).

    ``losses`` and ``weights`` are (B, K); column 0 is conventionally the primary
    loss. Raises ``ValueError`` on a shape mismatch or a non-finite loss.
    """
    check_tensor("losses", losses, ndim=2, floating=True)
    check_tensor("weights", weights, ndim=2, floating=True)
    if losses.shape != weights.shape:
        raise ValueError(
            f"losses and weights must both be (batch, K); got {tuple(losses.shape)} "
            f"and {tuple(weights.shape)}"
        )
    check_finite_loss("per-example losses", losses)
    return (weights * losses).sum(dim=1).mean()


def fixed_mix_weights(batch: int, num_aux: int, lambda_a: float) -> torch.Tensor:
    """(B, 1 + K) weights of classic KD: 1 - lambda_a on the primary loss, lambda_a / K on each of K guides.

    With K = 1 this is Hinton et al.'s (1 - lambda_a) * CE + lambda_a * KD; with K > 1 the
    guides share the distillation weight equally (multi-teacher KD averaged over teachers).
    """
    _check_mix_args(batch, num_aux, lambda_a)
    row = torch.tensor([1.0 - lambda_a] + [lambda_a / num_aux] * num_aux)
    return row.expand(batch, -1)


def dropout_mix_weights(
    batch: int, num_aux: int, lambda_a: float, drop_prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, 1 + K) weights of DGKD's stochastic teaching (Son et al., ICCV 2021, section 3.3).

    For the whole mini-batch, each of the K guides is dropped independently with
    probability ``drop_prob``; at least one is always kept (a random one if all
    were dropped), so the student always has a guide. The kept guides share
    ``lambda_a`` equally, as in ``fixed_mix_weights``. Draws from ``generator``
    (default: torch's global generator, which the run checkpoints restore).
    """
    _check_mix_args(batch, num_aux, lambda_a)
    check_probability("drop_prob", drop_prob, high_open=True)
    keep = torch.rand(num_aux, generator=generator) >= drop_prob
    if not keep.any():
        keep[torch.randint(num_aux, (1,), generator=generator)] = True
    row = torch.cat([torch.tensor([1.0 - lambda_a]), lambda_a * keep.float() / keep.sum()])
    return row.expand(batch, -1)


def _check_mix_args(batch, num_aux, lambda_a) -> None:
    check_int("batch", batch, minimum=1)
    check_int("num_aux", num_aux, minimum=1)
    check_unit_interval("lambda_a", lambda_a, what="a weight")
