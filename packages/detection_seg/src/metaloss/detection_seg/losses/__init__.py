"""Detection and segmentation losses whose parts a dynamic loss network can replace.

``yolo``: the YOLOv3 loss of the L2T-DLN supplement (§4, eqs. 28-30), per anchor.
``segmentation``: PSPNet's per-pixel loss (main + 0.4 x auxiliary head), per image.
"""

from .segmentation import IGNORE_INDEX, pixel_cross_entropy, pspnet_loss
from .yolo import YOLOLossParts, YOLOTargets, assign_targets, yolo_loss

__all__ = ["IGNORE_INDEX", "YOLOLossParts", "YOLOTargets", "assign_targets", "pixel_cross_entropy",
           "pspnet_loss", "yolo_loss"]
