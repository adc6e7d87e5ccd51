"""Multi-layer perceptrons for small flat inputs (the 8x8 digits).

They implement core's ``LinearHeadModel`` contract (``forward_pre_logits`` and
``get_classifier``), which last-layer mode uses (``metaloss.core.resolve_split``).
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``depth`` blocks of Linear -> BatchNorm -> ReLU -> Dropout, then a linear classifier."""

    def __init__(self, in_features: int, num_classes: int, hidden: int, depth: int, dropout: float = 0.0):
        super().__init__()
        for name, value in (("in_features", in_features), ("num_classes", num_classes),
                            ("hidden", hidden), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
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
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_pre_logits(x))
