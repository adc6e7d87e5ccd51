"""The one bi-level primitive: the one-step look-ahead hypergradient.

Given a model with parameters theta, meta-parameters phi, an inner loss
L_in(theta, phi) on a training batch and an outer loss L_out(theta) on a
validation batch, ``hypergradient`` returns

    d/dphi  L_out( theta'(phi) ),   theta'(phi) = SGD step of theta on L_in(theta, phi),

the meta-gradient of AMAL (AAAI 2023, Algorithm 1 and eqs. 4-6), L2RW and MW-Net.

How it is computed. The chain rule gives
    dL_out/dphi = -(d/dphi) < grad_theta L_in(theta, phi), lr * v >,   v = grad L_out(theta').
The inner loss sees theta only through the training logits z = f(theta, x), so
    < grad_theta L_in, t > = sum_i < dL_in/dz_i , zdot_i >,   zdot = J_theta f(theta, x) . t,
and the hypergradient is a cheap autograd pass through L_in(z, phi) alone once the
logit-space tangent zdot is known. The modes differ only in how zdot is obtained:

- ``"exact"``: a forward-mode product (``torch.func.jvp``) through the whole model;
  exact one-step second order, any ``nn.Module`` (timm, Hugging Face, plain).
- ``"last_layer"``: features are detached and only the linear head (W, b) is
  looked ahead. Closed form (AMAL eqs. 13-16): zdot_i = lr (G_val h_i + g_val),
  so for a weighted per-example loss the hypergradient of example i is
  -lr * delta_i^T (G_val h_i + g_val) / B. Exactly the ``"exact"`` mode restricted to the head.
- ``"finite_difference"``: zdot by central differences of the logits along the
  tangent, two extra forwards and no forward-mode autodiff.
- ``"first_order"``: v is taken at theta instead of theta', i.e. the exact
  derivative of the first-order expansion L_out(theta) - lr <grad L_out(theta),
  grad L_in(theta, phi)>. No inner backward pass is needed, so it costs one
  validation forward/backward and one ``jvp``; the error against ``"exact"`` is
  O(lr) relative, small at the learning rates SGD uses.

The look-ahead step can include the real optimiser's momentum buffer and weight
decay (``Lookahead.from_optimizer``). Look-ahead passes run on copies of the
model's buffers, so BatchNorm running statistics are never touched.

The model may return several tensors (a detector's scales): the losses then receive
them as the model returns them, a tuple, a list or a dict, and the tangent zdot has
the same structure (the contraction sums over all of them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call, jvp

from ..checks import check_choice, check_finite_loss, check_positive
from .split import Split, resolve_split

MODES = ("exact", "last_layer", "finite_difference", "first_order")

InnerLoss = Callable[[torch.Tensor, object], torch.Tensor]
OuterLoss = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Lookahead:
    """The SGD step the look-ahead imitates (PyTorch's SGD convention, dampening 0):

        theta' = theta - lr * (momentum * buf + grad + weight_decay * theta)

    ``per_param`` overrides (lr, momentum, weight_decay, momentum buffer) for
    individual parameter tensors; ``from_optimizer`` fills it from a real SGD.
    """

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    per_param: dict = field(default_factory=dict)

    def __post_init__(self):
        check_positive("lookahead lr", self.lr)
        check_positive("momentum", self.momentum, allow_zero=True)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)

    @classmethod
    def from_optimizer(cls, optimizer: torch.optim.Optimizer) -> Lookahead:
        """Imitate ``optimizer``'s next step, momentum buffers included."""
        if not isinstance(optimizer, torch.optim.SGD):
            raise TypeError(
                "the look-ahead imitates torch.optim.SGD (the meta-learning papers' optimiser); "
                f"got {type(optimizer).__name__}. Pass Lookahead(lr=...) to approximate it."
            )
        per_param = {}
        for group in optimizer.param_groups:
            if group.get("nesterov") or group.get("dampening", 0) != 0:
                raise ValueError("the look-ahead supports SGD without nesterov and dampening=0")
            for p in group["params"]:
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                per_param[p] = (group["lr"], group["momentum"], group["weight_decay"], buf)
        first = optimizer.param_groups[0]
        return cls(first["lr"], first["momentum"], first["weight_decay"], per_param)

    def settings(self, param: torch.Tensor) -> tuple[float, float, float, torch.Tensor | None]:
        return self.per_param.get(param, (self.lr, self.momentum, self.weight_decay, None))

    def step(self, param: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """theta' for one tensor; ``param`` is the model's tensor (the settings key)."""
        return self.advance(param, value, grad, self.settings(param)[3])[0]

    def advance(
        self, param: torch.Tensor, value: torch.Tensor, grad: torch.Tensor, buf: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(theta', buf') for one tensor, carrying the momentum buffer ``buf`` across steps.

        The single home of the SGD rule, so that one-step and K-step look-aheads agree:
        d = grad + weight_decay * theta; buf' = d when there is no buffer yet (PyTorch
        starts it so), else momentum * buf + d; theta' = theta - lr * buf'. Without
        momentum buf' is None and theta' = theta - lr * d.
        """
        lr, momentum, weight_decay, _ = self.settings(param)
        direction = grad + weight_decay * value if weight_decay else grad
        if not momentum:
            return value - lr * direction, None
        buf_next = direction if buf is None else momentum * buf + direction
        return value - lr * buf_next, buf_next


def hypergradient(
    model: nn.Module,
    inner_inputs,
    inner_loss: InnerLoss,
    outer_inputs,
    outer_loss: OuterLoss,
    meta_params,
    *,
    lookahead: Lookahead | float,
    mode: str = "exact",
    split: Split | None = None,
    fd_eps: float = 1e-4,
):
    """d L_out(theta'(phi)) / d phi for a one-step look-ahead of ``model``.

    Args:
        model: any ``nn.Module``; it is called as ``model(x)``, ``model(*x)`` or
            ``model(**x)`` for a tensor, tuple or dict of inputs. It returns logits,
            an object with ``.logits`` (Hugging Face), or a tuple, list or dict of
            tensors (several heads; not in ``"last_layer"`` mode).
        inner_inputs, outer_inputs: the training and validation batch inputs.
        inner_loss: ``inner_loss(logits, meta_params) -> scalar``; it may depend on
            the model only through the logits it is given.
        outer_loss: ``outer_loss(logits) -> scalar`` on the validation logits.
        meta_params: a tensor or a sequence of tensors phi, passed to ``inner_loss``
            as given (tensors that do not require grad are replaced by leaf copies).
        lookahead: a ``Lookahead`` or a plain SGD learning rate.
        mode: ``"exact"``, ``"last_layer"``, ``"finite_difference"`` or ``"first_order"``.
        split: for ``"last_layer"``, ``(features_fn, head)`` with ``head`` an
            ``nn.Linear``; default: ``resolve_split(model)`` (see ``split.py``).
        fd_eps: relative step of ``"finite_difference"``.

    Returns:
        The hypergradient, shaped like ``meta_params`` (a tensor or a tuple).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    check_choice("mode", mode, MODES)
    lookahead = _as_lookahead(lookahead)
    single, phi = _meta_leaves(meta_params)

    if mode == "last_layer":
        features, head = resolve_split(model, split)
        with torch.no_grad(), preserved_buffers(model):
            h_in, h_out = features(*_as_args(inner_inputs)), features(*_as_args(outer_inputs))
        hyper = last_layer_hypergradient(
            head, h_in, inner_loss, h_out, outer_loss, phi if not single else phi[0],
            lookahead=lookahead,
        )
        return hyper

    names, params = _trainable(model)
    if not params:
        raise ValueError("model has no parameter with requires_grad=True to look ahead on")
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())

    def logits_at(values: Sequence[torch.Tensor], inputs) -> torch.Tensor:
        # Fresh buffer copies per call: BatchNorm updates them in place.
        state = {**frozen, **dict(zip(names, values)), **{n: b.clone() for n, b in buffers.items()}}
        args, kwargs = _call_args(inputs)
        return _outputs(functional_call(model, state, args, kwargs))

    base = [p.detach() for p in params]
    if mode == "first_order":
        at, z_in = base, None  # v at theta: the look-ahead enters to first order in lr
    else:
        at, z_in = _lookahead_params(lookahead, params, base, logits_at, inner_inputs, inner_loss,
                                     _unflatten(single, phi))
    at = [t.detach().requires_grad_() for t in at]
    loss_out = _scalar("outer_loss", outer_loss(logits_at(at, outer_inputs)))
    v = torch.autograd.grad(loss_out, at, allow_unused=True)
    tangent = [
        lookahead.settings(p)[0] * (torch.zeros_like(p) if g is None else g)
        for p, g in zip(params, v)
    ]
    if mode == "finite_difference":
        z_dot = _central_difference(lambda vals: logits_at(vals, inner_inputs), base, tangent, fd_eps)
        if z_dot is None:
            z_dot = _each(torch.zeros_like, z_in)
    else:
        z_in, z_dot = _forward_mode(lambda *vals: logits_at(vals, inner_inputs), base, tangent)
    hyper = _contract(_each(torch.Tensor.detach, z_in), _each(torch.Tensor.detach, z_dot), inner_loss,
                      _unflatten(single, phi), phi)
    return hyper[0] if single else tuple(hyper)


def last_layer_hypergradient(
    head: nn.Linear,
    inner_features: torch.Tensor,
    inner_loss: InnerLoss,
    outer_features: torch.Tensor,
    outer_loss: OuterLoss,
    meta_params,
    *,
    lookahead: Lookahead | float,
):
    """Closed-form hypergradient when only the linear ``head`` is looked ahead.

    ``inner_features`` (B, D) and ``outer_features`` (V, D) are the detached
    penultimate features; callers that run many meta steps against one
    validation set compute ``outer_features`` once and reuse them.
    """
    if not isinstance(head, nn.Linear):
        raise TypeError(f"head must be an nn.Linear, got {type(head).__name__}")
    for name, h in (("inner_features", inner_features), ("outer_features", outer_features)):
        if not isinstance(h, torch.Tensor) or h.ndim != 2 or h.shape[1] != head.in_features:
            shape = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
            raise ValueError(f"{name} must be (N, {head.in_features}) features, got {shape}")
    lookahead = _as_lookahead(lookahead)
    single, phi = _meta_leaves(meta_params)
    weight, bias = head.weight, head.bias
    h_in, h_out = inner_features.detach(), outer_features.detach()
    w, b = weight.detach(), None if bias is None else bias.detach()

    def linear(h, w_, b_):
        return h @ w_.T if b_ is None else torch.addmm(b_, h, w_.T)

    z_in = linear(h_in, w, b).requires_grad_()
    loss_in = _scalar("inner_loss", inner_loss(z_in, _unflatten(single, phi)))
    (dz,) = torch.autograd.grad(loss_in, z_in)
    with torch.no_grad():
        w_next = lookahead.step(weight, w, dz.T @ h_in)
        b_next = None if b is None else lookahead.step(bias, b, dz.sum(0))
    z_out = linear(h_out, w_next, b_next).requires_grad_()
    loss_out = _scalar("outer_loss", outer_loss(z_out))
    (dz_out,) = torch.autograd.grad(loss_out, z_out)
    with torch.no_grad():
        # zdot_i = lr_W * G_W h_i + lr_b * g_b with G_W = dz_out^T h_out, g_b = sum dz_out.
        z_dot = lookahead.settings(weight)[0] * (h_in @ (dz_out.T @ h_out).T)
        if b is not None:
            z_dot += lookahead.settings(bias)[0] * dz_out.sum(0)
    hyper = _contract(z_in.detach(), z_dot, inner_loss, _unflatten(single, phi), phi)
    return hyper[0] if single else tuple(hyper)


def _lookahead_params(lookahead, params, base, logits_at, inputs, inner_loss, phi_arg):
    """theta' = one look-ahead step on L_in(theta, phi), and the inner logits at theta."""
    theta = [b.detach().requires_grad_() for b in base]
    z_in = logits_at(theta, inputs)
    loss_in = _scalar("inner_loss", inner_loss(z_in, phi_arg))
    grads = torch.autograd.grad(loss_in, theta, allow_unused=True)
    with torch.no_grad():
        theta_next = [
            lookahead.step(p, t, torch.zeros_like(t) if g is None else g)
            for p, t, g in zip(params, theta, grads)
        ]
    return theta_next, _each(torch.Tensor.detach, z_in)


def _forward_mode(logits_fn, base, tangent):
    """(logits, J . tangent) by ``torch.func.jvp``, with a clear error where PyTorch has no rule."""
    try:
        return jvp(logits_fn, tuple(base), tuple(tangent))
    except (NotImplementedError, RuntimeError) as err:
        if "forward AD" not in str(err) and "forward-mode" not in str(err):
            raise
        raise NotImplementedError(
            "modes 'exact' and 'first_order' need forward-mode autodiff through every operation of "
            f"the model, and this PyTorch has none for one of them ({str(err).splitlines()[0]}). Use "
            "mode='finite_difference', or for Hugging Face models attn_implementation='eager'."
        ) from err


@torch.no_grad()
def _central_difference(logits_fn, base, tangent, fd_eps):
    """J . tangent by central differences with a step of ``fd_eps`` relative to |tangent|; None if 0."""
    norm = torch.sqrt(sum((t * t).sum() for t in tangent))
    if norm == 0:
        return None
    eps = fd_eps / norm
    plus = logits_fn([b + eps * t for b, t in zip(base, tangent)])
    minus = logits_fn([b - eps * t for b, t in zip(base, tangent)])
    return _each(lambda p, m: (p - m) / (2 * eps), plus, minus)


@contextlib.contextmanager
def preserved_buffers(model: nn.Module):
    """Restore every buffer (BatchNorm running statistics, counters) on exit."""
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(saved[name])


def _contract(z, z_dot, inner_loss, phi_arg, phi):
    """-d/dphi sum_i <dL_in/dz_i, zdot_i>: the hypergradient given the logit tangent
    (summed over every output tensor when the model returns several)."""
    z = _each(torch.Tensor.requires_grad_, z)
    leaves, tangents = _leaves(z), _leaves(z_dot)
    loss = inner_loss(z, phi_arg)
    dz = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
    dot = sum((d * t).sum() for d, t in zip(dz, tangents) if d is not None)
    if not isinstance(dot, torch.Tensor):  # the inner loss reads none of the outputs
        return [torch.zeros_like(p) for p in phi]
    grads = torch.autograd.grad(dot, phi, allow_unused=True)
    return [torch.zeros_like(p) if g is None else -g for p, g in zip(phi, grads)]


def _as_lookahead(lookahead) -> Lookahead:
    if isinstance(lookahead, Lookahead):
        return lookahead
    if isinstance(lookahead, (int, float)) and not isinstance(lookahead, bool):
        return Lookahead(lr=float(lookahead))
    raise TypeError(f"lookahead must be a Lookahead or a learning rate, got {type(lookahead).__name__}")


def _meta_leaves(meta_params) -> tuple[bool, list[torch.Tensor]]:
    single = isinstance(meta_params, torch.Tensor)
    items = [meta_params] if single else list(meta_params) if isinstance(meta_params, Sequence) else None
    if not items or not all(isinstance(p, torch.Tensor) and p.is_floating_point() for p in items):
        raise TypeError(
            "meta_params must be a floating-point tensor or a non-empty sequence of them, "
            f"got {type(meta_params).__name__}"
        )
    return single, [p if p.requires_grad else p.detach().requires_grad_() for p in items]


def _unflatten(single: bool, phi: list[torch.Tensor]):
    return phi[0] if single else tuple(phi)


def _trainable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def _scalar(name: str, loss) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"{name} must return a scalar tensor, got {shape}")
    return check_finite_loss(name, loss.reshape(()))


def _call_args(inputs) -> tuple[tuple, dict]:
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    raise TypeError(f"inputs must be a tensor, a tuple or a dict, got {type(inputs).__name__}")


def _as_args(inputs) -> tuple:
    args, kwargs = _call_args(inputs)
    if kwargs:
        raise TypeError("last_layer mode passes inputs positionally; give a tensor or a tuple")
    return args


def _outputs(output):
    """A model's outputs as the losses receive them: a tensor, the ``.logits`` of an output object
    (Hugging Face's, itself a dict), or a tuple, list or dict of tensors (several heads)."""
    if isinstance(output, torch.Tensor) or isinstance(getattr(output, "logits", None), torch.Tensor):
        return _logits(output)
    several = isinstance(output, (tuple, list, Mapping)) and len(output) > 0
    values = output.values() if isinstance(output, Mapping) else output
    if several and all(isinstance(t, torch.Tensor) for t in values):
        return output
    raise TypeError("the model must return logits, an object with .logits, or a tuple, list or dict of "
                    f"tensors, got {type(output).__name__}")


def _each(fn, *trees):
    """``fn`` applied leaf-wise to tensors or to tuples, lists or dicts of tensors of one structure."""
    first = trees[0]
    if isinstance(first, torch.Tensor):
        return fn(*trees)
    if isinstance(first, Mapping):
        return {key: fn(*(tree[key] for tree in trees)) for key in first}
    return type(first)(fn(*leaves) for leaves in zip(*trees))


def _leaves(tree) -> list[torch.Tensor]:
    """The tensors of a tensor or of a tuple, list or dict of tensors."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    return list(tree.values()) if isinstance(tree, Mapping) else list(tree)


def _logits(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise TypeError(f"the model must return logits or an object with .logits, got {type(output).__name__}")
