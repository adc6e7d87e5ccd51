"""The feature model P_theta(y | x): logistic regression or a small MLP over fixed features.

It implements core's ``LinearHeadModel`` contract (``forward_pre_logits`` and
``get_classifier``), so core's last-layer hypergradient applies; for logistic
regression the "features" are the inputs and the last-layer look-ahead is exact.
"""

from __future__ import annotations

import torch
from torch import nn

from metaloss.core.checks import check_int, check_probability


class FeatureModel(nn.Module):
    """Logistic regression (``hidden=0``) or an MLP with one ReLU hidden layer over (n, d) features."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 0, dropout: float = 0.0):
        super().__init__()
        for name, value, low in (("in_features", in_features, 1), ("num_classes", num_classes, 2),
                                 ("hidden", hidden, 0)):
            check_int(name, value, minimum=low)
        check_probability("dropout", dropout, high_open=True)
        self.body = (nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout))
                     if hidden else nn.Identity())
        self.head = nn.Linear(hidden or in_features, num_classes)

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input: the inputs themselves, or the hidden layer's output."""
        return self.body(x)

    def get_classifier(self) -> nn.Linear:
        """The final linear layer, the features (or hidden units) -> ``num_classes``."""
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_pre_logits(x))
