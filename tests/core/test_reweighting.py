"""L2R and Meta-Weight-Net against their closed forms on a linear model."""

from pathlib import Path

import pytest
import torch
from torch import nn

from metaloss.core import Lookahead, MetaWeightNet, cross_entropy, l2r_weights

from .toys import launch_two_gloo_processes


def _setup(seed=0, batch=6, dim=4, classes=3):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(dim, classes).double()
    x, y = torch.randn(batch, dim, generator=g).double(), torch.randint(classes, (batch,), generator=g)
    xv, yv = torch.randn(10, dim, generator=g).double(), torch.randint(classes, (10,), generator=g)
    return model, x, y, xv, yv


def _flat_grad(loss, model):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])


@pytest.mark.parametrize("mode", ["exact", "last_layer"])
def test_l2r_weights_are_the_normalised_positive_gradient_alignments(mode):
    # At eps = 0, -dL_val/deps_i = lr * <grad L_val(theta), grad l_i(theta)> (Ren et al. eq. 12).
    model, x, y, xv, yv = _setup()
    model.forward_features = lambda t: t
    model.forward_head = lambda h, pre_logits=False: h if pre_logits else model(h)
    model.get_classifier = lambda: model
    lr = 0.3
    w = l2r_weights(model, x, lambda z: cross_entropy(z, y), xv, lambda z: cross_entropy(z, yv).mean(),
                    lookahead=Lookahead(lr), mode=mode)
    g_val = _flat_grad(cross_entropy(model(xv), yv).mean(), model)
    align = torch.stack([lr * _flat_grad(cross_entropy(model(x[i:i + 1]), y[i:i + 1]).sum(), model) @ g_val
                         for i in range(len(x))])
    expected = align.clamp(min=0) / align.clamp(min=0).sum()
    assert torch.allclose(w.double(), expected, atol=1e-8)
    assert w.min() >= 0 and abs(float(w.sum()) - 1) < 1e-9


def test_l2r_gives_zero_weights_when_no_example_helps():
    model, x, y, xv, yv = _setup()
    # validation loss that no training step can lower to first order: a constant in theta
    w = l2r_weights(model, x, lambda z: cross_entropy(z, y), xv, lambda z: (z * 0).sum(), lookahead=0.1)
    assert torch.equal(w, torch.zeros(len(x)))


def test_meta_weight_net_step_follows_the_finite_difference_hypergradient():
    torch.manual_seed(0)
    model, x, y, xv, yv = _setup()
    vnet = MetaWeightNet(hidden=5, lr=1e-3, weight_decay=0.0).double()
    lr = 0.5

    def val_after_lookahead(psi_vec):
        # theta'(psi) = theta - lr * grad mean_i V(l_i; psi) l_i, validation CE there
        torch.nn.utils.vector_to_parameters(psi_vec, vnet.net.parameters())
        losses = cross_entropy(model(x), y)
        inner = (vnet(losses) * losses).mean()
        grads = torch.autograd.grad(inner, list(model.parameters()))
        w, b = (p - lr * g for p, g in zip(model.parameters(), grads))
        return float(cross_entropy(xv @ w.T + b, yv).mean().detach())

    psi = torch.nn.utils.parameters_to_vector(vnet.net.parameters()).detach().clone()
    h = 1e-6
    numeric = torch.tensor([(val_after_lookahead(psi + h * e) - val_after_lookahead(psi - h * e)) / (2 * h)
                            for e in torch.eye(len(psi), dtype=psi.dtype)], dtype=psi.dtype)
    torch.nn.utils.vector_to_parameters(psi.clone(), vnet.net.parameters())
    captured = {}
    original_step = vnet.optimizer.step

    def recording_step():
        captured["g"] = torch.cat([p.grad.reshape(-1) for p in vnet.net.parameters()]).clone()
        original_step()

    vnet.optimizer.step = recording_step
    vnet.meta_step(model, x, lambda z: cross_entropy(z, y), xv, lambda z: cross_entropy(z, yv).mean(),
                   lookahead=lr)
    assert torch.allclose(captured["g"], numeric, rtol=1e-4, atol=1e-8)
    # and the Adam step moved psi against that gradient
    moved = torch.nn.utils.parameters_to_vector(vnet.net.parameters()).detach() - psi
    assert (moved * numeric < 0).float()[numeric.abs() > 1e-6].mean() == 1.0


def test_meta_weight_net_weights_lie_in_the_unit_interval_and_reject_bad_shapes():
    vnet = MetaWeightNet()
    w = vnet(torch.rand(7) * 5)
    assert w.shape == (7,) and bool(((w > 0) & (w < 1)).all())
    with pytest.raises(ValueError, match=r"\(B,\) vector"):
        vnet(torch.rand(7, 2))
    with pytest.raises(ValueError, match="hidden"):
        MetaWeightNet(hidden=0)


def test_l2r_rejects_a_loss_matrix():
    model, x, y, xv, yv = _setup()
    with pytest.raises(ValueError, match="per-example losses"):
        l2r_weights(model, x, lambda z: torch.stack([cross_entropy(z, y)] * 2, 1), xv,
                    lambda z: cross_entropy(z, yv).mean(), lookahead=0.1)


@pytest.mark.multiprocess
def test_meta_weight_net_stays_the_same_on_every_process(tmp_path):
    worker = Path(__file__).with_name("mwnet_worker.py")
    done = launch_two_gloo_processes(worker, str(tmp_path / "v"), port=29519)
    assert done.returncode == 0, done.stderr[-3000:]
    held = [torch.load(tmp_path / f"v-rank{r}.pt") for r in (0, 1)]
    rank0, rank1 = (h["v"] for h in held)
    torch.manual_seed(0)
    nn.Linear(5, 3)
    start = MetaWeightNet(hidden=8).net.state_dict()  # the workers' initial V
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert not all(torch.equal(rank0[k], start[k]) for k in rank0)  # it learned
    # The look-ahead's first call imports TorchDynamo; had that pinned the gloo group, its threads
    # would outlive end_training and the process would abort at exit.
    if Path("/proc/self/task").is_dir():
        for during, after in (h["gloo_threads"] for h in held):
            assert during > 0  # the count sees the group's threads while it lives
            assert after == 0

