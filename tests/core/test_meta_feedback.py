"""MetaFeedback (DML): the feedback h, the teacher's gradient, its sign, the selection, its state."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metaloss.core.engine.meta_feedback import MetaFeedback

C, D, B = 3, 4, 12


def _batch(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, D, generator=g, dtype=dtype), torch.randint(0, C, (B,), generator=g)


def _pair(student, teacher, order, lr=0.3, **kwargs):
    feedback = MetaFeedback(
        teacher, torch.optim.SGD(teacher.parameters(), lr=1.0), C, order=order, epsilon0=0.5, **kwargs
    )
    return feedback, torch.optim.SGD(student.parameters(), lr=lr)


def test_feedback_is_its_closed_form_on_a_linear_student(float64_default):
    torch.manual_seed(0)
    student, teacher = nn.Linear(D, C, bias=False), nn.Linear(D, C)
    feedback, opt = _pair(student, teacher, "first_order", lam=0.5, temperature=0.7)
    x, y = _batch()
    w = student.weight.detach().clone()
    q = F.softmax(teacher(x).detach() / 0.7, 1)
    out = feedback.step(student, opt, x, y)
    # the gradient the student stepped along: (1 - lam)(P - onehot(y_bar)) + lam xi (P_xi - q), times x / B
    z = x @ w.T
    dz = 0.5 * (F.softmax(z, 1) - F.one_hot(out.pseudo_labels, C)) + 0.5 * 0.7 * (F.softmax(z / 0.7, 1) - q)
    g = dz.T @ x / B
    w_next = w - 0.3 * g
    xs, ys = x[out.selected], y[out.selected]
    grad_r = (F.softmax(xs @ w_next.T, 1) - F.one_hot(ys, C)).T @ xs / len(ys)
    assert out.selected.any()
    assert out.feedback == pytest.approx(float((grad_r * g).sum()), rel=1e-10)
    torch.testing.assert_close(student.weight.detach(), w_next)


class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = (
            nn.Conv2d(1, 2, 3, padding=1),
            nn.BatchNorm2d(2),
            nn.Linear(2 * 4 * 4, C),
        )

    def forward(self, x):
        return self.fc(torch.tanh(self.bn(self.conv(x.view(-1, 1, 4, 4)))).flatten(1))


def _mlp():
    return nn.Sequential(nn.Linear(16, 5), nn.Tanh(), nn.Linear(5, C))


@pytest.mark.parametrize("make", [_mlp, _BNNet], ids=["mlp", "bn_cnn"])
def test_second_order_teacher_gradient_is_finite_differences(float64_default, make):
    torch.manual_seed(1)
    student, teacher = make(), make()
    feedback, opt = _pair(
        student, teacher, "second_order", lam=0.4, temperature=0.8, alpha=2.0, label_smoothing=0.1
    )
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(B, 16, generator=g), torch.randint(0, C, (B,), generator=g)
    s0, t0 = copy.deepcopy(student.state_dict()), copy.deepcopy(teacher.state_dict())
    out = feedback.step(student, opt, x, y)
    moved = {n: t0[n] - p.detach() for n, p in teacher.named_parameters()}  # SGD lr 1: the gradient
    sel = out.selected
    teacher.load_state_dict(t0)
    relabel = teacher(x).detach().argmax(1)[~sel]

    def objective(t_params):
        z_t = functional_call(
            teacher, {**t_params, **{n: b.clone() for n, b in teacher.named_buffers()}}, (x,)
        )
        q = F.softmax(z_t / 0.8, 1)
        s_params = {n: s0[n].clone().requires_grad_() for n, _ in student.named_parameters()}
        buffers = {n: s0[n].clone() for n, _ in student.named_buffers()}
        z_s = functional_call(student, {**s_params, **buffers}, (x,))
        loss_s = feedback.student_loss(z_s, q, q, soft_kd=True)
        grads = torch.autograd.grad(loss_s, list(s_params.values()), create_graph=True)
        stepped = {n: p - 0.3 * gr for (n, p), gr in zip(s_params.items(), grads)}
        z_sel = functional_call(student, {**stepped, **{n: s0[n].clone() for n in buffers}}, (x[sel],))
        risk = F.cross_entropy(z_sel, y[sel])
        sup = F.cross_entropy(z_t[sel], y[sel]) + 2.0 * F.cross_entropy(
            z_t[~sel], relabel, label_smoothing=0.1
        )
        return float((risk + sup).detach())

    base = {n: t0[n].clone() for n, _ in teacher.named_parameters()}
    for name, value in base.items():
        for i in range(0, value.numel(), max(1, value.numel() // 4)):
            eps = 1e-6
            plus, minus = dict(base), dict(base)
            plus[name] = (
                value.clone().view(-1).index_add(0, torch.tensor([i]), torch.tensor([eps])).view_as(value)
            )
            minus[name] = (
                value.clone().view(-1).index_add(0, torch.tensor([i]), torch.tensor([-eps])).view_as(value)
            )
            want = (objective(plus) - objective(minus)) / (2 * eps)
            assert float(moved[name].view(-1)[i]) == pytest.approx(want, rel=1e-5, abs=1e-9), (name, i)


def _feedback_gradient(student, teacher, x, y, order, seed):
    """The teacher's gradient from the feedback term alone (supervision switched off), one step."""
    s, t = copy.deepcopy(student), copy.deepcopy(teacher)
    fb, opt = _pair(s, t, order, alpha=0.0)
    fb.teacher_supervision = lambda z, y_, sel: torch.zeros(())
    torch.manual_seed(seed)
    out = fb.step(s, opt, x, y)
    before = dict(teacher.named_parameters())
    return {n: before[n].detach() - p.detach() for n, p in t.named_parameters()}, out.selected


def _risk_after_expected_step(student, teacher, t_state, x, y, sel):
    s, t = copy.deepcopy(student), copy.deepcopy(teacher)
    t.load_state_dict(t_state)
    q = F.softmax(t(x).detach() / 0.7, 1)
    fb, _ = _pair(s, t, "second_order")
    grads = torch.autograd.grad(fb.student_loss(s(x), q, q, soft_kd=True), list(s.parameters()))
    with torch.no_grad():
        for p, gr in zip(s.parameters(), grads):
            p -= 0.3 * gr
    return float(F.cross_entropy(s(x[sel]), y[sel]).detach())


def _data():
    g = torch.Generator().manual_seed(5)
    return torch.randn(B, 16, generator=g), torch.randint(0, C, (B,), generator=g)


def test_a_teacher_step_along_its_feedback_gradient_lowers_the_students_risk(float64_default):
    """The sign (second order): descending g_T's feedback part lowers R after the student's next step,
    ascending it raises R."""
    torch.manual_seed(2)
    student, teacher = _mlp(), _mlp()
    x, y = _data()
    t0 = copy.deepcopy(teacher.state_dict())
    grad, sel = _feedback_gradient(student, teacher, x, y, "second_order", seed=0)
    before = _risk_after_expected_step(student, teacher, t0, x, y, sel)
    scale = 1e-2 / max(float(g.abs().max()) for g in grad.values())
    for sign, moves in ((1.0, float.__lt__), (-1.0, float.__gt__)):
        state = {**t0, **{n: t0[n] - sign * scale * grad[n] for n in grad}}
        assert moves(_risk_after_expected_step(student, teacher, state, x, y, sel), before), sign


def test_first_order_feedback_gradient_points_where_the_exact_one_does(float64_default):
    """First order samples one label per example: averaged over many draws, its teacher gradient
    agrees in direction with the exact (second-order) one; with h's sign flipped it would not."""
    torch.manual_seed(2)
    student, teacher = _mlp(), _mlp()
    x, y = _data()
    exact, sel = _feedback_gradient(student, teacher, x, y, "second_order", seed=0)
    draws = [_feedback_gradient(student, teacher, x, y, "first_order", seed=s)[0] for s in range(300)]
    mean = {n: torch.stack([d[n] for d in draws]).mean(0) for n in exact}
    flat = lambda g: torch.cat([v.flatten() for v in g.values()])  # noqa: E731
    cosine = float(F.cosine_similarity(flat(mean), flat(exact), dim=0))
    assert cosine > 0.5, cosine  # 0.99 here; -0.99 with h's sign flipped


@pytest.mark.parametrize("group_by", ["label", "teacher"])
def test_selection_keeps_each_class_its_ratio_and_ratios_follow_eq_8(group_by):
    torch.manual_seed(0)
    student, teacher = nn.Linear(D, C), nn.Linear(D, C)
    fb = MetaFeedback(teacher, torch.optim.SGD(teacher.parameters(), lr=0.1), C, epsilon0=0.3,
                      group_by=group_by)
    x, y = _batch(dtype=torch.float32)
    classes = y if group_by == "label" else teacher(x).argmax(1)
    losses = fb.example_losses(student(x).detach(), teacher(x).detach(), y)
    out = fb.step(student, torch.optim.SGD(student.parameters(), lr=0.1), x, y)
    for c in range(C):
        members = classes == c
        # t = 0: every class of the batch keeps ceil(eps0 * n_c) examples; others none
        assert int(out.selected[members].sum()) == (-(-3 * int(members.sum()) // 10) if members.any() else 0)
        if members.any():  # R_1(c) = min(1, eps0 + share of class c below eps0 + gamma h_0)
            share = float((losses[members] < 0.3 + 0.1 * out.feedback).float().mean())
            assert float(fb.ratios[c]) == pytest.approx(min(1.0, 0.3 + share))
        else:
            assert float(fb.ratios[c]) == pytest.approx(0.3)
    assert fb.accumulated_feedback == pytest.approx(0.1 * out.feedback) and fb.steps == 1


def test_the_loss_threshold_is_eps0_plus_the_accumulated_scaled_feedback():
    fb = MetaFeedback(nn.Linear(D, C), torch.optim.SGD(nn.Linear(D, C).parameters(), lr=0.1), C,
                      epsilon0=0.1)
    assert fb.threshold == pytest.approx(0.1)  # before any step: eps0
    classes = torch.tensor([0, 0, 0, 0, 1, 1])
    losses = torch.tensor([0.05, 0.2, 0.5, 2.0, 0.3, 3.0])
    for feedback in (0.1, 0.3):  # scaled feedback gamma * h of two steps: sum 0.4, threshold 0.5
        fb._update_ratios(losses, classes, feedback)
    assert fb.threshold == pytest.approx(0.5) and fb.steps == 2
    # class 0: 0.05, 0.2 below 0.5 (0.5 is not) -> 0.1 + 2/4; class 1: 0.3 -> 0.1 + 1/2; others: eps0
    assert fb.ratios.tolist() == pytest.approx([0.6, 0.6] + [0.1] * (C - 2))


def test_state_dict_resumes_exactly():
    def make():
        torch.manual_seed(4)
        student, teacher = nn.Linear(D, C), nn.Linear(D, C)
        fb = MetaFeedback(teacher, torch.optim.SGD(teacher.parameters(), lr=0.1, momentum=0.9), C)
        return student, fb, torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9)

    batches = [_batch(seed, torch.float32) for seed in range(4)]
    student, fb, opt = make()
    for x, y in batches:
        fb.step(student, opt, x, y)
    s2, fb2, opt2 = make()
    for x, y in batches[:2]:
        fb2.step(s2, opt2, x, y)
    saved = (
        copy.deepcopy(s2.state_dict()),
        copy.deepcopy(fb2.teacher.state_dict()),
        copy.deepcopy(opt2.state_dict()),
        copy.deepcopy(fb2.state_dict()),
        torch.get_rng_state(),
    )
    s3, fb3, opt3 = make()  # a fresh process: everything comes from the saved state
    s3.load_state_dict(saved[0]), fb3.teacher.load_state_dict(saved[1]), opt3.load_state_dict(saved[2])
    fb3.load_state_dict(saved[3])
    torch.set_rng_state(saved[4])
    for x, y in batches[2:]:
        fb3.step(s3, opt3, x, y)
    assert torch.equal(fb3.ratios, fb.ratios) and fb3.accumulated_feedback == fb.accumulated_feedback
    for a, b in ((s3, student), (fb3.teacher, fb.teacher)):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epsilon0": 0.0}, "epsilon0"),
        ({"epsilon0": 1.5}, "epsilon0"),
        ({"lam": 1.2}, "lam"),
        ({"lam": -0.1}, "lam"),
        ({"temperature": 0.0}, "temperature"),
        ({"alpha": -1.0}, "alpha"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"order": "third"}, "order"),
        ({"group_by": "prediction"}, "group_by"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match):
    teacher = nn.Linear(D, C)
    with pytest.raises(ValueError, match=match):
        MetaFeedback(teacher, torch.optim.SGD(teacher.parameters(), lr=0.1), C, **kwargs)


def test_teacher_and_student_with_different_class_counts_are_refused():
    teacher = nn.Linear(D, C)
    fb = MetaFeedback(teacher, torch.optim.SGD(teacher.parameters(), lr=0.1), C)
    student = nn.Linear(D, C + 1)
    x, y = _batch(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"the student must return \(B, 3\) logits \(num_classes\)"):
        fb.step(student, torch.optim.SGD(student.parameters(), lr=0.1), x, y)


def test_warmup_selects_every_example_and_leaves_the_ratios_alone():
    torch.manual_seed(0)
    student, teacher = nn.Linear(D, C), nn.Linear(D, C)
    fb = MetaFeedback(teacher, torch.optim.SGD(teacher.parameters(), lr=0.1), C, epsilon0=0.3, warmup_steps=2)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
    x, y = _batch(dtype=torch.float32)
    for _ in range(2):
        assert bool(fb.step(student, optimizer, x, y).selected.all())
        assert fb.ratios.tolist() == pytest.approx([0.3] * C) and fb.steps == 0
    selected = fb.step(student, optimizer, x, y).selected  # after warm-up: ceil(0.3 n_c) per label
    assert int(selected.sum()) == sum(-(-3 * int((y == c).sum()) // 10) for c in range(C))
    assert fb.steps == 1 and fb.warmup_left == 0


def _same_state(a: dict, b: dict) -> bool:
    networks = all(torch.equal(a[net][k], b[net][k]) for net in ("student", "teacher") for k in a[net])
    same_feedback = a["accumulated_feedback"] == b["accumulated_feedback"]
    return networks and torch.equal(a["ratios"], b["ratios"]) and same_feedback


@pytest.mark.multiprocess
def test_two_processes_hold_one_student_teacher_and_ratios(tmp_path):
    """On their own batches, two processes end with the same networks and R_t(c); on the same batches,
    with what one process alone would hold."""
    from pathlib import Path

    from .toys import own_same_and_alone

    worker = Path(__file__).with_name("meta_feedback_worker.py")
    own, same, alone = own_same_and_alone(worker, "run_steps", tmp_path, (29521, 29522))
    assert _same_state(own[0], own[1]) and _same_state(same[0], same[1])
    assert _same_state(same[0], alone)
    assert not _same_state(own[0], alone)  # the other rank's batches moved the shared state
