"""Vision models.

Importing this package registers the CIFAR model families in timm's registry,
so ``timm.create_model(name, num_classes=...)`` builds them (none has
pretrained weights):

* ``cifar_resnet8`` ... ``cifar_resnet110`` -- ResNet-(6n+2), He et al. 2016
  (:class:`CifarResNet`);
* ``cifar_wrn16_1`` ... ``cifar_wrn16_8``, ``cifar_wrn28_2``, ``cifar_wrn28_10``
  -- Wide ResNets WRN-d-k, Zagoruyko & Komodakis 2016 (:class:`WideResNet`);
* ``cifar_densenet40_12`` -- DenseNet-40 with growth rate 12, Huang et al.
  2017 (:class:`CifarDenseNet`);
* ``cifar_mobilenet_x1``, ``cifar_mobilenet_x2`` -- MobileNet v1 adapted to
  32x32 inputs, width multiplier 1 and 2, Howard et al. 2017
  (:class:`CifarMobileNet`).

All of them follow timm's API (``forward_features`` / ``forward_head`` with
``pre_logits`` / ``get_classifier`` / ``reset_classifier``, ``num_features``),
so core's last-layer mode splits them the timm way. :class:`MLP` is for small flat inputs,
is not registered, and implements core's ``LinearHeadModel`` (``forward_pre_logits`` /
``get_classifier``) instead. ``create_model(arch, splits)`` builds any of them (or any
timm model) for a dataset's classes and channels.
"""

from .cifar_resnet import CifarResNet
from .create import create_model
from .densenet import CifarDenseNet
from .mlp import MLP
from .mobilenet import CifarMobileNet
from .wide_resnet import WideResNet

__all__ = ["CifarDenseNet", "CifarMobileNet", "CifarResNet", "MLP", "WideResNet", "create_model"]
