"""Per-example losses against closed forms; the index wrapper; deterministic epoch batches."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from metaloss.core import (
    IndexedDataset,
    cross_entropy,
    dropout_mix_weights,
    epoch_batches,
    fixed_mix_weights,
    kd_loss,
    mix_losses,
)


def test_cross_entropy_hard_and_soft_targets_agree():
    z, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    hard = cross_entropy(z, y)
    assert hard.shape == (5,)
    torch.testing.assert_close(hard, -F.log_softmax(z, 1)[torch.arange(5), y])
    torch.testing.assert_close(cross_entropy(z, F.one_hot(y, 4).float()), hard)


def test_kd_loss_is_tau_squared_kl_summed_over_classes():
    s, t, tau = torch.randn(6, 3), torch.randn(6, 3), 4.0
    per_example = kd_loss(s, t, tau)
    p_t = F.softmax(t / tau, 1)
    want = tau**2 * (p_t * (p_t.log() - F.log_softmax(s / tau, 1))).sum(1)
    torch.testing.assert_close(per_example, want)
    # batch mean == PyTorch's 'batchmean' convention times tau^2
    batchmean = F.kl_div(F.log_softmax(s / tau, 1), p_t, reduction="batchmean") * tau**2
    torch.testing.assert_close(per_example.mean(), batchmean)
    assert torch.allclose(kd_loss(t, t, tau), torch.zeros(6), atol=1e-6)  # KL(p || p) = 0


def test_kd_loss_treats_the_teacher_as_constant():
    s, t = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    kd_loss(s, t).sum().backward()
    assert t.grad is None and s.grad is not None


def test_mix_losses_weighted_mean():
    losses = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weights = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert math.isclose(float(mix_losses(losses, weights)), (1.5 + 3.0) / 2)


def test_loss_input_errors():
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        cross_entropy(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="same number of rows"):
        cross_entropy(torch.randn(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), tau=0.0)
    with pytest.raises(TypeError, match="floating-point"):
        mix_losses(torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2))


def test_indexed_dataset_yields_the_index_first():
    ds = IndexedDataset(TensorDataset(torch.arange(5.0), torch.arange(5) * 10))
    i, x, y = ds[3]
    assert (i, float(x), int(y)) == (3, 3.0, 30)
    assert len(ds) == 5
    with pytest.raises(TypeError, match="map-style dataset"):
        IndexedDataset(iter([1, 2]))


def test_epoch_batches_are_a_pure_function_and_shards_partition_the_epoch():
    a = epoch_batches(23, 4, seed=1, epoch=2)
    assert [b.tolist() for b in a] == [b.tolist() for b in epoch_batches(23, 4, seed=1, epoch=2)]
    assert sorted(torch.cat(a).tolist()) == list(range(23))
    assert torch.cat(a).tolist() != torch.cat(epoch_batches(23, 4, seed=1, epoch=3)).tolist()
    shards = [epoch_batches(23, 4, seed=1, epoch=2, rank=r, world_size=2) for r in range(2)]
    assert sorted(torch.cat([torch.cat(s) for s in shards]).tolist()) == list(range(23))
    with pytest.raises(ValueError, match="rank must be < world_size"):
        epoch_batches(10, 2, seed=0, epoch=0, rank=2, world_size=2)


def test_fixed_mix_weights_are_classic_kd():
    w = fixed_mix_weights(3, 1, 0.9)
    torch.testing.assert_close(w, torch.tensor([[0.1, 0.9]]).expand(3, 2))
    w3 = fixed_mix_weights(2, 3, 0.9)
    torch.testing.assert_close(w3.sum(1), torch.ones(2))
    torch.testing.assert_close(w3[0, 1:], torch.full((3,), 0.3))
    with pytest.raises(ValueError, match="lambda_a must be a weight in"):
        fixed_mix_weights(2, 1, 1.5)
    with pytest.raises(ValueError, match="num_aux must be an int >= 1"):
        fixed_mix_weights(2, 0, 0.5)


def test_dropout_mix_weights_keep_at_least_one_guide_at_the_drop_rate():
    g = torch.Generator().manual_seed(0)
    rows = torch.stack([dropout_mix_weights(1, 4, 0.8, 0.5, generator=g)[0] for _ in range(4000)])
    torch.testing.assert_close(rows.sum(1), torch.ones(4000))  # the mix always sums to 1
    kept = rows[:, 1:] > 0
    assert kept.any(1).all()  # never zero guides
    # P(kept) = 0.5 per guide, plus the rescue of the all-dropped case (1/16, one guide of 4)
    expected = 0.5 + (0.5**4) / 4
    assert abs(kept.float().mean().item() - expected) < 0.02
    # the kept guides share lambda_a equally
    share = rows[:, 1:][kept] * kept.sum(1, keepdim=True).expand_as(kept)[kept]
    torch.testing.assert_close(share, torch.full_like(share, 0.8))
    with pytest.raises(ValueError, match="drop_prob must be a probability"):
        dropout_mix_weights(1, 2, 0.5, 1.0)
