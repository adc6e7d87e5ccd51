"""PSPNet's training loss per image: per-pixel loss on the main head + 0.4 x on the auxiliary head.

Each head's loss for an image is the mean over its labelled pixels (the ignore index, 255, is
unlabeled), so it composes with per-image weights and with the DLN, whose per-example value is
the same mean (core's ``DynamicLossNetwork`` with ``class_dim=1``). PSPNet's reference averages
over all labelled pixels of the batch instead; the two agree when images hold equally many
labelled pixels.

``loss_stride`` > 1 scores every ``loss_stride``-th pixel of each row and column (logits and mask
subsampled alike, which keeps the ignore index intact). The
DLN's per-pixel 1-vs-1 pairs cost (C - 1) MLP evaluations per pixel, so a CPU run scores a coarser
grid; both losses of a comparison use the same grid, and evaluation is always at full resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from metaloss.core.checks import check_int, check_positive, check_tensor, describe

from ..models.pspnet import AUX_WEIGHT

IGNORE_INDEX = 255
PixelLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pixel_cross_entropy(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int = IGNORE_INDEX
                        ) -> torch.Tensor:
    """Per-image CE (B,): the mean over each image's labelled pixels (0 for an image with none)."""
    per_pixel = F.cross_entropy(logits, masks, ignore_index=ignore_index, reduction="none")
    labelled = (masks != ignore_index).flatten(1).sum(1)
    return per_pixel.flatten(1).sum(1) / labelled.clamp(min=1)


def pspnet_loss(outputs, masks: torch.Tensor, *, pixel_loss: PixelLoss | None = None,
                aux_weight: float = AUX_WEIGHT, ignore_index: int = IGNORE_INDEX,
                loss_stride: int = 1) -> torch.Tensor:
    """PSPNet's loss per image (B,): ``pixel_loss(main) + aux_weight * pixel_loss(aux)``.

    Args:
        outputs: ``(main, aux)`` logits (B, C, H, W) (PSPNet in training mode) or ``main`` alone.
        masks: (B, H, W) class indices, ``ignore_index`` where unlabeled.
        pixel_loss: ``(logits, masks) -> (B,)``; default: ``pixel_cross_entropy``; the DLN
            (``DynamicLossNetwork(..., class_dim=1, ignore_index=255)``) fits here.
        loss_stride: score every ``loss_stride``-th pixel (module docstring).
    """
    heads = tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)
    if not 1 <= len(heads) <= 2:
        raise ValueError(f"outputs must be main logits or (main, aux), got {len(heads)} tensors")
    check_tensor("masks", masks, ndim=3, floating=False)
    check_positive("aux_weight", aux_weight, allow_zero=True)
    check_int("loss_stride", loss_stride, minimum=1)
    for name, logits in zip(("main", "aux"), heads):
        if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[0] != masks.shape[0] \
                or logits.shape[-2:] != masks.shape[-2:]:
            raise ValueError(f"the {name} logits must be (B, C, H, W) with the masks' B, H, W "
                             f"{(masks.shape[0], masks.shape[1], masks.shape[2])}, got {describe(logits)}")
    pixel_loss = pixel_loss or (lambda z, m: pixel_cross_entropy(z, m, ignore_index))
    if loss_stride > 1:
        masks = masks[:, ::loss_stride, ::loss_stride]
        heads = tuple(z[:, :, ::loss_stride, ::loss_stride] for z in heads)
    loss = pixel_loss(heads[0], masks)
    if len(heads) == 2 and aux_weight:
        loss = loss + aux_weight * pixel_loss(heads[1], masks)
    return loss
