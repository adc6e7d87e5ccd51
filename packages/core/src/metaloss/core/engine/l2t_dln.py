"""L2T-DLN (NeurIPS 2023): a student trained on a learned loss (the DLN) that a teacher reshapes.

One call of ``L2TDLN.teach(student, optimizer, batches, val_batch)`` is one round of the authors' three-stage
schedule (their public classification code; the main text describes it as a differentiable
three-stage asynchronous optimisation):

1. from the student's weights theta_0, look ahead K SGD steps on the training batches with the
   DLN as the loss, and take the gradient g of the validation loss at theta_K with respect to
   the DLN's parameters phi (core's ``unrolled_hypergradient``; K = ``len(batches)``, 15 in the
   paper);
2. the teacher turns g into the DLN's update: the coordinate-wise LSTM (supplement §3) gives
   phi' = phi - dln_lr * LSTM(g) with its states carried across rounds, and learns (Adam) from
   the validation loss after the same K look-ahead steps from theta_0 under phi', differentiated
   through phi' into the LSTM's weights; ``teacher="adam"`` instead steps phi by Adam on g (the
   "DLN" row of the supplement's Table 3: the DLN adjusted by Adam, no LSTM);
3. the student takes the K steps under phi' for real: the authors' student keeps the
   re-run's weights, and K real optimiser steps from theta_0 on the same batches are that
   re-run (a test checks it), with the optimiser's own momentum and BatchNorm statistics.

``train_student(student, optimizer, batches)`` is step 3 alone, for rounds in which the teacher
does not teach. ``TeachingSchedule`` is that schedule inside a training loop: it gathers the
loop's batches into windows of K and runs each window as a teaching round or as plain student
steps.

The DLN need not be the student's whole loss: ``objective(outputs, target, dln)`` composes it
into one, e.g. a detector's loss whose class term is the DLN over each assigned anchor's classes
(``dln(logits, labels)`` gives the DLN's per-row loss at the current, or the look-ahead's, phi),
or a segmenter's main and auxiliary heads. Then the student may return several tensors and the
target may be any object the objective reads (a list of boxes per image).
Training batches may carry per-example weights (``similarity_weights``, §5) that sum to 1; the
student's loss is then sum_i w_i DLN_i, in the look-ahead as in the real steps. Under several
processes the DLN's gradient, the LSTM's gradient and the student's gradient are averaged over
them, so every process keeps the same DLN, teacher and student.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..checks import check_choice, check_finite_loss, check_int, check_positive
from .dynamic_loss import DynamicLossNetwork
from .hypergradient import Lookahead
from .lstm_teacher import LSTMTeacher
from .processes import averaged_over_processes
from .unrolled import unroll, unrolled_hypergradient, unrolled_logits

TEACHERS = ("lstm", "adam")


class StudentSteps(NamedTuple):
    """What the student's real steps saw, each the mean over the steps: the DLN loss, and the L1
    norm of the batch loss's gradient with respect to the logits under the DLN and under CE at the
    same logits and weights (the supplement's Figure 1 compares the two; NaN with an ``objective``
    or a student that returns several tensors)."""

    loss: float
    dln_logit_gradient: float
    ce_logit_gradient: float


class TeachStep(NamedTuple):
    """One round: the student's steps, the DLN's hypergradient norm and how far phi moved, and
    (``teacher="lstm"``) the validation loss after the look-ahead under phi' that trained the LSTM."""

    student: StudentSteps
    dln_grad_norm: float
    dln_change: float
    val_loss: float


class L2TDLN:
    """The student's learned loss and its teacher, for a user's own training loop.

    The student (any ``nn.Module`` returning logits) and its ``torch.optim.SGD`` optimiser are
    passed to each call, as a training loop holds them; the look-ahead imitates that SGD,
    momentum and weight decay included. The LSTM is created on the DLN's device and dtype.

    Args:
        dln: the loss network (default: a new ``DynamicLossNetwork()``).
        teacher: ``"lstm"`` (the paper) or ``"adam"`` (no LSTM).
        dln_lr: the DLN's step: the scale of the LSTM's output, or Adam's learning rate (1e-3).
        teacher_lr: the LSTM's Adam learning rate (1e-3).
        val_loss: ``(logits, target) -> scalar`` on the validation batch (default: CE).
        class_dim, ignore_index: passed to the DLN (pixels: 1 and e.g. 255; anchors: -1).
        objective: ``(outputs, target, dln) -> (B,)`` per-example losses built around the DLN
            (module docstring); default: the DLN on the student's logits.
    """

    def __init__(self, dln: DynamicLossNetwork | None = None, *, teacher: str = "lstm",
                 lstm: LSTMTeacher | None = None,
                 dln_lr: float = 1e-3, teacher_lr: float = 1e-3,
                 val_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 class_dim: int = 1, ignore_index: int | None = None,
                 objective: Callable[[object, object, Callable], torch.Tensor] | None = None):
        if objective is not None and not callable(objective):
            raise TypeError(f"objective must be callable as objective(outputs, target, dln), "
                            f"got {type(objective).__name__}")
        self.objective = objective
        self.teacher = check_choice("teacher", teacher, TEACHERS)
        self.dln_lr = check_positive("dln_lr", dln_lr)
        check_positive("teacher_lr", teacher_lr)
        self.dln = dln if dln is not None else DynamicLossNetwork()
        if not isinstance(self.dln, DynamicLossNetwork):
            raise TypeError(f"dln must be a DynamicLossNetwork, got {type(self.dln).__name__}")
        self.dln_kwargs = {"class_dim": class_dim, "ignore_index": ignore_index}
        ignored = -100 if ignore_index is None else ignore_index  # -100: cross_entropy's own default
        self.val_loss = val_loss or (lambda z, y: F.cross_entropy(z, y, ignore_index=ignored))
        self._names = [n for n, _ in self.dln.named_parameters()]
        coordinates = sum(p.numel() for p in self.dln.parameters())
        if teacher == "lstm":
            like = next(self.dln.parameters())  # the LSTM reads and writes the DLN's coordinates
            self.lstm = (lstm if lstm is not None else LSTMTeacher()).to(device=like.device, dtype=like.dtype)
            self.optimizer = torch.optim.Adam(self.lstm.parameters(), lr=teacher_lr)
            self.lstm_state = self.lstm.initial_state(coordinates)
        else:
            self.lstm, self.lstm_state = None, None
            self.optimizer = torch.optim.Adam(self.dln.parameters(), lr=dln_lr)

    def loss(self, outputs, target, weights: torch.Tensor | None = None,
             phi: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """The student's training loss: mean_i loss_i, or sum_i w_i loss_i with ``weights`` (B,)
        summing to 1, where loss_i is the DLN on example i (or the ``objective``'s value); ``phi``
        evaluates the DLN at other parameter values (the look-ahead's)."""
        def dln(logits, labels):
            if phi is None:
                return self.dln(logits, labels, **self.dln_kwargs)
            return functional_call(self.dln, dict(zip(self._names, phi)), (logits, labels), self.dln_kwargs)

        per_example = dln(outputs, target) if self.objective is None else self.objective(outputs, target, dln)
        if not isinstance(per_example, torch.Tensor) or per_example.ndim != 1:
            got = (tuple(per_example.shape) if isinstance(per_example, torch.Tensor)
                   else type(per_example).__name__)
            raise ValueError(f"objective must return one loss per example (B,), got {got}")
        if weights is None:
            return per_example.mean()
        if weights.shape != per_example.shape:
            raise ValueError(f"weights must be one per example {tuple(per_example.shape)}, "
                             f"got {tuple(weights.shape)}")
        return (weights.to(per_example) * per_example).sum()

    def teach(self, student: nn.Module, optimizer: torch.optim.SGD, batches: Sequence[tuple],
              val_batch: tuple[object, torch.Tensor]) -> TeachStep:
        """One round (module docstring): update the DLN from the validation loss through the
        K = len(batches) look-ahead steps, then take those K steps for real under the new DLN.

        ``batches``: (inputs, target) or (inputs, target, weights) per step; ``val_batch``: (inputs, target).
        """
        lookahead = _lookahead_of(student, optimizer)
        batches = self._check_batches(batches)
        val_x, val_y = val_batch
        phi = [p.detach().clone() for p in self.dln.parameters()]  # a copy: Adam steps the DLN in place
        grads = unrolled_hypergradient(student, self._steps(batches), val_x,
                                       lambda z: self.val_loss(z, val_y), tuple(phi), lookahead=lookahead)
        grads = averaged_over_processes(list(grads))
        grad_norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
        if self.teacher == "lstm":
            new_phi, val_loss = self._lstm_round(student, phi, grads, batches, (val_x, val_y), lookahead)
        else:
            for p, g in zip(self.dln.parameters(), grads):
                p.grad = g
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            new_phi, val_loss = [p.detach() for p in self.dln.parameters()], float("nan")
        change = float(torch.sqrt(sum(((a - b).double() ** 2).sum() for a, b in zip(new_phi, phi))))
        with torch.no_grad():
            for p, value in zip(self.dln.parameters(), new_phi):
                p.copy_(value)
        return TeachStep(self.train_student(student, optimizer, batches), grad_norm, change, val_loss)

    def train_student(self, student: nn.Module, optimizer: torch.optim.SGD,
                      batches: Sequence[tuple]) -> StudentSteps:
        """The student's real optimiser steps on ``batches`` under the current DLN."""
        _lookahead_of(student, optimizer)
        batches = self._check_batches(batches)
        params = [p for p in student.parameters() if p.requires_grad]
        totals = torch.zeros(3, dtype=torch.float64)
        for x, y, w in batches:
            z = student(x)
            # Figure 1's logit gradients exist where the DLN is the whole loss on one logits tensor.
            logits_only = self.objective is None and isinstance(z, torch.Tensor)
            if logits_only:
                z.retain_grad()
            loss = check_finite_loss("the student's loss", self.loss(z, y, w))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for p, g in zip(params, averaged_over_processes([p.grad for p in params])):
                p.grad = g
            optimizer.step()
            measured = [float(loss.detach()), float("nan"), float("nan")]
            if logits_only:
                share = torch.full((len(y),), 1 / len(y), device=z.device) if w is None else w.to(z.device)
                ce_grad = (share * _ce_logit_gradient(z.detach(), y, **self.dln_kwargs)).sum()
                measured[1:] = [float(z.grad.abs().sum()), float(ce_grad)]
            totals += torch.tensor(measured, dtype=torch.float64)
        return StudentSteps(*(totals / len(batches)).tolist())

    def _lstm_round(self, student, phi, grads, batches, val_batch, lookahead):
        flat = torch.cat([g.flatten() for g in grads])
        update, state = self.lstm(flat, self.lstm_state)
        steps = torch.split(update, [p.numel() for p in phi])
        new_phi = tuple(p - self.dln_lr * s.view_as(p) for p, s in zip(phi, steps))
        ahead = unroll(student, self._steps(batches), new_phi, lookahead=lookahead)
        val_loss = self.val_loss(unrolled_logits(student, ahead, val_batch[0]), val_batch[1])
        self.optimizer.zero_grad(set_to_none=True)
        val_loss.backward()
        weights = [p for p in self.lstm.parameters() if p.grad is not None]
        for p, g in zip(weights, averaged_over_processes([p.grad for p in weights])):
            p.grad = g
        self.optimizer.step()
        self.lstm_state = [(h.detach(), c.detach()) for h, c in state]
        return [p.detach() for p in new_phi], float(val_loss.detach())

    def _steps(self, batches):
        """(inputs, inner_loss) per look-ahead step: the weighted DLN loss at the look-ahead's phi."""
        return [(x, lambda z, phi, y=y, w=w: self.loss(z, y, w, phi)) for x, y, w in batches]

    @staticmethod
    def _check_batches(batches) -> list[tuple]:
        """The batches as (inputs, target, weights or None) triples."""
        if not isinstance(batches, Sequence) or not batches:
            raise ValueError("batches must be a non-empty sequence of (inputs, target[, weights]), "
                             f"got {batches!r}")
        for i, b in enumerate(batches):
            if not isinstance(b, (tuple, list)) or len(b) not in (2, 3):
                raise ValueError(f"batch {i} must be (inputs, target) or (inputs, target, weights), "
                                 f"got {type(b).__name__}")
        return [(*b, None)[:3] for b in batches]

    def state_dict(self) -> dict:
        state = {"dln": self.dln.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.lstm is not None:
            state |= {"lstm": self.lstm.state_dict(),
                      "lstm_state": [(h.clone(), c.clone()) for h, c in self.lstm_state]}
        return state

    def load_state_dict(self, state: dict) -> None:
        if (self.lstm is not None) != ("lstm" in state):
            raise ValueError(f"state was saved with{'out' if 'lstm' not in state else ''} an LSTM teacher; "
                             f"this L2TDLN has teacher={self.teacher!r}")
        self.dln.load_state_dict(state["dln"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.lstm is not None:
            self.lstm.load_state_dict(state["lstm"])
            device = next(self.lstm.parameters()).device
            self.lstm_state = [(h.to(device), c.to(device)) for h, c in state["lstm_state"]]


class TeachingSchedule:
    """The authors' schedule around ``L2TDLN`` in a batch loop: windows of K batches.

    ``step(student, optimizer, batch, val_batch, last=...)`` gathers the loop's batches; when K
    (``unroll_steps``) are gathered, or at the epoch's ``last`` batch, the window is one round:
    every ``teach_every``-th round of an epoch teaches (``L2TDLN.teach`` on the validation batch
    that ``val_batch()`` draws then), the others train the student on the current DLN
    (``L2TDLN.train_student``). It returns the round's ``TeachStep`` or ``StudentSteps``, and None
    while a window is still gathering (the student has not stepped yet).
    """

    def __init__(self, l2t: L2TDLN, unroll_steps: int = 15, teach_every: int = 1):
        if not isinstance(l2t, L2TDLN):
            raise TypeError(f"l2t must be an L2TDLN, got {type(l2t).__name__}")
        self.l2t = l2t
        self.unroll_steps = check_int("unroll_steps", unroll_steps, minimum=1)
        self.teach_every = check_int("teach_every", teach_every, minimum=1)
        self.window: list[tuple] = []
        self.rounds = 0

    def new_epoch(self) -> None:
        """Count rounds from the epoch's start; a window left over would be batches never trained on."""
        if self.window:
            raise RuntimeError(f"{len(self.window)} batches were gathered but never trained on: "
                               "pass last=True with an epoch's last batch")
        self.rounds = 0

    def step(self, student: nn.Module, optimizer: torch.optim.SGD, batch: tuple,
             val_batch: Callable[[], tuple], *, last: bool) -> TeachStep | StudentSteps | None:
        self.window.append(batch)
        if len(self.window) < self.unroll_steps and not last:
            return None
        batches, self.window = self.window, []
        teaching = self.rounds % self.teach_every == 0
        self.rounds = 0 if last else self.rounds + 1
        if teaching:
            return self.l2t.teach(student, optimizer, batches, val_batch())
        return self.l2t.train_student(student, optimizer, batches)


def _lookahead_of(student, optimizer) -> Lookahead:
    """The look-ahead that imitates ``optimizer`` (which must be an SGD): checked before any work."""
    if not isinstance(student, nn.Module):
        raise TypeError(f"student must be an nn.Module, got {type(student).__name__}")
    return Lookahead.from_optimizer(optimizer)


def _ce_logit_gradient(z: torch.Tensor, y: torch.Tensor, class_dim: int,
                       ignore_index: int | None) -> torch.Tensor:
    """Per-example L1 norm of d CE / d z (CE averaged over the labelled positions, as the DLN is):
    |softmax(z) - onehot(y)| summed over classes and positions, divided by the labelled count."""
    scores = z.movedim(class_dim, -1)
    valid = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
    onehot = F.one_hot(torch.where(valid, y, torch.zeros_like(y)), scores.shape[-1]).to(scores)
    residual = (F.softmax(scores, dim=-1) - onehot).abs().sum(-1) * valid
    if residual.ndim == 1:
        return residual
    return residual.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp(min=1)
