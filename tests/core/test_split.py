"""The last-layer contract: how a model splits into features and a linear head, and the error if not."""

import pytest
import torch
from torch import nn

from metaloss.core import LinearHeadModel, Lookahead, cross_entropy, hypergradient, resolve_split


class ProtocolModel(nn.Module):
    """Implements LinearHeadModel."""

    def __init__(self):
        super().__init__()
        self.body, self.fc = nn.Sequential(nn.Linear(5, 6), nn.Tanh()), nn.Linear(6, 3)

    def forward_pre_logits(self, x):
        return self.body(x)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.fc(self.body(x))


class TimmStyle(ProtocolModel):
    """timm's split: forward_features, forward_head(h, pre_logits), get_classifier."""

    forward_pre_logits = None  # not the protocol

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, h, pre_logits: bool = False):
        return h if pre_logits else self.fc(h)


class OwnHead(ProtocolModel):
    """A user's own forward_head(h) without timm's pre_logits: neither contract."""

    forward_pre_logits = None

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, h):
        return self.fc(h)


def _last_layer(model, **kwargs):
    torch.manual_seed(1)
    x, y, xv, yv = torch.randn(8, 5), torch.randint(0, 3, (8,)), torch.randn(6, 5), torch.randint(0, 3, (6,))
    eps = torch.zeros(8)
    return hypergradient(model, x, lambda z, e: (e * cross_entropy(z, y)).sum(), xv,
                         lambda z: cross_entropy(z, yv).mean(), eps, lookahead=Lookahead(0.1),
                         mode="last_layer", **kwargs)


def test_a_protocol_model_equals_the_explicit_split():
    model = ProtocolModel()
    assert isinstance(model, LinearHeadModel)
    torch.testing.assert_close(_last_layer(model), _last_layer(model, split=(model.body, model.fc)))


def test_a_timm_style_model_equals_the_explicit_split():
    model = TimmStyle()
    assert not isinstance(model, LinearHeadModel)
    torch.testing.assert_close(_last_layer(model), _last_layer(model, split=(model.body, model.fc)))


def test_a_model_with_its_own_forward_head_gets_a_clear_error():
    with pytest.raises(ValueError, match="forward_pre_logits\\(x\\).*get_classifier\\(\\)"):
        resolve_split(OwnHead())
    with pytest.raises(ValueError, match="none of the split methods"):
        resolve_split(nn.Linear(2, 2))


def test_the_head_must_be_linear():
    model = ProtocolModel()
    with pytest.raises(TypeError, match="nn.Linear"):
        resolve_split(model, split=(model.body, nn.Tanh()))


def test_metaloss_models_implement_the_protocol():
    from metaloss.vision.models import MLP
    from metaloss.weak_supervision.models import FeatureModel

    for model in (MLP(4, 3, 5, 2), FeatureModel(4, 3, hidden=5), FeatureModel(4, 3)):
        assert isinstance(model, LinearHeadModel)
        features, head = resolve_split(model.eval())
        x = torch.randn(2, 4)
        assert torch.equal(head(features(x)), model(x))  # the same operations, bit for bit
