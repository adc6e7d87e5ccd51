"""CIFAR ResNets (He et al. 2016 §4.2): sizes, timm-style API, timm registry."""

import pytest
import timm
import torch
from torch import nn

from metaloss.vision.models import CifarResNet  # importing registers the models in timm

NAMES = [f"cifar_resnet{d}" for d in (8, 14, 20, 32, 56, 110)]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth, published", [(20, 0.27e6), (56, 0.85e6), (110, 1.7e6)])
def test_parameter_count_matches_paper(depth, published):
    n = _n_params(CifarResNet(depth, num_classes=10))
    assert abs(n - published) / published < 0.02, n


@pytest.mark.parametrize("depth", [8, 20])
def test_shapes_and_feature_head_split(depth):
    model = CifarResNet(depth, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        assert out.shape == (2, 10)
        assert model.num_features == 64 and model.num_classes == 10
        assert feats.shape == (2, 64, 8, 8)
        assert pre.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(feats), out)
        assert isinstance(model.get_classifier(), nn.Linear)
        torch.testing.assert_close(model.get_classifier()(pre), out)


def test_train_mode_backward_and_options():
    model = CifarResNet(14, num_classes=5, in_chans=1, width=8)
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 5) and model.num_features == 32
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_torch_func_functional_call():
    model = CifarResNet(8).eval()
    x = torch.randn(2, 3, 32, 32)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    out = torch.func.functional_call(model, params, (x,))
    torch.testing.assert_close(out, model(x))


def test_init():
    model = CifarResNet(8)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)
    std = model.conv1.weight.std().item()  # kaiming normal, fan_out = 16 * 9
    assert 0.5 * (2 / 144) ** 0.5 < std < 1.5 * (2 / 144) ** 0.5


def test_reset_classifier():
    model = CifarResNet(8)
    model.reset_classifier(7)
    assert model.num_classes == 7 and model.get_classifier().out_features == 7
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    with pytest.raises(ValueError, match="num_classes"):
        model.reset_classifier(0)


@pytest.mark.parametrize("depth", [7, 9, 21, 2, 0, -4])
def test_bad_depth_is_explained(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2.*8, 14, 20") as err:
        CifarResNet(depth)
    assert repr(depth) in str(err.value)


def test_registered_in_timm():
    assert sorted(timm.list_models("cifar_resnet*")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_timm_create_model(name):
    model = timm.create_model(name, num_classes=100).eval()
    assert isinstance(model, CifarResNet)
    assert model.depth == int(name.removeprefix("cifar_resnet"))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert model.pretrained_cfg["num_classes"] == 100


def test_timm_create_model_kwargs_and_data_config():
    overlay = {"crop_pct": 0.9}
    model = timm.create_model("cifar_resnet20", in_chans=1, pretrained_cfg_overlay=overlay)
    assert model.num_classes == 10 and model.conv1.in_channels == 1
    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["input_size"] == (1, 32, 32) and cfg["crop_pct"] == 0.9


def test_pretrained_raises():
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("cifar_resnet56", pretrained=True)
