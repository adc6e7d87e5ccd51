"""The model contract of last-layer mode: a model split into features and a linear head.

AMAL's last-layer look-ahead (AMAL paper eqs. 13-16) and the last-layer mode of
``hypergradient``, ``l2r_weights`` and ``MetaWeightNet`` move only the final
linear layer, so they need the model cut in two: ``h = features(x)`` (the
classifier's input, computed once with the backbone fixed) and ``head(h)``, an
``nn.Linear``. ``resolve_split`` finds that cut, in this order:

1. an explicit ``split=(features_fn, head)``;
2. the ``LinearHeadModel`` protocol: ``model.forward_pre_logits(x)`` and
   ``model.get_classifier()`` (metaloss's own MLPs implement it);
3. timm's convention, which every timm model follows:
   ``model.forward_head(model.forward_features(x), pre_logits=True)`` and
   ``model.get_classifier()``.

Anything else is a ``ValueError`` that says what the model must provide.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn

Split = tuple[Callable[..., torch.Tensor], nn.Linear]


@runtime_checkable
class LinearHeadModel(Protocol):
    """A model whose logits are ``get_classifier()(forward_pre_logits(x))``."""

    def forward_pre_logits(self, *inputs) -> torch.Tensor:
        """The classifier's input for ``inputs``: (B, D) features."""

    def get_classifier(self) -> nn.Linear:
        """The final linear layer, D -> num_classes."""


def resolve_split(model: nn.Module, split: Split | None = None) -> Split:
    """``(features_fn, head)`` of ``model`` for last-layer mode (see the module docstring)."""
    if split is not None:
        if not (isinstance(split, tuple) and len(split) == 2 and callable(split[0])):
            raise TypeError(f"split must be a (features_fn, head) tuple, got {type(split).__name__}")
        return split[0], _linear_head(split[1], "split[1]")
    if isinstance(model, LinearHeadModel):
        return model.forward_pre_logits, _linear_head(model.get_classifier(), "get_classifier()")
    if _follows_timm(model):

        def features(*args):
            return model.forward_head(model.forward_features(*args), pre_logits=True)

        return features, _linear_head(model.get_classifier(), "get_classifier()")
    present = [a for a in ("forward_pre_logits", "forward_features", "forward_head", "get_classifier")
               if hasattr(model, a)]
    raise ValueError(
        f"last_layer mode needs {type(model).__name__} split into features and a linear head; it has "
        f"{', '.join(present) or 'none of the split methods'}. Give it forward_pre_logits(x) (the "
        "classifier's input) and get_classifier() (an nn.Linear), follow timm's forward_features(x) + "
        "forward_head(h, pre_logits=True) + get_classifier(), or pass split=(features_fn, head)"
    )


def _follows_timm(model: nn.Module) -> bool:
    if not all(hasattr(model, a) for a in ("forward_features", "forward_head", "get_classifier")):
        return False
    try:
        return "pre_logits" in inspect.signature(model.forward_head).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False


def _linear_head(head, where: str) -> nn.Linear:
    if not isinstance(head, nn.Linear):
        raise TypeError(f"the model's head ({where}) must be an nn.Linear, got {type(head).__name__}")
    return head
