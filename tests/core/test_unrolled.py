"""unroll / unrolled_hypergradient against hypergradient (K = 1), against central finite differences
of K real torch.optim.SGD steps (float64), and against the real optimiser's own trajectory."""

import copy

import pytest
import torch
from torch import nn

from metaloss.core import (
    Lookahead,
    Unrolled,
    cross_entropy,
    hypergradient,
    unroll,
    unrolled_hypergradient,
    unrolled_logits,
)

from .toys import MLP

B, V, C, K = 6, 5, 4, 3
KINDS = ["mlp", "cnn", "cnn_eval"]  # cnn_eval: BatchNorm reads (and keeps) its running statistics
OPTIMIZERS = ["plain", "fresh_momentum", "stepped_momentum"]

pytestmark = pytest.mark.usefixtures("float64_default")


class SmallCNN(nn.Module):
    """Conv + BatchNorm + ReLU and a linear head, for the running statistics."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
        self.fc = nn.Linear(3 * 4 * 4, C)
        with torch.no_grad():  # running statistics that differ from their defaults, so eval mode uses them
            self.body[1].running_mean.uniform_(-0.5, 0.5)
            self.body[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))


def _model(kind):
    model = MLP(d_in=3, hidden=8, num_classes=C) if kind == "mlp" else SmallCNN()
    return model.train(kind != "cnn_eval")


def _inputs(kind, n):
    return torch.randn(n, 3) if kind == "mlp" else torch.randn(n, 2, 6, 6)


def _optimizer(model, kind):
    """A real SGD: without momentum, with momentum but no buffer yet, or with buffers from one step."""
    if kind == "plain":
        return torch.optim.SGD(model.parameters(), lr=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=0.01)
    if kind == "stepped_momentum":
        for p in model.parameters():
            p.grad = 0.1 * torch.randn_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return optimizer


def _weighted_steps(kind, n_steps):
    """(inputs, inner_loss) pairs; step k weights its per-example CE by row k of the meta params."""
    steps = []
    for k in range(n_steps):
        y = torch.randint(0, C, (B,))
        steps.append((_inputs(kind, B), lambda z, w, k=k, y=y: (w[k] * cross_entropy(z, y)).mean()))
    return steps


def _loss_net_steps(kind, n_steps):
    """(inputs, inner_loss) pairs whose loss is a tiny linear loss network's (weight, bias)."""
    steps = []
    for _ in range(n_steps):
        y = torch.randint(0, C, (B,))

        def inner(z, phi, y=y):
            features = torch.cat([torch.log_softmax(z, 1), nn.functional.one_hot(y, C).to(z.dtype)], 1)
            return nn.functional.softplus(nn.functional.linear(features, *phi)).mean()

        steps.append((_inputs(kind, B), inner))
    return steps


def _meta_problem(kind, meta, n_steps):
    """The steps and meta params of one of the two meta-parameter families."""
    if meta == "weights":
        return _weighted_steps(kind, n_steps), torch.rand(n_steps, B) + 0.5
    return _loss_net_steps(kind, n_steps), tuple(nn.Linear(2 * C, 1).parameters())


def _outer(kind):
    x_out, y_out = _inputs(kind, V), torch.randint(0, C, (V,))
    return x_out, lambda z: cross_entropy(z, y_out).mean()


def _trained(model, optimizer, steps, meta):
    """A copy of ``model`` after len(steps) real steps of a copy of ``optimizer`` at fixed ``meta``."""
    model = copy.deepcopy(model)
    real = torch.optim.SGD(model.parameters(), lr=optimizer.defaults["lr"])
    real.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    fixed = meta.detach() if isinstance(meta, torch.Tensor) else tuple(m.detach() for m in meta)
    for inputs, inner_loss in steps:
        real.zero_grad(set_to_none=True)
        inner_loss(model(inputs), fixed).backward()
        real.step()
    return model


def _finite_differences(objective, meta, eps=1e-6):
    """Central differences of ``objective`` entry by entry, shaped like ``meta`` (a tensor or a tuple)."""
    single = isinstance(meta, torch.Tensor)
    tensors = [meta.detach()] if single else [m.detach() for m in meta]

    def at(i, j, delta):
        moved = tensors[i].clone()
        moved.view(-1)[j] += delta
        args = tensors[:i] + [moved] + tensors[i + 1:]
        return objective(args[0] if single else tuple(args))

    grads = [torch.zeros_like(t) for t in tensors]
    for i, t in enumerate(tensors):
        for j in range(t.numel()):
            grads[i].view(-1)[j] = (at(i, j, eps) - at(i, j, -eps)) / (2 * eps)
    return grads[0] if single else tuple(grads)


def _state(model):
    return [t.detach().clone() for t in (*model.parameters(), *model.buffers())]


def _assert_unchanged(model, before):
    for saved, now in zip(before, (*model.parameters(), *model.buffers())):
        assert torch.equal(saved, now)
    assert all(p.grad is None for p in model.parameters())


def _as_tuple(x):
    return (x,) if isinstance(x, torch.Tensor) else tuple(x)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("optimizer", ["plain", "stepped_momentum"])
@pytest.mark.parametrize("meta", ["weights", "loss_net"])
def test_one_step_equals_exact_hypergradient(kind, optimizer, meta):
    model = _model(kind)
    lookahead = Lookahead.from_optimizer(_optimizer(model, optimizer))
    steps, phi = _meta_problem(kind, meta, 1)
    x_out, outer = _outer(kind)
    (x_in, inner), = steps

    got = unrolled_hypergradient(model, steps, x_out, outer, phi, lookahead=lookahead)
    want = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=lookahead, mode="exact")
    assert type(got) is type(want)
    for g, w in zip(_as_tuple(got), _as_tuple(want)):
        assert w.abs().max() > 1e-4  # the check is not vacuous
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("meta", ["weights", "loss_net"])
def test_three_steps_match_finite_differences_of_real_sgd(kind, meta):
    """K = 3 with momentum carried from a stepped optimiser and weight decay, against real training."""
    model = _model(kind)
    optimizer = _optimizer(model, "stepped_momentum")
    steps, phi = _meta_problem(kind, meta, K)
    x_out, outer = _outer(kind)

    got = unrolled_hypergradient(model, steps, x_out, outer, phi,
                                 lookahead=Lookahead.from_optimizer(optimizer))
    want = _finite_differences(
        lambda m: outer(_trained(model, optimizer, steps, m)(x_out)).detach(), phi
    )
    for g, w in zip(_as_tuple(got), _as_tuple(want)):
        assert g.shape == w.shape
        assert w.abs().max() > 1e-4
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_unroll_follows_real_sgd_and_leaves_the_model_alone(kind, optimizer):
    model = _model(kind)
    model.body[0].bias.requires_grad_(False)
    real_optimizer = _optimizer(model, optimizer)
    lookahead = Lookahead.from_optimizer(real_optimizer)
    steps, phi = _meta_problem(kind, "weights", K)
    x_out, outer = _outer(kind)
    before = _state(model)

    unrolled = unroll(model, steps, phi, lookahead=lookahead)
    detached = unroll(model, steps, phi, lookahead=lookahead, create_graph=False)
    unrolled_hypergradient(model, steps, x_out, outer, phi, lookahead=lookahead)
    _assert_unchanged(model, before)

    real = _trained(model, real_optimizer, steps, phi)
    trainable = {n: p for n, p in real.named_parameters() if p.requires_grad}
    assert unrolled.params.keys() == trainable.keys()
    for name, p in trainable.items():
        assert unrolled.params[name].requires_grad and not detached.params[name].requires_grad
        torch.testing.assert_close(unrolled.params[name].detach(), p.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(detached.params[name], p.detach(), rtol=1e-12, atol=1e-14)
    assert unrolled.frozen.keys() == {"body.0.bias"}
    assert torch.equal(unrolled.frozen["body.0.bias"], model.body[0].bias)
    real_buffers = dict(real.named_buffers())
    assert unrolled.buffers.keys() == real_buffers.keys()
    for name, b in real_buffers.items():
        torch.testing.assert_close(unrolled.buffers[name], b, rtol=1e-12, atol=1e-14)
    if kind == "cnn":  # the comparison is not vacuous: the K steps moved the running statistics
        assert not torch.equal(unrolled.buffers["body.1.running_mean"], model.body[1].running_mean)
        assert int(unrolled.buffers["body.1.num_batches_tracked"]) == K

    kept = {n: b.clone() for n, b in unrolled.buffers.items()}
    torch.testing.assert_close(unrolled_logits(model, unrolled, x_out).detach(), real(x_out).detach(),
                               rtol=1e-10, atol=1e-12)
    for name, b in kept.items():  # evaluating works on a copy of the buffers
        assert torch.equal(unrolled.buffers[name], b)
    _assert_unchanged(model, before)


def test_gradient_reaches_what_produced_the_meta_params():
    """meta = 2 * psi: d/dpsi = 2 d/dmeta, so unroll kept meta in the graph instead of detaching it."""
    model = _model("cnn")
    lookahead = Lookahead.from_optimizer(_optimizer(model, "stepped_momentum"))
    steps, _ = _meta_problem("cnn", "weights", K)
    x_out, outer = _outer("cnn")
    psi = (torch.rand(K, B) + 0.5).requires_grad_()

    by_meta = unrolled_hypergradient(model, steps, x_out, outer, (2 * psi).detach(), lookahead=lookahead)
    unrolled = unroll(model, steps, 2 * psi, lookahead=lookahead)
    (by_psi,) = torch.autograd.grad(outer(unrolled_logits(model, unrolled, x_out)), psi)
    assert by_meta.abs().max() > 1e-4
    torch.testing.assert_close(by_psi, 2 * by_meta, rtol=1e-10, atol=1e-13)
    non_leaf = unrolled_hypergradient(model, steps, x_out, outer, 2 * psi, lookahead=lookahead)
    torch.testing.assert_close(non_leaf, by_meta, rtol=1e-10, atol=1e-13)


def test_bad_inputs_raise_clear_errors():
    model = _model("mlp")
    steps, phi = _meta_problem("mlp", "weights", 2)
    x_out, outer = _outer("mlp")
    (x_in, inner) = steps[0]
    cases = [
        (ValueError, r"steps must hold at least one \(inputs, inner_loss\) pair, got an empty",
         lambda: unroll(model, [], phi, lookahead=0.1)),
        (TypeError, r"steps must be a sequence of \(inputs, inner_loss\) pairs, got generator",
         lambda: unroll(model, (s for s in steps), phi, lookahead=0.1)),
        (TypeError, r"steps\[1\] must be an \(inputs, inner_loss\) pair, got a tuple of 3 items",
         lambda: unroll(model, [steps[0], (x_in, inner, inner)], phi, lookahead=0.1)),
        (TypeError, r"steps\[0\] must be an \(inputs, inner_loss\) pair, got Tensor",
         lambda: unroll(model, [x_in], phi, lookahead=0.1)),
        (TypeError, r"steps\[0\]: inner_loss must be callable .* got str",
         lambda: unroll(model, [(x_in, "ce")], phi, lookahead=0.1)),
        (TypeError, r"model must be an nn.Module, got function",
         lambda: unrolled_hypergradient(lambda x: x, steps, x_out, outer, phi, lookahead=0.1)),
        (ValueError, r"no parameter with requires_grad=True",
         lambda: unroll(_model("mlp").requires_grad_(False), steps, phi, lookahead=0.1)),
        (ValueError, r"inner_loss of step 1 must return a scalar tensor, got \(6, 4\)",
         lambda: unroll(model, [steps[0], (x_in, lambda z, w: z)], phi, lookahead=0.1)),
        (ValueError, r"inner_loss of step 0 must be finite",
         lambda: unroll(model, [(x_in, lambda z, w: z.sum() * float("nan"))], phi, lookahead=0.1)),
        (ValueError, r"outer_loss must return a scalar tensor",
         lambda: unrolled_hypergradient(model, steps, x_out, lambda z: z, phi, lookahead=0.1)),
        (TypeError, r"meta_params must be a floating-point tensor",
         lambda: unroll(model, steps, [1.0], lookahead=0.1)),
        (TypeError, r"lookahead must be a Lookahead or a learning rate, got str",
         lambda: unroll(model, steps, phi, lookahead="0.1")),
        (TypeError, r"create_graph must be a bool, got int",
         lambda: unroll(model, steps, phi, lookahead=0.1, create_graph=1)),
        (TypeError, r"unrolled must be the Unrolled that unroll returns, got dict",
         lambda: unrolled_logits(model, {}, x_out)),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
    assert isinstance(unroll(model, steps, phi, lookahead=0.1), Unrolled)
