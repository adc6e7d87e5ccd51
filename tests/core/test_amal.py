"""AMAL learns to trust auxiliary targets less where they are corrupted."""

import pytest
import torch
import torch.nn.functional as F

from metaloss.core import AMAL, Lookahead, cross_entropy, kd_loss

from .toys import MLP, gaussian_blobs

N, NV, C = 512, 256, 4


def _teacher_logits(y, corrupted, seed):
    """Confident teacher: right class, or a wrong class where ``corrupted``."""
    g = torch.Generator().manual_seed(seed)
    wrong = (y + torch.randint(1, C, y.shape, generator=g)) % C
    target = torch.where(corrupted, wrong, y)
    return 6.0 * F.one_hot(target, C).float()


def _train(num_aux, corrupted_sets, mode="last_layer", epochs=6, seed=0):
    torch.manual_seed(seed)
    x, y = gaussian_blobs(N, C, seed=1)
    xv, yv = gaussian_blobs(NV, C, seed=2)
    teachers = [_teacher_logits(y, c, seed=10 + k) for k, c in enumerate(corrupted_sets)]
    model = MLP(d_in=10, hidden=16, num_classes=C)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    amal = AMAL(N, num_aux, lr=2.0, every=1, mode=mode)

    def losses_fn(idx):
        return lambda z: torch.stack(
            [cross_entropy(z, y[idx])] + [kd_loss(z, t[idx], tau=2.0) for t in teachers], dim=1
        )

    def batches():
        perm = torch.randperm(N)
        for idx in perm.split(64):
            yield idx, x[idx], losses_fn(idx)

    for epoch in range(epochs):
        if amal.due(epoch):
            amal.meta_phase(model, batches, [(xv, yv)], lookahead=Lookahead.from_optimizer(opt))
        for idx, xb, fn in batches():
            opt.zero_grad()
            amal.loss(idx, fn(model(xb))).backward()
            opt.step()
    return amal.weights.table


def _half(seed):
    return torch.rand(N, generator=torch.Generator().manual_seed(seed)) < 0.5


@pytest.mark.parametrize("mode", ["last_layer", "exact", "first_order"])
def test_amal_lowers_lambda_a_on_corrupted_half(mode):
    corrupted = _half(3)
    table = _train(1, [corrupted], mode=mode)
    lam_a = table[:, 1]
    gap = lam_a[~corrupted].mean() - lam_a[corrupted].mean()
    clean, bad = lam_a[~corrupted].mean(), lam_a[corrupted].mean()
    assert gap > 0.3, f"lambda_a clean {clean:.3f} vs corrupted {bad:.3f}"
    # and it leans on the primary (true-label) loss there instead
    assert table[corrupted, 0].mean() > table[~corrupted, 0].mean()


def test_amal_with_three_auxiliary_losses():
    """K = 3 teachers, each corrupted on its own random half."""
    sets = [_half(s) for s in (4, 5, 6)]
    table = _train(3, sets)
    assert table.shape == (N, 4)
    for k, corrupted in enumerate(sets, start=1):
        lam = table[:, k]
        gap = lam[~corrupted].mean() - lam[corrupted].mean()
        clean, bad = lam[~corrupted].mean(), lam[corrupted].mean()
        assert gap > 0.2, f"teacher {k}: clean {clean:.3f}, corrupted {bad:.3f}"


def test_due_schedule_and_bad_inputs():
    amal = AMAL(10, 2, every=3)
    assert [e for e in range(10) if amal.due(e)] == [3, 6, 9]
    assert torch.allclose(amal.weights.table[0], torch.tensor([0.1, 0.45, 0.45]))
    idx = torch.arange(4)
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        amal.loss(idx, torch.rand(4, 2))
    with pytest.raises(ValueError, match="must be finite"):
        amal.loss(idx, torch.full((4, 3), float("nan")))
    with pytest.raises(ValueError, match="init needs"):
        AMAL(10, 2, init=[0.1, 0.9])
    with pytest.raises(ValueError, match="mode must be one of"):
        AMAL(10, 1, mode="full-ish")
    with pytest.raises(ValueError, match="unit must be one of"):
        AMAL(10, 1, unit="batch")
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 9\]"):
        amal.loss(torch.tensor([3, 10]), torch.rand(2, 3))
