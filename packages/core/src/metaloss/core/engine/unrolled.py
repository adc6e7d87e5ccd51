"""The K-step look-ahead ("unrolled") hypergradient.

L2T-DLN's LSTM teacher (NeurIPS 2023) trains a loss network by the gradient of the
validation loss with respect to the loss network's parameters phi, taken through K
unrolled SGD steps of the student:

    theta_{k+1} = SGD step of theta_k on L_in^k(theta_k, phi),   k = 0 .. K-1,
    hypergradient = d/dphi  L_out( theta_K(phi) ).

``hypergradient`` (``hypergradient.py``) looks one step ahead with a forward-mode
product; here the K steps are taken by reverse mode, each step's gradient built with
``create_graph`` so that theta_K stays a differentiable function of phi. K = 1 is
``hypergradient``'s ``"exact"`` mode. The cost grows linearly in K in time and in the
memory the graph holds, which is what ``benchmarks/unrolled_lookahead_cost.py`` measures.

The steps follow ``Lookahead.advance`` (PyTorch SGD, momentum carried across the K
steps from the real optimiser's buffer when there is one, weight decay). They run on
fresh copies of the model's buffers, so the model itself is never changed: its
BatchNorm running statistics evolve in the copies as K real steps would move them.

The model may return several tensors (a detector's scales, a segmenter's main and auxiliary
heads): the losses then receive them as the model returns them, a tuple, a list or a dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.func import functional_call

from .hypergradient import (
    Lookahead,
    OuterLoss,
    _as_lookahead,
    _call_args,
    _meta_leaves,
    _outputs,
    _scalar,
    _trainable,
    _unflatten,
)


class Unrolled(NamedTuple):
    """The student after K look-ahead steps, as the state ``functional_call`` takes.

    ``params``: theta_K by name for every trainable parameter, a differentiable function of
    the meta params when ``unroll`` ran with ``create_graph``. ``buffers``: the buffers as K
    real steps in the model's current mode would leave them (BatchNorm running statistics),
    held on copies: the model's own are never touched. ``frozen``: the parameters with
    ``requires_grad=False``, detached, which the steps leave as they are.
    """

    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    frozen: dict[str, torch.Tensor]


def unroll(model: nn.Module, steps, meta_params, *, lookahead: Lookahead | float,
           create_graph: bool = True) -> Unrolled:
    """Take K look-ahead SGD steps of ``model``, one per ``(inputs, inner_loss)`` pair of ``steps``.

    Args:
        model: any ``nn.Module``, called as ``hypergradient`` calls it (tensor, tuple or dict inputs).
        steps: a non-empty sequence of ``(inputs, inner_loss)`` pairs, one per step, with
            ``inner_loss(logits, meta_params) -> scalar``.
        meta_params: a tensor or a sequence of tensors, passed to every ``inner_loss`` as
            given (a tensor or a tuple). They may be non-leaf tensors (e.g. the output of a
            network) so that the gradient reaches what produced them; only tensors that do
            not require grad are replaced by leaf copies.
        lookahead: a ``Lookahead`` (``Lookahead.from_optimizer`` starts the momentum from the
            real optimiser's buffers) or a plain SGD learning rate.
        create_graph: build each step's gradient with ``create_graph`` so that
            ``params`` can be differentiated with respect to ``meta_params``; False takes
            plain detached steps (K real SGD steps, without touching the model).

    Returns:
        ``Unrolled(params, buffers, frozen)``; evaluate the student with ``unrolled_logits``.
    """
    _check_model(model)
    steps = _check_steps(steps)
    if not isinstance(create_graph, bool):
        raise TypeError(f"create_graph must be a bool, got {type(create_graph).__name__}")
    lookahead = _as_lookahead(lookahead)
    single, phi = _meta_leaves(meta_params)
    meta_arg = _unflatten(single, phi)
    names, params = _trainable(model)
    if not params:
        raise ValueError("model has no parameter with requires_grad=True to unroll SGD steps on")
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    # One copy carried through the K steps: BatchNorm updates it in place, as real steps would.
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    values = [p.detach() for p in params]
    momenta = [lookahead.settings(p)[3] for p in params]
    for k, (inputs, inner_loss) in enumerate(steps):
        # Leaves at the first step (and every step without create_graph), functions of phi after it.
        values = [v if v.requires_grad else v.detach().requires_grad_() for v in values]
        logits = _forward(model, {**frozen, **dict(zip(names, values)), **buffers}, inputs)
        loss = _scalar(f"inner_loss of step {k}", inner_loss(logits, meta_arg))
        values, momenta = _sgd_step(lookahead, params, values, momenta, loss, create_graph)
    return Unrolled(dict(zip(names, values)), buffers, frozen)


def unrolled_logits(model: nn.Module, unrolled: Unrolled, inputs):
    """The model's outputs at ``unrolled.params`` (logits, or several tensors as the model returns
    them); BatchNorm updates land on a copy of its buffers."""
    _check_model(model)
    if not isinstance(unrolled, Unrolled):
        raise TypeError(f"unrolled must be the Unrolled that unroll returns, got {type(unrolled).__name__}")
    buffers = {n: b.clone() for n, b in unrolled.buffers.items()}
    return _forward(model, {**unrolled.frozen, **unrolled.params, **buffers}, inputs)


def unrolled_hypergradient(model: nn.Module, steps, outer_inputs, outer_loss: OuterLoss, meta_params, *,
                           lookahead: Lookahead | float):
    """d L_out(theta_K(phi)) / d phi through the K look-ahead steps of ``steps`` (see ``unroll``).

    ``outer_loss(logits) -> scalar`` scores the student on ``outer_inputs`` after the K steps.
    Returns the hypergradient shaped like ``meta_params`` (a tensor or a tuple), as
    ``hypergradient`` does; K = 1 is its ``"exact"`` mode.
    """
    single, phi = _meta_leaves(meta_params)
    unrolled = unroll(model, steps, _unflatten(single, phi), lookahead=lookahead, create_graph=True)
    loss = _scalar("outer_loss", outer_loss(unrolled_logits(model, unrolled, outer_inputs)))
    grads = torch.autograd.grad(loss, phi, allow_unused=True)
    hyper = [torch.zeros_like(p) if g is None else g for p, g in zip(phi, grads)]
    return hyper[0] if single else tuple(hyper)


def _sgd_step(lookahead: Lookahead, params, values, momenta, loss: torch.Tensor, create_graph: bool):
    """(theta_{k+1}, momentum buffers) from theta_k and the step's inner loss.

    With create_graph the step itself is recorded too, so theta_{k+1} depends on phi both
    through this step's gradient and through theta_k.
    """
    grads = torch.autograd.grad(loss, values, create_graph=create_graph, allow_unused=True)
    with torch.set_grad_enabled(create_graph):
        moved = [
            lookahead.advance(p, v, torch.zeros_like(v) if g is None else g, m)
            for p, v, g, m in zip(params, values, grads, momenta)
        ]
    return [value for value, _ in moved], [buf for _, buf in moved]


def _forward(model: nn.Module, state: dict, inputs):
    args, kwargs = _call_args(inputs)
    return _outputs(functional_call(model, state, args, kwargs))


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")


def _check_steps(steps) -> list:
    """A non-empty sequence of (inputs, callable inner_loss) pairs, named in the error when not."""
    if isinstance(steps, (str, bytes, torch.Tensor)) or not isinstance(steps, Sequence):
        raise TypeError(f"steps must be a sequence of (inputs, inner_loss) pairs, got {type(steps).__name__}")
    if not steps:
        raise ValueError("steps must hold at least one (inputs, inner_loss) pair, got an empty sequence")
    for k, step in enumerate(steps):
        if not isinstance(step, (tuple, list)) or len(step) != 2:
            sized = isinstance(step, (tuple, list))
            got = f"a {type(step).__name__} of {len(step)} items" if sized else type(step).__name__
            raise TypeError(f"steps[{k}] must be an (inputs, inner_loss) pair, got {got}")
        if not callable(step[1]):
            raise TypeError(f"steps[{k}]: inner_loss must be callable as inner_loss(logits, meta_params), "
                            f"got {type(step[1]).__name__}")
    return list(steps)
