"""The detector and the segmenter, on timm backbones."""

from .backbones import create_backbone, load_lite0_wheel, normalisation
from .pspnet import AUX_WEIGHT, PSPNet, PyramidPooling
from .yolov3 import YOLOv3

__all__ = ["AUX_WEIGHT", "PSPNet", "PyramidPooling", "YOLOv3", "create_backbone", "load_lite0_wheel",
           "normalisation"]
