"""L2TDLN: the DLN's hypergradient, the teacher's round, the student's real steps, and resume."""

import copy

import pytest
import torch
import torch.nn.functional as F

from metaloss.core import (
    L2TDLN,
    DynamicLossNetwork,
    Lookahead,
    TeachingSchedule,
    unroll,
    unrolled_hypergradient,
)

from .toys import MLP, gaussian_blobs


def _setup(teacher="lstm", seed=0, momentum=0.9, dtype=torch.float64):
    torch.manual_seed(seed)
    student = MLP(10, 8, 4).to(dtype)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=momentum, weight_decay=5e-4)
    l2t = L2TDLN(DynamicLossNetwork(seed=seed).to(dtype), teacher=teacher)
    x, y = gaussian_blobs(60, num_classes=4, dim=10, seed=seed)
    x = x.to(dtype)
    batches = [(x[i:i + 10], y[i:i + 10]) for i in range(0, 30, 10)]
    return student, optimizer, l2t, batches, (x[30:], y[30:])


def test_dln_hypergradient_equals_central_finite_differences():
    student, optimizer, l2t, batches, (vx, vy) = _setup(momentum=0.0)
    weights = torch.softmax(torch.randn(10, dtype=torch.float64), 0)
    batches[1] = (*batches[1], weights)  # a weighted step, as with data reweighting
    phi = tuple(p.detach().clone() for p in l2t.dln.parameters())
    steps = [(b[0], lambda z, p, b=b: l2t.loss(z, b[1], b[2] if len(b) > 2 else None, p)) for b in batches]

    def outer(values):
        ahead = unroll(student, steps, values, lookahead=0.1, create_graph=False)
        from metaloss.core import unrolled_logits
        return float(F.cross_entropy(unrolled_logits(student, ahead, vx), vy))

    grads = unrolled_hypergradient(student, steps, vx, lambda z: F.cross_entropy(z, vy), phi, lookahead=0.1)
    eps = 1e-6
    for layer in (0, 2, 4):
        flat_index = int(grads[layer].abs().argmax())
        plus = [p.clone() for p in phi]
        minus = [p.clone() for p in phi]
        plus[layer].view(-1)[flat_index] += eps
        minus[layer].view(-1)[flat_index] -= eps
        numeric = (outer(tuple(plus)) - outer(tuple(minus))) / (2 * eps)
        assert grads[layer].view(-1)[flat_index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_teach_leaves_the_student_where_the_rerun_under_the_new_dln_ends():
    student, optimizer, l2t, batches, val = _setup()
    before, before_opt = copy.deepcopy(student), copy.deepcopy(optimizer)
    # the copied optimizer must refer to the copied model's parameters
    before_opt = torch.optim.SGD(before.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    before_opt.load_state_dict(optimizer.state_dict())
    old_phi = [p.detach().clone() for p in l2t.dln.parameters()]
    out = l2t.teach(student, optimizer, batches, val)
    new_phi = tuple(p.detach() for p in l2t.dln.parameters())
    assert out.dln_change > 0 and out.dln_grad_norm > 0
    change = max(float((a - b).abs().max()) for a, b in zip(new_phi, old_phi))
    assert change <= l2t.dln_lr + 1e-12  # phi' = phi - dln_lr * LSTM output, |output| < 1
    steps = [(x, lambda z, p, y=y: l2t.loss(z, y, None, p)) for x, y in batches]
    rerun = unroll(before, steps, new_phi, lookahead=Lookahead.from_optimizer(before_opt), create_graph=False)
    for name, p in student.named_parameters():
        torch.testing.assert_close(p.detach(), rerun.params[name])


def test_lstm_teacher_learns_from_the_validation_loss_after_the_rerun():
    student, optimizer, l2t, batches, val = _setup()
    # from a zero state the recurrent weights (weight_hh) see h = 0 and get no gradient yet
    weights = {n: p.detach().clone() for n, p in l2t.lstm.named_parameters() if "weight_hh" not in n}
    out = l2t.teach(student, optimizer, batches, val)
    assert out.val_loss == out.val_loss  # a number, not NaN
    after = dict(l2t.lstm.named_parameters())
    moved = {n: not torch.equal(before, after[n].detach()) for n, before in weights.items()}
    assert all(moved.values()), moved  # Adam moved them: each received a gradient
    assert not torch.equal(l2t.lstm_state[0][0], torch.zeros_like(l2t.lstm_state[0][0]))


def test_adam_teacher_steps_the_dln_by_adam_on_its_hypergradient():
    student, optimizer, l2t, batches, (vx, vy) = _setup(teacher="adam")
    phi = tuple(p.detach().clone() for p in l2t.dln.parameters())
    steps = [(x, lambda z, p, y=y: l2t.loss(z, y, None, p)) for x, y in batches]
    grads = unrolled_hypergradient(student, steps, vx, lambda z: F.cross_entropy(z, vy), phi,
                                   lookahead=Lookahead.from_optimizer(optimizer))
    out = l2t.teach(student, optimizer, batches, (vx, vy))
    change = torch.sqrt(sum(((p.detach() - old) ** 2).sum() for p, old in zip(l2t.dln.parameters(), phi)))
    assert out.dln_change == pytest.approx(float(change)) and out.dln_change > 0
    for p, old, g in zip(l2t.dln.parameters(), phi, grads):
        # Adam's first step: -lr * m / (sqrt(v) + eps) = -lr * g / (|g| + eps)
        torch.testing.assert_close(p.detach(), old - 1e-3 * g / (g.abs() + 1e-8))


def test_train_student_reports_the_dln_and_ce_logit_gradients():
    student, optimizer, l2t, batches, _ = _setup()
    x, y = batches[0]
    z = student(x).detach().requires_grad_()
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(z, y), z)
    (dln_grad,) = torch.autograd.grad(l2t.loss(z, y), z)
    stats = l2t.train_student(student, optimizer, [batches[0]])
    assert stats.ce_logit_gradient == pytest.approx(float(ce_grad.abs().sum()))
    assert stats.dln_logit_gradient == pytest.approx(float(dln_grad.abs().sum()))


def test_state_dict_resumes_exactly():
    student, optimizer, straight, batches, val = _setup()
    straight.teach(student, optimizer, batches, val)
    straight.teach(student, optimizer, batches, val)
    student1, optimizer1, first, _, _ = _setup()
    first.teach(student1, optimizer1, batches, val)
    saved = copy.deepcopy({"l2t": first.state_dict(), "student": student1.state_dict(),
                           "optimizer": optimizer1.state_dict()})
    student2, optimizer2, resumed, _, _ = _setup(seed=1)  # everything overwritten by the loads
    student2.load_state_dict(saved["student"])
    optimizer2.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["l2t"])
    resumed.teach(student2, optimizer2, batches, val)
    for a, b in zip(straight.dln.parameters(), resumed.dln.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(student.parameters(), student2.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(straight.lstm.parameters(), resumed.lstm.parameters()):
        assert torch.equal(a, b)


def test_bad_inputs_raise_clear_errors():
    student, optimizer, l2t, batches, val = _setup()
    with pytest.raises(ValueError, match="non-empty sequence"):
        l2t.teach(student, optimizer, [], val)
    with pytest.raises(ValueError, match=r"\(inputs, target\)"):
        l2t.train_student(student, optimizer, [batches[0][0]])
    with pytest.raises(ValueError, match="teacher must be one of"):
        L2TDLN(teacher="sgd")
    with pytest.raises(TypeError, match="DynamicLossNetwork"):
        L2TDLN(torch.nn.Linear(4, 1))
    with pytest.raises(TypeError, match="imitates torch.optim.SGD"):
        l2t.teach(student, torch.optim.Adam(student.parameters()), batches, val)
    with pytest.raises(ValueError, match="one per example"):
        l2t.loss(student(batches[0][0]), batches[0][1], torch.ones(3))
    adam = L2TDLN(teacher="adam")
    with pytest.raises(ValueError, match="with an LSTM teacher"):
        adam.load_state_dict(l2t.state_dict())
    diverged = L2TDLN(DynamicLossNetwork(seed=0).double(),
                      objective=lambda out, y, dln: dln(out, y) * float("nan"))
    before = [p.detach().clone() for p in student.parameters()]
    with pytest.raises(ValueError, match="the student's loss must be finite"):
        diverged.train_student(student, optimizer, [batches[0]])
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters()))


def _same_state(a: dict, b: dict) -> bool:
    networks = all(torch.equal(a[net][k], b[net][k]) for net in ("student", "dln", "lstm") for k in a[net])
    return networks and torch.equal(a["lstm_state"], b["lstm_state"])


@pytest.mark.multiprocess
def test_two_processes_hold_one_student_dln_and_teacher(tmp_path):
    """On their own batches, two processes end with the same student, DLN, LSTM and LSTM states; on
    the same batches, with what one process alone would hold."""
    from pathlib import Path

    from .toys import own_same_and_alone

    worker = Path(__file__).with_name("l2t_dln_worker.py")
    own, same, alone = own_same_and_alone(worker, "run_rounds", tmp_path, (29531, 29532))
    assert _same_state(own[0], own[1]) and _same_state(same[0], same[1])
    assert _same_state(same[0], alone)
    assert not _same_state(own[0], alone)  # the other rank's batches moved the shared state


class TwoHeads(torch.nn.Module):
    """A student with a main and an auxiliary head, as PSPNet has: it returns a tuple of logits."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(10, 8)
        self.main, self.aux = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.main(h), self.aux(h)


def test_an_objective_around_the_dln_drives_a_student_with_several_outputs():
    _, _, _, batches, (vx, vy) = _setup()
    for aux_weight in (0.0, 0.4):
        torch.manual_seed(1)
        student = TwoHeads().double()
        initial_aux = student.aux.weight.detach().clone()
        optimizer = torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)
        seen = []

        def objective(outputs, target, dln, aux_weight=aux_weight, seen=seen):
            seen.append(type(outputs).__name__)
            return dln(outputs[0], target) + aux_weight * dln(outputs[1], target)

        l2t = L2TDLN(DynamicLossNetwork(seed=0).double(), objective=objective,
                     val_loss=lambda out, y: F.cross_entropy(out[0], y))
        out = l2t.teach(student, optimizer, batches, (vx, vy))
        assert set(seen) == {"tuple"} and out.dln_grad_norm > 0 and out.val_loss == out.val_loss
        # the logit gradients of Figure 1 are not defined for a composed loss
        assert torch.isnan(torch.tensor(out.student[1:])).all()
        # the auxiliary head learns only through the objective's auxiliary term
        assert torch.equal(student.aux.weight.detach(), initial_aux) == (aux_weight == 0.0)


def test_the_identity_objective_is_the_plain_dln_and_a_bad_objective_is_refused():
    results = []
    for objective in (None, lambda outputs, target, dln: dln(outputs, target)):
        student, optimizer, _, batches, val = _setup()
        l2t = L2TDLN(DynamicLossNetwork(seed=0).double(), objective=objective)
        out = l2t.teach(student, optimizer, batches, val)
        results.append((out.dln_grad_norm, [p.detach().clone() for p in student.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b)
    student, optimizer, _, batches, val = _setup()
    with pytest.raises(TypeError, match="objective must be callable"):
        L2TDLN(objective="dln")
    l2t = L2TDLN(DynamicLossNetwork(seed=0).double(), objective=lambda out, y, dln: dln(out, y).sum())
    with pytest.raises(ValueError, match=r"one loss per example \(B,\), got \(\)"):
        l2t.train_student(student, optimizer, batches)


def test_the_schedule_gathers_windows_of_k_and_teaches_every_nth_round():
    student, optimizer, l2t, _, val = _setup()
    x, y = val
    batches = [(x[i:i + 6], y[i:i + 6]) for i in range(0, 30, 6)]  # 5 batches an epoch
    schedule = TeachingSchedule(l2t, unroll_steps=2, teach_every=2)
    drawn = []

    def val_batch():
        drawn.append(1)
        return val

    for epoch in range(2):
        schedule.new_epoch()
        kinds = [type(schedule.step(student, optimizer, b, val_batch, last=i == 4)).__name__
                 for i, b in enumerate(batches)]
        # windows [0, 1] teach, [2, 3] train the student; the last short window [4] is round 2: teaches
        assert kinds == ["NoneType", "TeachStep", "NoneType", "StudentSteps", "TeachStep"], (epoch, kinds)
    assert len(drawn) == 4  # a validation batch is drawn only for teaching rounds
    schedule.step(student, optimizer, batches[0], val_batch, last=False)
    with pytest.raises(RuntimeError, match="1 batches were gathered but never trained on"):
        schedule.new_epoch()
    with pytest.raises(ValueError, match="unroll_steps"):
        TeachingSchedule(l2t, unroll_steps=0)
    with pytest.raises(TypeError, match="l2t must be an L2TDLN"):
        TeachingSchedule(object())
