"""metaloss-vision: image models, data, label noise and the distillation components its recipes use.

Importing it registers the CIFAR model families in timm's registry, so
``timm.create_model("cifar_resnet8", num_classes=10)`` works after ``import metaloss.vision``.
"""

from . import models  # noqa: F401  (registers the CIFAR models in timm)
