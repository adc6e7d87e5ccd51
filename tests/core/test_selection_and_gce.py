"""Small-loss selection (co-teaching's R(T)) and the generalized cross-entropy loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from metaloss.core import (
    coteaching_keep_ratio,
    generalized_cross_entropy,
    small_loss_mask,
    small_loss_mask_per_class,
)


def test_gce_is_its_closed_form_and_tends_to_ce():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    p_y = F.softmax(logits, 1)[torch.arange(6), y]
    assert torch.allclose(generalized_cross_entropy(logits, y, 0.7), (1 - p_y**0.7) / 0.7)
    assert torch.allclose(generalized_cross_entropy(logits, y, 1.0), 1 - p_y)
    # L_q -> CE as q -> 0 (Zhang & Sabuncu 2018, Theorem 1's limit)
    ce = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(generalized_cross_entropy(logits, y, 1e-6), ce, atol=1e-4)


def test_gce_gradient_is_ce_gradient_scaled_by_p_y_to_the_q():
    # d L_q / dz = p_y^q * d CE / dz: confident examples count more, which is what makes L_q robust
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1, 0])
    (g_gce,) = torch.autograd.grad(generalized_cross_entropy(logits, y, 0.7).sum(), logits)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), logits)
    p_y = F.softmax(logits, 1)[torch.arange(5), y].detach()
    assert torch.allclose(g_gce, p_y[:, None] ** 0.7 * g_ce)


@pytest.mark.parametrize("q", [0, -0.1, 1.5, "0.7"])
def test_gce_refuses_q_outside_its_range(q):
    with pytest.raises(ValueError, match="q must be"):
        generalized_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), q)


def test_gce_refuses_soft_targets():
    with pytest.raises(ValueError, match="class-index targets"):
        generalized_cross_entropy(torch.randn(2, 3), torch.rand(2, 3))


def test_small_loss_mask_keeps_the_smallest_ceil_ratio_b():
    losses = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7])
    assert small_loss_mask(losses, 0.4).tolist() == [False, True, False, True, False]
    assert small_loss_mask(losses, 0.5).sum() == math.ceil(2.5)  # 3: ceil
    assert small_loss_mask(losses, 0.0).tolist() == [False, True, False, False, False]  # never empty
    assert small_loss_mask(losses, 1.0).all()
    # ties: the earlier position wins, so the mask does not depend on sort internals
    assert small_loss_mask(torch.tensor([1.0, 1.0, 1.0]), 0.34).tolist() == [True, True, False]


def test_coteaching_keep_ratio_follows_han_et_al():
    # R(T) = 1 - min(T / T_k * tau, tau)
    assert [coteaching_keep_ratio(t, 0.4, 10) for t in (0, 5, 10, 20)] == pytest.approx([1.0, 0.8, 0.6, 0.6])
    assert coteaching_keep_ratio(3, 0.0, 10) == 1.0


@pytest.mark.parametrize("kwargs, match", [
    ({"epoch": -1, "forget_rate": 0.2, "warmup_epochs": 10}, "epoch"),
    ({"epoch": 0, "forget_rate": 1.0, "warmup_epochs": 10}, "forget_rate"),
    ({"epoch": 0, "forget_rate": 0.2, "warmup_epochs": 0}, "warmup_epochs"),
])
def test_coteaching_keep_ratio_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        coteaching_keep_ratio(**kwargs)


def test_small_loss_mask_refuses_bad_input():
    with pytest.raises(ValueError, match="keep_ratio"):
        small_loss_mask(torch.rand(3), 1.5)
    with pytest.raises(ValueError, match="losses"):
        small_loss_mask(torch.rand(3, 2), 0.5)


def test_per_class_selection_keeps_each_class_its_ratio_of_smallest_losses():
    losses = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4])
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])
    ratios = torch.tensor([0.5, 0.34, 0.0, 1.0])  # class 3 is absent from the batch
    mask = small_loss_mask_per_class(losses, classes, ratios)
    # class 0: ceil(0.5 * 4) = 2 of losses {0.9, 0.1, 0.5, 0.3} -> 0.1, 0.3; class 1: ceil(0.34 * 3) = 2
    # of {0.8, 0.2, 0.7} -> 0.2, 0.7; class 2: ratio 0 keeps nothing
    assert mask.tolist() == [False, True, False, True, False, True, True, False]
    for c, ratio in enumerate(ratios.tolist()):
        members = classes == c
        assert int(mask[members].sum()) == math.ceil(ratio * int(members.sum()) - 1e-9)


def test_per_class_selection_refuses_bad_input():
    losses, classes = torch.rand(4), torch.tensor([0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"classes must lie in \[0, 1\]"):
        small_loss_mask_per_class(losses, classes, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="ratios must lie in"):
        small_loss_mask_per_class(losses, classes, torch.tensor([0.5, 1.5, 0.2]))
    with pytest.raises(ValueError, match="one class per loss"):
        small_loss_mask_per_class(losses, classes[:3], torch.tensor([0.5, 0.5, 0.2]))
    with pytest.raises(TypeError, match="classes must be an integer tensor"):
        small_loss_mask_per_class(losses, classes.float(), torch.tensor([0.5, 0.5, 0.2]))
