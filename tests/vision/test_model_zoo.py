"""CIFAR model zoo: Wide ResNets, DenseNet-40-12, MobileNet v1 (sizes, timm API, timm registry)."""

import math

import pytest
import timm
import torch
from torch import nn

# Importing the package registers every family in timm.
from metaloss.vision.models import CifarDenseNet, CifarMobileNet, CifarResNet, WideResNet

WRN_NAMES = [f"cifar_wrn{d}_{k}" for d, k in ((16, 1), (16, 2), (16, 3), (16, 4), (16, 6), (16, 8),
                                              (28, 2), (28, 10))]
DENSENET_NAMES = ["cifar_densenet40_12"]
MOBILENET_NAMES = ["cifar_mobilenet_x1", "cifar_mobilenet_x2"]
NAMES = WRN_NAMES + DENSENET_NAMES + MOBILENET_NAMES
# One cheap model per family, for the tests that build their own.
SMALL = {"cifar_wrn16_1": WideResNet, "cifar_densenet40_12": CifarDenseNet,
         "cifar_mobilenet_x1": CifarMobileNet}


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def zoo():
    """Every registered model, built once through timm at 10 classes, in eval mode (read-only)."""
    torch.manual_seed(0)
    return {name: timm.create_model(name, num_classes=10).eval() for name in NAMES}


def test_registered_in_timm():
    assert sorted(timm.list_models("cifar_wrn*")) == sorted(WRN_NAMES)
    assert timm.list_models("cifar_densenet*") == DENSENET_NAMES
    assert sorted(timm.list_models("cifar_mobilenet*")) == sorted(MOBILENET_NAMES)


@pytest.mark.parametrize("name, published", [
    ("cifar_wrn28_10", 36.5e6),  # Zagoruyko & Komodakis 2016
    ("cifar_wrn16_8", 11.0e6),
    ("cifar_densenet40_12", 1.0e6),  # Huang et al. 2017, Table 2
    ("cifar_mobilenet_x1", 3.2e6),  # the usual CIFAR MobileNet v1 size
])
def test_parameter_count_matches_published(zoo, name, published):
    n = _n_params(zoo[name])
    assert abs(n - published) / published < 0.02, n


def test_width_multiplier_two_roughly_quadruples_mobilenet(zoo):
    ratio = _n_params(zoo["cifar_mobilenet_x2"]) / _n_params(zoo["cifar_mobilenet_x1"])
    assert 3.8 < ratio < 4.0, ratio


@pytest.mark.parametrize("name", NAMES)
def test_timm_api(zoo, name):
    model = zoo[name]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        assert out.shape == (2, 10) and model.num_classes == 10
        assert feats.shape == (2, model.num_features, *model.pretrained_cfg["pool_size"])
        torch.testing.assert_close(model.forward_head(feats), out)
        assert pre.shape == (2, model.num_features)
        assert isinstance(model.get_classifier(), nn.Linear)
        torch.testing.assert_close(model.get_classifier()(pre), out)
    assert model.pretrained_cfg["architecture"] == name
    assert model.pretrained_cfg["num_classes"] == 10


@pytest.mark.parametrize("name", SMALL)
def test_create_model_num_classes_and_reset_classifier(name):
    model = timm.create_model(name, num_classes=100).eval()
    assert isinstance(model, SMALL[name])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 100)
    assert model.pretrained_cfg["num_classes"] == 100
    model.reset_classifier(7)
    assert model.num_classes == 7 and model.get_classifier().out_features == 7
    with torch.no_grad():
        assert model(x).shape == (2, 7)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1, got 0"):
        model.reset_classifier(0)


@pytest.mark.parametrize("name, kwargs", [
    ("cifar_wrn16_1", {"drop_rate": 0.3}),
    ("cifar_densenet40_12", {"drop_rate": 0.2}),
    ("cifar_mobilenet_x1", {}),
])
def test_train_mode_backward_and_dropout(name, kwargs):
    model = timm.create_model(name, num_classes=5, in_chans=1, **kwargs)
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert rates == ({kwargs["drop_rate"]} if kwargs else set())


@pytest.mark.parametrize("name", SMALL)
def test_timm_kwargs_and_data_config(name):
    model = timm.create_model(name, in_chans=1, pretrained_cfg_overlay={"crop_pct": 0.9})
    assert model.num_classes == 10 and model.conv1.in_channels == 1
    cfg = timm.data.resolve_data_config({}, model=model)
    assert cfg["input_size"] == (1, 32, 32) and cfg["crop_pct"] == 0.9


@pytest.mark.parametrize("name", SMALL)
def test_pretrained_raises(name):
    with pytest.raises(ValueError, match=f"{name}: no pretrained weights"):
        timm.create_model(name, pretrained=True)


@pytest.mark.parametrize("name, key, value", [
    ("cifar_wrn16_1", "widen_factor", 2),
    ("cifar_wrn28_10", "depth", 16),
    ("cifar_densenet40_12", "depth", 100),
    ("cifar_densenet40_12", "growth_rate", 24),
    ("cifar_mobilenet_x1", "width_multiplier", 0.5),
])
def test_registered_names_fix_their_arguments(name, key, value):
    with pytest.raises(TypeError, match=f"{name} has a fixed {key} of .*; build .*\\({key}=...\\)"):
        timm.create_model(name, **{key: value})


@pytest.mark.parametrize("build, match", [
    (lambda: WideResNet(27, 2), r"6n \+ 4 with n >= 1 .* 10, 16, 22, 28.*got 27"),
    (lambda: WideResNet(4, 2), r"6n \+ 4.*got 4"),
    (lambda: WideResNet(28.0, 2), r"6n \+ 4.*got 28\.0"),
    (lambda: WideResNet(28, -1), "widen_factor must be an int >= 1, got -1"),
    (lambda: WideResNet(28, 2.5), "widen_factor must be an int >= 1, got 2.5"),
    (lambda: WideResNet(16, 1, drop_rate=1.0), r"drop_rate must be a probability in \[0, 1\), got 1.0"),
    (lambda: WideResNet(16, 1, drop_rate=-0.1), r"drop_rate must be a probability in \[0, 1\), got -0.1"),
    (lambda: WideResNet(16, 1, num_classes=0), "num_classes must be an int >= 1, got 0"),
    (lambda: WideResNet(16, 1, in_chans=0), "in_chans must be an int >= 1, got 0"),
    (lambda: CifarDenseNet(depth=41), r"3L \+ 4 with L >= 1 .*got 41"),
    (lambda: CifarDenseNet(growth_rate=0), "growth_rate must be an int >= 1, got 0"),
    (lambda: CifarDenseNet(drop_rate=True), r"drop_rate must be a probability in \[0, 1\), got True"),
    (lambda: CifarMobileNet(0), "width_multiplier must be a positive finite number.*got 0"),
    (lambda: CifarMobileNet(-1.0), "width_multiplier must be a positive finite number.*got -1.0"),
    (lambda: CifarMobileNet(math.inf), "width_multiplier must be a positive finite number.*got inf"),
    (lambda: CifarMobileNet("2"), "width_multiplier must be a positive finite number.*got '2'"),
    (lambda: CifarMobileNet(num_classes=-3), "num_classes must be an int >= 1, got -3"),
])
def test_bad_arguments_are_explained(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_wide_resnet_structure():
    model = WideResNet(16, 2)
    assert model.blocks_per_stage == 2 and model.num_features == 128
    convs3x3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3x3) == 6 * model.blocks_per_stage + 1
    # A 1x1 projection exactly where a block changes shape: first block of each group (k > 1).
    shortcuts = [blk.shortcut for stage in (model.layer1, model.layer2, model.layer3) for blk in stage]
    assert [s is not None for s in shortcuts] == [True, False, True, False, True, False]
    # With k = 1 the first group keeps 16 channels and needs no projection.
    assert WideResNet(16, 1).layer1[0].shortcut is None


def test_densenet_structure_counts_depth():
    model = CifarDenseNet(depth=40, growth_rate=12)
    assert model.num_features == 16 + 36 * 12
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 40  # stem + 36 dense layers + 2 transitions + classifier
    assert model.stage1[-1].conv.in_channels == model.stage1[-1].conv.out_channels == 16 + 12 * 12


def test_mobilenet_width_multiplier_and_init():
    model = CifarMobileNet(0.5)
    assert model.conv1.out_channels == 16 and model.num_features == 512
    dw = model.blocks[0].conv_dw
    assert dw.groups == dw.in_channels == 16
    # Depthwise fan-out is 3 * 3 (one output per group): std sqrt(2 / 9), not sqrt(2 / (9 * 16)).
    assert 0.7 * (2 / 9) ** 0.5 < dw.weight.std().item() < 1.3 * (2 / 9) ** 0.5
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)


def test_torch_func_functional_call():
    model = CifarDenseNet(depth=10, growth_rate=4).eval()
    x = torch.randn(2, 3, 32, 32)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    with torch.no_grad():
        torch.testing.assert_close(torch.func.functional_call(model, params, (x,)), model(x))


def test_cifar_resnet_still_uses_the_shared_factory():
    with pytest.raises(TypeError, match="cifar_resnet20 has a fixed depth of 20"):
        timm.create_model("cifar_resnet20", depth=56)
    assert isinstance(timm.create_model("cifar_resnet8"), CifarResNet)


def test_importing_metaloss_vision_registers_the_cifar_models_in_timm():
    import subprocess
    import sys

    code = ("import metaloss.vision, timm\n"
            "print(type(timm.create_model('cifar_resnet8', num_classes=10)).__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "CifarResNet", done.stderr
