"""hypergradient against central finite differences of the look-ahead objective (float64)."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from metaloss.core import Lookahead, cross_entropy, hypergradient, kd_loss, mix_losses

from .toys import MLP

B, V, C = 6, 5, 4


pytestmark = pytest.mark.usefixtures("float64_default")


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
        self.fc = nn.Linear(3 * 4 * 4, C)

    def forward_features(self, x):
        return self.conv(x)

    def forward_head(self, h, pre_logits=False):
        h = h.flatten(1)
        return h if pre_logits else self.fc(h)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _problem(kind):
    model = MLP(d_in=3, hidden=8, num_classes=C) if kind == "mlp" else SmallCNN()
    shape = (3,) if kind == "mlp" else (2, 6, 6)
    x_in, x_out = torch.randn(B, *shape), torch.randn(V, *shape)
    y_in, y_out = torch.randint(0, C, (B,)), torch.randint(0, C, (V,))
    teacher = torch.randn(B, C)

    def inner(z, phi):
        losses = torch.stack([cross_entropy(z, y_in), kd_loss(z, teacher, tau=2.0)], dim=1)
        return mix_losses(losses, phi)

    def outer(z):
        return cross_entropy(z, y_out).mean()

    phi = torch.rand(B, 2) + 0.1
    return model, x_in, inner, x_out, outer, phi


def _lookahead_objective(model, x_in, inner, x_out, outer, phi, la: Lookahead, only=None):
    """L_out(theta'(phi)) built directly, for finite differences."""
    params = {n: p for n, p in model.named_parameters() if only is None or n.startswith(only)}
    fixed = {n: p for n, p in model.named_parameters() if n not in params}

    def call(values, x):
        bufs = {n: b.clone() for n, b in model.named_buffers()}
        return functional_call(model, {**fixed, **values, **bufs}, (x,))

    values = {n: p.detach().requires_grad_() for n, p in params.items()}
    grads = torch.autograd.grad(inner(call(values, x_in), phi), list(values.values()))
    new = {n: la.step(params[n], values[n].detach(), g) for n, g in zip(values, grads)}
    return outer(call(new, x_out))


def _finite_differences(fn, phi, eps=1e-6):
    out = torch.zeros_like(phi)
    for i in range(phi.numel()):
        d = torch.zeros_like(phi).view(-1)
        d[i] = eps
        d = d.view_as(phi)
        out.view(-1)[i] = (fn(phi + d) - fn(phi - d)) / (2 * eps)
    return out


def _lookahead_with_state(model):
    """An SGD with momentum and weight decay that has already taken a step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9, weight_decay=0.01)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    return Lookahead.from_optimizer(opt)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("with_momentum", [False, True])
def test_exact_mode_matches_finite_differences(kind, with_momentum):
    model, x_in, inner, x_out, outer, phi = _problem(kind)
    model.train()
    la = _lookahead_with_state(model) if with_momentum else Lookahead(lr=0.5)
    running = [b.clone() for b in model.buffers()]

    got = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=la, mode="exact")
    want = _finite_differences(
        lambda p: _lookahead_objective(model, x_in, inner, x_out, outer, p, la), phi
    )
    assert got.shape == phi.shape
    assert want.abs().max() > 1e-4  # the check is not vacuous
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
    # look-ahead passes leave BatchNorm's running statistics untouched
    for before, after in zip(running, model.buffers()):
        assert torch.equal(before, after)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_last_layer_equals_exact_restricted_to_head(kind):
    model, x_in, inner, x_out, outer, phi = _problem(kind)
    la = Lookahead(lr=0.5, momentum=0.0, weight_decay=0.01)
    last = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=la, mode="last_layer")
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("fc."))
    exact_head = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=la, mode="exact")
    torch.testing.assert_close(last, exact_head, rtol=1e-9, atol=1e-12)
    want = _finite_differences(
        lambda p: _lookahead_objective(model, x_in, inner, x_out, outer, p, la, only="fc."), phi
    )
    torch.testing.assert_close(last, want, rtol=1e-5, atol=1e-8)


def test_last_layer_closed_form_per_example():
    """-lr * delta_i^T (G_val h_i + g_val) / B for a weighted per-example CE (K = 1)."""
    model, x_in, _, x_out, outer, _ = _problem("mlp")
    y_in = torch.randint(0, C, (B,))
    w = torch.rand(B, 1)
    lr = 0.7
    got = hypergradient(
        model, x_in, lambda z, w_: mix_losses(cross_entropy(z, y_in)[:, None], w_),
        x_out, outer, w, lookahead=lr, mode="last_layer",
    )
    with torch.no_grad():
        h_in, h_out = model.body(x_in), model.body(x_out)
        fc = model.fc
        delta = torch.softmax(fc(h_in), 1) - nn.functional.one_hot(y_in, C)  # dCE/dz_i
        w_next = fc.weight - lr * (w * delta).T @ h_in / B
        b_next = fc.bias - lr * (w * delta).sum(0) / B
    z_out = (h_out @ w_next.T + b_next).requires_grad_()
    (d_out,) = torch.autograd.grad(outer(z_out), z_out)
    g_w, g_b = d_out.T @ h_out, d_out.sum(0)  # G_val and g_val at the looked-ahead head
    want = -lr * ((delta @ g_w) * h_in).sum(1, keepdim=True) / B - lr * (delta @ g_b)[:, None] / B
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_finite_difference_mode_approximates_exact(kind):
    model, x_in, inner, x_out, outer, phi = _problem(kind)
    exact = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=0.5, mode="exact")
    approx = hypergradient(
        model, x_in, inner, x_out, outer, phi, lookahead=0.5, mode="finite_difference"
    )
    torch.testing.assert_close(approx, exact, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_first_order_mode_is_the_derivative_of_the_linearised_objective(kind):
    """-lr d/dphi <grad L_in(theta, phi), grad L_out(theta)>, by double backward.

    Momentum and weight decay do not depend on phi, so they drop out of it.
    """
    model, x_in, inner, x_out, outer, phi = _problem(kind)
    model.train()
    la = _lookahead_with_state(model)
    got = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=la, mode="first_order")

    params = dict(model.named_parameters())

    def call(x):
        return functional_call(model, {**params, **{n: b.clone() for n, b in model.named_buffers()}}, (x,))

    v = torch.autograd.grad(outer(call(x_out)), list(params.values()))
    phi_leaf = phi.clone().requires_grad_()
    g = torch.autograd.grad(inner(call(x_in), phi_leaf), list(params.values()), create_graph=True)
    dot = sum(la.settings(p)[0] * (gi * vi).sum() for p, gi, vi in zip(params.values(), g, v))
    (want,) = torch.autograd.grad(-dot, phi_leaf)
    assert want.abs().max() > 1e-4
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_first_order_mode_approaches_exact_as_the_step_shrinks(kind):
    """The difference to the exact look-ahead is O(lr) relative (the tiny-batch BN CNN is
    curved enough that the linear regime starts below lr ~ 1e-3)."""
    model, x_in, inner, x_out, outer, phi = _problem(kind)
    errors = []
    for lr in (1e-3, 1e-4, 1e-5):
        exact = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=lr, mode="exact")
        first = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=lr, mode="first_order")
        errors.append(float((first - exact).norm() / exact.norm()))
    assert errors[0] > 1e-4, errors  # the modes really differ at a large step
    assert errors[1] < errors[0] / 5 and errors[2] < errors[1] / 5, errors
    assert errors[2] < 1e-4, errors


def test_nonlinear_meta_parameters_and_tuple_output():
    """phi enters through a sigmoid and a second tensor: still the true derivative."""
    model, x_in, _, x_out, outer, _ = _problem("mlp")
    y_in = torch.randint(0, C, (B,))
    a, s = torch.randn(B), torch.tensor(0.3)

    def inner(z, phi):
        a_, s_ = phi
        return (torch.sigmoid(a_) * cross_entropy(z, y_in)).mean() * torch.exp(s_)

    got_a, got_s = hypergradient(model, x_in, inner, x_out, outer, (a, s), lookahead=0.5)
    want_a = _finite_differences(
        lambda p: _lookahead_objective(model, x_in, inner, x_out, outer, (p, s), Lookahead(0.5)), a
    )
    want_s = _finite_differences(
        lambda p: _lookahead_objective(model, x_in, inner, x_out, outer, (a, p), Lookahead(0.5)), s
    )
    torch.testing.assert_close(got_a, want_a, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(got_s, want_s, rtol=1e-5, atol=1e-8)


class TwoHeads(nn.Module):
    """A shared trunk with two heads, returned as a tuple or a dict (a detector's scales)."""

    def __init__(self, as_dict: bool):
        super().__init__()
        self.as_dict = as_dict
        self.trunk = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh())
        self.a, self.b = nn.Linear(8, C), nn.Linear(8, 2)

    def forward(self, x):
        h = self.trunk(x)
        return {"a": self.a(h), "b": self.b(h)} if self.as_dict else (self.a(h), self.b(h))


@pytest.mark.parametrize("as_dict", [False, True])
def test_several_output_tensors_in_every_full_model_mode(as_dict):
    """phi mixes a loss on each head: every mode differentiates through both."""
    model = TwoHeads(as_dict).train()
    x_in, x_out = torch.randn(B, 3), torch.randn(V, 3)
    y_in, y_out, r_in = torch.randint(0, C, (B,)), torch.randint(0, C, (V,)), torch.randn(B, 2)

    def heads(z):
        return (z["a"], z["b"]) if as_dict else z

    def inner(z, phi):
        a, b = heads(z)
        losses = torch.stack([cross_entropy(a, y_in), ((b - r_in) ** 2).sum(1)], dim=1)
        return mix_losses(losses, phi)

    def outer(z):
        a, b = heads(z)
        return cross_entropy(a, y_out).mean() + (b ** 2).mean()

    phi, la = torch.rand(B, 2) + 0.1, Lookahead(lr=0.5)
    exact = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=la, mode="exact")
    want = _finite_differences(lambda p: _lookahead_objective(model, x_in, inner, x_out, outer, p, la), phi)
    assert want[:, 0].abs().max() > 1e-4 and want[:, 1].abs().max() > 1e-4  # both heads matter
    torch.testing.assert_close(exact, want, rtol=1e-5, atol=1e-8)
    by_differences = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=la,
                                   mode="finite_difference")
    torch.testing.assert_close(by_differences, exact, rtol=1e-4, atol=1e-7)
    # first order: the derivative of L_out(theta) - lr <grad L_out(theta), grad L_in(theta, phi)>
    first = hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=la, mode="first_order")
    params = dict(model.named_parameters())
    v = torch.autograd.grad(outer(functional_call(model, {**params, **_buffer_copies(model)}, (x_out,))),
                            list(params.values()))

    def linearised(p):
        z = functional_call(model, {**params, **_buffer_copies(model)}, (x_in,))
        g = torch.autograd.grad(inner(z, p), list(params.values()), create_graph=True)
        return -0.5 * sum((gi * vi).sum() for gi, vi in zip(g, v))

    torch.testing.assert_close(first, _finite_differences(linearised, phi), rtol=1e-5, atol=1e-8)


def _buffer_copies(model):
    return {n: b.clone() for n, b in model.named_buffers()}


def test_bad_inputs_raise_clear_errors():
    model, x_in, inner, x_out, outer, phi = _problem("mlp")
    with pytest.raises(ValueError, match="mode must be one of"):
        hypergradient(model, x_in, inner, x_out, outer, phi, lookahead=0.1, mode="second")
    with pytest.raises(ValueError, match="inner_loss must be finite"):
        hypergradient(model, x_in, lambda z, p: (z.sum() * p.sum()) * float("nan"), x_out, outer,
                      phi, lookahead=0.1)
    with pytest.raises(ValueError, match="losses and weights must both be"):
        hypergradient(model, x_in, inner, x_out, outer, phi[:, :1], lookahead=0.1)
    with pytest.raises(ValueError, match="scalar"):
        hypergradient(model, x_in, lambda z, p: z, x_out, outer, phi, lookahead=0.1)
    with pytest.raises(TypeError, match="meta_params"):
        hypergradient(model, x_in, inner, x_out, outer, [1.0], lookahead=0.1)
    with pytest.raises(TypeError, match="torch.optim.SGD"):
        Lookahead.from_optimizer(torch.optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="lookahead lr"):
        Lookahead(lr=-1.0)
    with pytest.raises(ValueError, match="last_layer mode needs"):
        hypergradient(nn.Linear(3, C), x_in, inner, x_out, outer, phi, lookahead=0.1,
                      mode="last_layer")
