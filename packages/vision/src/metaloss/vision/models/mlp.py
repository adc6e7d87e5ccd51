"""Multi-layer perceptrons for small flat inputs (the 8x8 digits).

They implement core's ``LinearHeadModel`` contract (``forward_pre_logits`` and
``get_classifier``), which last-layer mode uses (``metaloss.core.resolve_split``).
"""

from __future__ import annotations

import torch
from torch import nn

from metaloss.core.checks import check_int, check_probability


class MLP(nn.Module):
    """``depth`` blocks of Linear -> BatchNorm -> ReLU -> Dropout, then a linear classifier."""

    def __init__(self, in_features: int, num_classes: int, hidden: int, depth: int, dropout: float = 0.0):
        super().__init__()
        for name, value in (("in_features", in_features), ("num_classes", num_classes),
                            ("hidden", hidden), ("depth", depth)):
            check_int(name, value, minimum=1)
        check_probability("dropout", dropout, high_open=True)
        layers, width = [], in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.num_features, self.num_classes = width, num_classes
        self.fc = nn.Linear(width, num_classes)

    def forward_pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input: the last hidden layer's output."""
        return self.body(x.flatten(1))

    def get_classifier(self) -> nn.Linear:
        """The final linear layer, ``num_features`` -> ``num_classes``."""
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_pre_logits(x))
