"""timm glue shared by the CIFAR model families (ResNet, Wide ResNet, DenseNet, MobileNet).

One home for what every family needs to live in timm's registry and follow
timm's model API:

* ``cifar_cfg`` -- the ``pretrained_cfg`` metadata of a 32x32 CIFAR model
  (input size, CIFAR-10 mean/std, ...), which ``timm.data.resolve_data_config``
  reads; there are never weights behind it.
* ``create_model`` -- the body of every ``@register_model`` entrypoint: it drops
  the factory arguments ``timm.create_model`` passes to every entrypoint,
  refuses ``pretrained=True`` (no weights exist), rejects overriding the
  arguments a registered name fixes, builds the model, moves it to
  ``device``/``dtype`` and attaches its ``pretrained_cfg``.
* ``CifarClassifier`` -- a base ``nn.Module`` implementing timm's classifier API
  (``forward_head`` with ``pre_logits``, ``get_classifier``,
  ``reset_classifier``) over global average pooling and a linear ``fc``, and
  the shared weight initialisation.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import torch
from torch import nn

from metaloss.core.checks import check_int

__all__ = ["CifarClassifier", "cifar_cfg", "create_model"]

# CIFAR-10 statistics; used only as timm data-config metadata (resolve_data_config).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

# Arguments timm.create_model passes to every entrypoint that a model without
# pretrained weights has no use for.
_TIMM_FACTORY_KWARGS = (
    "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args",
)

ModelT = TypeVar("ModelT", bound=nn.Module)


def cifar_cfg(**overrides: Any) -> dict[str, Any]:
    """A timm ``pretrained_cfg`` for a 32x32 CIFAR model without weights; ``overrides`` win."""
    cfg = {
        "url": "",
        "num_classes": 10,
        "input_size": (3, 32, 32),
        "pool_size": (8, 8),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "apache-2.0",
    }
    cfg.update(overrides)
    return cfg


def create_model(
    model_cls: type[ModelT],
    name: str,
    cfg: dict[str, Any],
    pretrained: bool,
    kwargs: dict[str, Any],
    **fixed: Any,
) -> ModelT:
    """Build ``model_cls(**fixed, **kwargs)`` for the registered entrypoint ``name``.

    ``kwargs`` are the keyword arguments the entrypoint received from
    ``timm.create_model`` (consumed in place); ``fixed`` are the constructor
    arguments the name stands for (e.g. ``depth=28, widen_factor=10`` for
    ``cifar_wrn28_10``), which the caller may not override. ``cfg`` is the
    name's entry of the module's ``default_cfgs``. The model must expose
    ``num_classes`` and ``in_chans`` attributes.
    """
    if pretrained:
        raise ValueError(
            f"{name}: no pretrained weights exist for this model (metaloss registers architectures "
            "only); create it with pretrained=False and train it"
        )
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    for key in _TIMM_FACTORY_KWARGS:
        kwargs.pop(key, None)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    for key, value in fixed.items():
        if key in kwargs:
            raise TypeError(
                f"{name} has a fixed {key} of {value!r}; build {model_cls.__name__}({key}=...) "
                f"for another {key}"
            )
    model = model_cls(**fixed, **kwargs)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    full_cfg = {**cfg, "architecture": name, **overlay}
    full_cfg["num_classes"] = model.num_classes
    full_cfg["input_size"] = (model.in_chans, *full_cfg["input_size"][1:])
    model.pretrained_cfg = full_cfg
    model.default_cfg = full_cfg
    return model


class CifarClassifier(nn.Module):
    """Base class: timm's classifier API over global average pooling and a linear ``fc``.

    A subclass validates its arguments (``num_classes`` included) before building
    anything, sets ``in_chans`` (read by ``create_model``), builds its body,
    calls ``_init_classifier(num_features, num_classes)`` and ``_init_weights()``,
    and implements ``forward_features`` returning the final
    (B, ``num_features``, H, W) map, already normalised and activated.
    """

    num_features: int
    num_classes: int
    fc: nn.Linear

    def _init_classifier(self, num_features: int, num_classes: int) -> None:
        self.num_features = num_features
        self.num_classes = num_classes
        self.fc = nn.Linear(num_features, num_classes)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # He et al. 2015 normal init over the fan-out; a grouped (depthwise) conv's
                # fan-out counts only the outputs of one group, as in timm's MobileNets.
                fan_out = m.out_channels // m.groups * math.prod(m.kernel_size)
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # The classifier keeps PyTorch's default nn.Linear initialisation.

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # global average pool + flatten
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a freshly initialised ``nn.Linear(num_features, num_classes)``.

        ``num_classes`` must be >= 1 (timm's ``num_classes=0`` "no head" is not
        supported; use ``forward_head(x, pre_logits=True)`` for features).
        """
        check_int("num_classes", num_classes, minimum=1)
        ref = self.fc.weight
        self.fc = nn.Linear(self.num_features, num_classes, device=ref.device, dtype=ref.dtype)
        self.num_classes = num_classes
