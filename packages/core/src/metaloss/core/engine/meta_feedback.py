"""DML's meta-feedback: a teacher that learns from its student's feedback to clean noisy labels, with
no clean validation set (DML paper, eqs. 2-8, Algorithm 2 of appendix B, the derivation of appendix A).

``MetaFeedback.step(student, student_optimizer, x, y)`` runs one training batch of Algorithm 2:

1. **Losses and selection** (line 6, eq. 8). Each example's loss of eq. 2 on its observed label,
   ``l_b = (1 - lam) [CE(S(x_b), y_b) + CE(T(x_b), y_b)] + lam KD_b``, with
   ``KD_b = xi^2 KL(softmax(T(x_b) / xi) || softmax(S(x_b) / xi))`` (Hinton's direction: the teacher
   is the target). Examples are grouped by class c (``group_by``, below); class c keeps the
   fraction ``R_t(c)`` of its smallest losses (core's ``small_loss_mask_per_class``): the set D~.
2. **Pseudo labels** (eq. 4): ``y_bar ~ softmax(T(x) / xi)``, one sample per example.
3. **The student's step** on ``L_S = (1 - lam) CE(y_bar, S(x)) + lam KD``: the student learns only
   from the teacher (appendix B). It is taken by the caller's optimizer, exactly as
   ``Lookahead.from_optimizer`` imitates it.
4. **Feedback** (eq. 7): ``h = < grad R(theta_S'), grad L_S(theta_S) >``, R the student's mean CE on
   D~ after its step and ``grad L_S`` the gradient it stepped along.
5. **Teacher** (lines 9-13): ``g_T = gamma h grad CE(y_bar, T(x) / xi) + grad CE(y~, T(x~))
   + alpha grad CE_ls(y_new, T(x_u))``: the feedback term, the teacher's CE on D~, and a relabelling
   CE with label smoothing on the unselected examples x_u, whose new label is the teacher's argmax.
   ``gamma`` is the student's learning rate: the derivation (eqs. 17-19) gives
   ``dR/dtheta_T = gamma h dCE(y_bar, T)/dtheta_T``. Then one step of the teacher's optimizer.
6. **R_t(c)** (eq. 8, see below).

An optional warm-up (``warmup_steps``) selects the whole batch at first: the teacher learns by CE on
every observed label, as noisy-label methods warm up before selecting (DivideMix: 10 CE epochs of
300). Without it, a random teacher selected and relabelled from its own guesses.

The sign of h. A student step ``theta_S' = theta_S - gamma g`` changes R by about ``-gamma h``, so
h > 0 means the pseudo labels helped the student on D~. Descending ``gamma h grad CE(y_bar, T)`` then
*raises* the teacher's probability of labels that helped and lowers it for labels that hurt: the
REINFORCE form of eq. 17 (``CE = -log P``). Meta Pseudo Labels' implementations disagree on this sign;
here it follows appendix A, and a test checks that a teacher step along ``-g_T`` lowers R.

Orders. ``"first_order"`` is the above (Table 6's first-order DML: one Monte Carlo label per
example and the first-order feedback h). ``"second_order"`` replaces the feedback term by the exact
derivative of R after the student's *expected* step (eq. 11): the student steps on the soft targets
``q = softmax(T(x) / xi)`` (``E_{y_bar ~ q} CE(y_bar, S) = CE(q, S)``), core's ``hypergradient`` gives
``dR/dq`` through that look-ahead (momentum and weight decay included), and ``q.backward(dR/dq)``
chains it into the teacher. The student then takes that same soft step.

Our reading of eq. 8 (garbled in the text). ``R_t(c) = min(1, eps0 + sigma_t(c))`` where
``sigma_t(c)`` is the share of the batch's class-c examples whose loss l_b is below ``eps0 + H_t``.
It uses every piece of eq. 8 (the Iverson brackets on loss vs. feedback + eps0 and on the class) and
of the line after it (``R = eps0 + sigma``); at t = 0 each class keeps its ``eps0`` smallest losses,
which is why the text says eps0 cannot be 0 ("no samples are selected"). A class absent from a
batch keeps its ratio. Two choices where the literal text misbehaved on real data (CIFAR-10, 40%
symmetric noise, ResNet-8; ``benchmarks/dml_first_steps.py``, numbers in benchmarks/RESULTS.md):

- ``H_t = sum_{s <= t} gamma_s h_s``: Algorithm 2, line 9, scales h by the learning rate. The
  unscaled sum of eq. 8 (h is mostly positive: the pseudo labels' gradient and D~'s share a
  direction) grew by about 10 every 20 steps, far past any loss of eq. 2, so every R_t(c) would
  reach 1 within a few dozen steps; scaled (gamma = 0.05) it reached 1.7 after 160 steps, and it
  grows less as the learning rate decays.
- ``group_by="label"`` (default) groups by the observed label; ``"teacher"`` is eq. 8's literal
  grouping by the teacher's argmax. A class the teacher predicts often then holds most of D~,
  which teaches the teacher that class more: its pseudo labels concentrated (56% in one class
  20 steps after the warm-up) and D~ grew at about chance precision.

Several processes (``accelerate launch``): pass the plain student, not its DDP wrapper (its gradient
is set here, averaged over the processes as DDP would); the feedback h, the teacher's gradient and
the per-class counts behind R_t(c) are averaged or summed over the processes too, so every process
holds the same teacher, ratios and threshold. The second order differentiates each process's own
look-ahead (on its own batch) before the teacher's gradients are averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_int, check_positive, check_probability, check_unit_interval
from .hypergradient import Lookahead, hypergradient, preserved_buffers
from .processes import averaged_over_processes, sum_over_processes
from .selection import small_loss_mask_per_class

ORDERS = ("first_order", "second_order")


@dataclass
class FeedbackStep:
    """What one ``MetaFeedback.step`` did (tensors on the batch's device, detached)."""

    selected: torch.Tensor  # bool (B,): D~
    pseudo_labels: torch.Tensor  # (B,) y_bar (second order: the argmax of q)
    feedback: float  # h
    student_loss: float  # L_S before the step
    teacher_loss: float  # the scalar the teacher's gradient came from


class MetaFeedback:
    """The DML teacher and its selection ratios R_t(c); call ``step`` once per training batch.

    Args:
        teacher: any ``nn.Module`` returning (B, C) logits; trained here by ``teacher_optimizer``.
        teacher_optimizer: the teacher's optimizer (the paper: SGD, lr 0.05, momentum 0.9).
        num_classes: C, the number of classes of teacher and student.
        epsilon0: initial per-class selection ratio, in (0, 1] (ablation range 0.04-0.15).
        lam: lambda of eq. 2, in [0, 1] (0.5); 0 drops the KD term (Figure 3c's ablation).
        temperature: xi > 0 of the pseudo-label distribution and KD (0.7).
        alpha: weight >= 0 of the relabelling loss on unselected examples (8.0).
        label_smoothing: of the relabelling loss, in [0, 1) (0.1).
        order: ``"first_order"`` or ``"second_order"``.
        feedback: ``"student"`` (h of eq. 7) or ``"constant"`` (h = 1, Figure 3b's no-feedback ablation).
        group_by: the classes of eq. 8's per-class selection: ``"label"`` (observed) or ``"teacher"``
            (its argmax, the literal text; see the module docstring).
        warmup_steps: the first steps select the whole batch (D~ = D, so the teacher learns by CE on
            every observed label and relabels nothing) and leave R_t(c) alone; 0: none, the paper.
    """

    def __init__(
        self,
        teacher: nn.Module,
        teacher_optimizer: torch.optim.Optimizer,
        num_classes: int,
        *,
        epsilon0: float = 0.1,
        lam: float = 0.5,
        temperature: float = 0.7,
        alpha: float = 8.0,
        label_smoothing: float = 0.1,
        order: str = "first_order",
        feedback: str = "student",
        group_by: str = "label",
        warmup_steps: int = 0,
    ):
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
        if not isinstance(teacher_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"teacher_optimizer must be a torch optimizer, got {type(teacher_optimizer).__name__}"
            )
        self.teacher, self.optimizer = teacher, teacher_optimizer
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.epsilon0 = check_unit_interval("epsilon0", epsilon0, low_open=True)
        self.lam = check_probability("lam", lam)
        self.temperature = check_positive("temperature", temperature)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.label_smoothing = check_probability("label_smoothing", label_smoothing, high_open=True)
        self.order = check_choice("order", order, ORDERS)
        self.feedback_kind = check_choice("feedback", feedback, ("student", "constant"))
        self.group_by = check_choice("group_by", group_by, ("label", "teacher"))
        self.ratios = torch.full((num_classes,), self.epsilon0, dtype=torch.float32)
        self.accumulated_feedback = 0.0
        self.steps = 0  # steps that updated R_t(c)
        self.warmup_left = check_int("warmup_steps", warmup_steps, minimum=0)

    def step(
        self, student: nn.Module, student_optimizer: torch.optim.SGD, x: torch.Tensor, y: torch.Tensor
    ) -> FeedbackStep:
        """One batch of Algorithm 2: select, step the student, step the teacher, update R_t(c)."""
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be an nn.Module, got {type(student).__name__}")
        z_teacher, z_student = self.teacher(x), student(x)
        for name, z in (("teacher", z_teacher), ("student", z_student)):
            if z.ndim != 2 or z.shape[1] != self.num_classes:
                raise ValueError(
                    f"the {name} must return (B, {self.num_classes}) logits (num_classes), "
                    f"got shape {tuple(z.shape)}"
                )
        if y.shape != (len(z_teacher),):
            raise ValueError(
                f"y must hold one label per example, {len(z_teacher)}, got shape {tuple(y.shape)}"
            )
        losses = self.example_losses(z_student.detach(), z_teacher.detach(), y)
        classes = y if self.group_by == "label" else z_teacher.detach().argmax(1)
        warming = self.warmup_left > 0
        selected = (torch.ones_like(y, dtype=torch.bool) if warming
                    else small_loss_mask_per_class(losses, classes, self.ratios.to(losses.device)))
        q = F.softmax(z_teacher / self.temperature, dim=1)
        pseudo = torch.multinomial(q.detach(), 1).squeeze(1)
        lookahead = Lookahead.from_optimizer(student_optimizer)
        params = [p for p in student.parameters() if p.requires_grad]

        targets = q.detach() if self.order == "second_order" else pseudo
        student_loss = self.student_loss(z_student, targets, z_teacher.detach())
        grads = averaged_over_processes(list(torch.autograd.grad(student_loss, params)))
        feedback_term = torch.zeros((), device=x.device)
        if self.order == "second_order" and selected.any():
            # dR/dq through the student's look-ahead on the soft targets (the expected update, eq. 11)
            d_q = hypergradient(
                student,
                x,
                lambda z, t: self.student_loss(z, t, t, soft_kd=True),
                x[selected],
                lambda z: F.cross_entropy(z, y[selected]),
                q.detach(),
                lookahead=lookahead,
            )
            feedback_term = (q * d_q.detach()).sum()
        for p, g in zip(params, grads):
            p.grad = g.detach().clone()
        student_optimizer.step()
        h = self._feedback(student, params, grads, x[selected], y[selected]) if selected.any() else 0.0
        h = float(averaged_over_processes([torch.tensor(h, dtype=torch.float64, device=x.device)])[0])
        gamma = lookahead.lr
        if self.order == "first_order":
            feedback_term = gamma * h * F.cross_entropy(z_teacher / self.temperature, pseudo)
        teacher_loss = feedback_term + self.teacher_supervision(z_teacher, y, selected)
        self.optimizer.zero_grad()
        teacher_loss.backward()
        stepped = [p for p in self.teacher.parameters() if p.grad is not None]
        for p, g in zip(stepped, averaged_over_processes([p.grad for p in stepped])):
            p.grad = g
        self.optimizer.step()
        if warming:
            self.warmup_left -= 1
        else:
            self._update_ratios(losses, classes, gamma * h)
        return FeedbackStep(
            selected,
            pseudo if self.order == "first_order" else q.argmax(1),
            h,
            float(student_loss.detach()),
            float(teacher_loss.detach()),
        )

    def example_losses(
        self, z_student: torch.Tensor, z_teacher: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """(B,) losses of eq. 2 on the observed labels: the selection criterion."""
        sup = F.cross_entropy(z_student, y, reduction="none") + F.cross_entropy(
            z_teacher, y, reduction="none"
        )
        return (1 - self.lam) * sup + self.lam * self._kd(
            z_student, F.softmax(z_teacher / self.temperature, 1)
        )

    def student_loss(
        self, z_student: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor, *, soft_kd: bool = False
    ) -> torch.Tensor:
        """Batch mean of (1 - lam) CE(targets, S) + lam KD; ``targets`` are labels (B,) or probabilities
        (B, C); ``teacher`` the teacher's logits, or with ``soft_kd`` its tempered probabilities."""
        ce = (
            -(targets * F.log_softmax(z_student, 1)).sum(1)
            if targets.is_floating_point()
            else F.cross_entropy(z_student, targets, reduction="none")
        )
        q = teacher if soft_kd else F.softmax(teacher / self.temperature, 1)
        return ((1 - self.lam) * ce + self.lam * self._kd(z_student, q)).mean()

    def teacher_supervision(
        self, z_teacher: torch.Tensor, y: torch.Tensor, selected: torch.Tensor
    ) -> torch.Tensor:
        """CE on D~ (its observed labels) + alpha CE with label smoothing on the others, relabelled by
        the teacher's argmax (Algorithm 2, lines 11-12); a part with no example contributes 0."""
        loss = torch.zeros((), device=z_teacher.device)
        if selected.any():
            loss = loss + F.cross_entropy(z_teacher[selected], y[selected])
        rest = ~selected
        if self.alpha and rest.any():
            relabel = z_teacher[rest].detach().argmax(1)
            loss = loss + self.alpha * F.cross_entropy(
                z_teacher[rest], relabel, label_smoothing=self.label_smoothing
            )
        return loss

    def _kd(self, z_student: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        # core's kd_loss detaches the teacher; here the second order differentiates through q
        log_p = F.log_softmax(z_student / self.temperature, 1)
        return self.temperature**2 * (q * (torch.log(q.clamp_min(1e-12)) - log_p)).sum(1)

    def _feedback(self, student, params, grads, x_sel, y_sel) -> float:
        """h of eq. 7: < grad of the student's CE on D~ after its step, the gradient it stepped along >."""
        if self.feedback_kind == "constant":
            return 1.0
        with preserved_buffers(student):
            after = torch.autograd.grad(F.cross_entropy(student(x_sel), y_sel), params)
        return float(sum((a * g).sum() for a, g in zip(after, grads)))

    def _update_ratios(self, losses: torch.Tensor, classes: torch.Tensor, scaled_feedback: float) -> None:
        """R_t(c) = min(1, eps0 + share of class c's losses below eps0 + the accumulated scaled feedback)."""
        self.accumulated_feedback += scaled_feedback
        self.steps += 1
        below = torch.bincount(classes[losses < self.threshold], minlength=self.num_classes).double()
        members = torch.bincount(classes, minlength=self.num_classes).double()
        sum_over_processes(below, members)  # one R_t(c) for every process, from all their examples
        present = (members > 0).cpu()
        ratios = (self.epsilon0 + below.cpu() / members.cpu().clamp_min(1)).clamp(max=1.0)
        self.ratios[present] = ratios[present].to(self.ratios)

    @property
    def threshold(self) -> float:
        """The loss below which an example counts toward its class's ratio: eps0 + H_t."""
        return self.epsilon0 + self.accumulated_feedback

    def state_dict(self) -> dict:
        return {
            "ratios": self.ratios.clone(),
            "accumulated_feedback": self.accumulated_feedback,
            "steps": self.steps,
            "warmup_left": self.warmup_left,
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        ratios = torch.as_tensor(state["ratios"], dtype=torch.float32)
        if ratios.shape != (self.num_classes,) or not math.isfinite(float(state["accumulated_feedback"])):
            raise ValueError(
                f"state holds ratios of shape {tuple(ratios.shape)}; expected ({self.num_classes},)"
            )
        self.ratios = ratios.clone()
        self.accumulated_feedback = float(state["accumulated_feedback"])
        self.steps = int(state["steps"])
        self.warmup_left = int(state.get("warmup_left", 0))  # absent: saved before warm-ups existed
        self.optimizer.load_state_dict(state["optimizer"])
