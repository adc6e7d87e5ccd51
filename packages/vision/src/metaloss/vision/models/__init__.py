"""Vision models.

Importing this package registers the CIFAR ResNets in timm's registry
(``cifar_resnet8`` ... ``cifar_resnet110``), so ``timm.create_model`` builds them.
"""

from .cifar_resnet import CifarResNet
from .mlp import MLP

__all__ = ["CifarResNet", "MLP"]
