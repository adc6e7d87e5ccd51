"""L2T-DLN's parts: one_vs_one, the DLN, the LSTM teacher with eq. 27, and SNR data reweighting."""

import math

import pytest
import torch

from metaloss.core import (
    DynamicLossNetwork,
    LSTMTeacher,
    class_centres,
    one_vs_one,
    preprocess_gradient,
    similarity_weights,
)


def _expected_pairs(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Reference by loops: classes last in ``scores``; (s_y, s_j) for j != y in increasing j."""
    s = torch.sigmoid(scores)
    flat_s, flat_y = s.reshape(-1, s.shape[-1]), target.reshape(-1)
    rows = [[(row[y], row[j]) for j in range(len(row)) if j != y] for row, y in zip(flat_s, flat_y.tolist())]
    return torch.tensor(rows).reshape(*target.shape, s.shape[-1] - 1, 2)


@pytest.mark.parametrize("shape, class_dim", [((5, 4), 1), ((2, 4, 3, 3), 1), ((2, 6, 4), -1)])
def test_one_vs_one_pairs_on_images_pixels_and_anchors(shape, class_dim):
    torch.manual_seed(0)
    logits = torch.randn(shape)
    scores = logits.movedim(class_dim, -1)
    target = torch.randint(0, scores.shape[-1], scores.shape[:-1])
    pairs, valid = one_vs_one(logits, target, class_dim=class_dim)
    assert pairs.shape == (*target.shape, scores.shape[-1] - 1, 2)
    assert valid.all()
    torch.testing.assert_close(pairs, _expected_pairs(scores, target))


def test_one_vs_one_ignore_index_marks_unlabelled_pixels():
    logits = torch.randn(1, 3, 2, 2)
    target = torch.tensor([[[0, 255], [2, 1]]])
    pairs, valid = one_vs_one(logits, target, ignore_index=255)
    assert valid.tolist() == [[[True, False], [True, True]]]
    labelled = pairs[valid]
    torch.testing.assert_close(labelled, _expected_pairs(logits.movedim(1, -1)[valid], target[valid]))


@pytest.mark.parametrize("logits, target, message", [
    (torch.randn(4, 3), torch.tensor([0, 1, 3, 2]), r"class indices in \[0, 2\]"),
    (torch.randn(4, 3), torch.tensor([0, 1, 2]), "shape without the class axis"),
    (torch.randn(4, 1), torch.tensor([0, 0, 0, 0]), "at least 2 classes"),
    (torch.randn(4, 3), torch.tensor([0.0, 1, 2, 0]), "integer tensor"),
])
def test_one_vs_one_refuses_bad_input(logits, target, message):
    with pytest.raises((ValueError, TypeError), match=message):
        one_vs_one(logits, target)


def test_dln_is_bias_free_four_in_one_out_and_per_example():
    dln = DynamicLossNetwork(init="kaiming")
    linears = [m for m in dln.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(40, 4), (40, 40), (40, 40), (40, 40), (1, 40)]
    assert all(m.bias is None for m in linears)
    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6,))
    per_example = dln(logits, target)
    assert per_example.shape == (6,)
    # the per-example loss is the mean of the DLN over the example's 4 pairs
    pairs, _ = one_vs_one(logits, target)
    torch.testing.assert_close(per_example, dln.pair_loss(pairs).mean(-1))


def test_dln_on_pixels_averages_the_labelled_positions_only():
    dln = DynamicLossNetwork(init="kaiming")
    logits, target = torch.randn(2, 3, 2, 2), torch.tensor([[[0, 1], [2, 255]], [[255, 255], [255, 255]]])
    per_example = dln(logits, target, ignore_index=255)
    pairs, _ = one_vs_one(logits, target, ignore_index=255)
    first = dln.pair_loss(pairs[0]).mean(-1).flatten()[:3].mean()
    torch.testing.assert_close(per_example, torch.stack([first, torch.tensor(0.0)]))


def test_default_initialisation_pushes_the_true_class_up_and_the_others_down():
    dln = DynamicLossNetwork()  # pairwise_ce: fitted to -log s_y - log(1 - s_j)
    s = torch.linspace(0.05, 0.95, 41)
    pairs = torch.stack(torch.meshgrid(s, s, indexing="ij"), dim=-1).requires_grad_()
    (grad,) = torch.autograd.grad(dln.pair_loss(pairs).sum(), pairs)
    assert (grad[..., 0] < 0).all()  # raising sigma(z_y) lowers the loss everywhere
    assert (grad[..., 1] > 0).float().mean() > 0.99  # raising sigma(z_j) raises it (a fit: not exact)
    torch.manual_seed(0)
    logits, target = torch.randn(256, 10, requires_grad=True), torch.randint(0, 10, (256,))
    (dz,) = torch.autograd.grad(dln(logits, target).sum(), logits)
    true = dz.gather(1, target[:, None]).squeeze(1)
    others = dz[torch.ones_like(dz, dtype=torch.bool).scatter_(1, target[:, None], False)]
    assert (true < 0).all() and (others > 0).float().mean() > 0.99


def test_dln_initialisation_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    a, b, c = DynamicLossNetwork(seed=1), DynamicLossNetwork(seed=1), DynamicLossNetwork(seed=2)
    assert torch.equal(torch.get_rng_state(), before)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_dln_loss_gradient_reaches_the_student():
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 4)
    x, y = torch.randn(8, 3), torch.randint(0, 4, (8,))
    DynamicLossNetwork()(student(x), y).mean().backward()
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("g", [1.0, -2.5e-3, 3e-5, -7e-5])
def test_eq27_preprocessing_on_both_branches(g):
    out = preprocess_gradient(torch.tensor([g], dtype=torch.float64), p=10.0)[0]
    if abs(g) >= math.exp(-10):
        expected = [math.log(abs(g)) / 10, math.copysign(1.0, g)]
    else:
        expected = [-1.0, math.exp(10) * g]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))


def test_eq27_refuses_a_non_positive_p():
    with pytest.raises(ValueError, match="p must be a finite number > 0"):
        preprocess_gradient(torch.ones(3), p=0)
    with pytest.raises(ValueError, match="p must be a finite number > 0"):
        LSTMTeacher(p=-1.0)


def test_lstm_teacher_shape_and_coordinate_wise_invariance():
    torch.manual_seed(0)
    teacher = LSTMTeacher()
    assert [c.hidden_size for c in teacher.cells] == [64, 64, 64, 1]
    grad = torch.randn(50) * 10 ** torch.randint(-6, 0, (50,)).float()
    state = teacher.initial_state(50)
    update, new_state = teacher(grad, state)
    assert update.shape == (50,) and (update.abs() < 1).all()
    # a second call from the carried state, on permuted coordinates, gives the permuted updates
    perm = torch.randperm(50)
    again, _ = teacher(grad, new_state)
    permuted, _ = teacher(grad[perm], [(h[perm], c[perm]) for h, c in new_state])
    torch.testing.assert_close(permuted, again[perm])
    assert not torch.allclose(again, update)  # the state carries information across calls


def test_lstm_teacher_refuses_a_state_of_the_wrong_size():
    teacher = LSTMTeacher()
    with pytest.raises(ValueError, match="one per coordinate"):
        teacher(torch.randn(5), teacher.initial_state(4))


@pytest.mark.parametrize("metric", ["snr", "cosine", "dot", "minkowski"])
def test_similarity_weights_sum_to_one_and_favour_examples_near_their_centre(metric):
    """Eqs. 31-34: each of the 12 weights is non-negative, they sum to 1, the near ones win."""
    torch.manual_seed(0)
    centres_true = torch.rand(3, 16) * 4
    val_labels = torch.arange(3).repeat(10)
    val = centres_true[val_labels] + 0.1 * torch.rand(30, 16)
    centres = class_centres(val, val_labels, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    near = centres_true[labels] + 0.1 * torch.rand(6, 16)
    wrong = centres_true[(labels + 1) % 3] + 0.1 * torch.rand(6, 16)  # labelled 0/1/2, sitting elsewhere
    embeddings, batch_labels = torch.cat([near, wrong]), torch.cat([labels, labels])
    weights = similarity_weights(embeddings, batch_labels, centres, metric=metric)
    assert weights.shape == (12,) and (weights >= 0).all()
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    if metric == "dot":  # no notion of nearness: a larger embedding wins; check the formula instead
        scores = (torch.cat([near, wrong]) * centres[torch.cat([labels, labels])]).sum(1).clamp(min=0)
        torch.testing.assert_close(weights, scores / scores.sum())
    else:
        assert weights[:6].min() > weights[6:].max()


def test_snr_weight_is_the_power_ratio_of_eq34():
    """w_i proportional to var(a_i) / var(a_i - b): 10 log10 of it is eq. 34's SNR in dB."""
    centre = torch.tensor([[0.0, 1.0, 2.0, 4.0]], dtype=torch.float64)
    a = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.5, 0.0, 2.0, 4.5]], dtype=torch.float64)
    ratios = a.var(1, unbiased=False) / (a - centre).var(1, unbiased=False)
    weights = similarity_weights(a, torch.tensor([0, 0]), centre, metric="snr")
    torch.testing.assert_close(weights, ratios / ratios.sum())


def test_class_centres_and_weights_refuse_bad_input():
    with pytest.raises(ValueError, match=r"classes \[2\] have none"):
        class_centres(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]), 3)
    with pytest.raises(ValueError, match="one centre per class"):
        similarity_weights(torch.randn(2, 3), torch.tensor([0, 5]), torch.randn(3, 3))
    with pytest.raises(ValueError, match="metric must be one of"):
        similarity_weights(torch.randn(2, 3), torch.tensor([0, 1]), torch.randn(3, 3), metric="l1")
    with pytest.raises(ValueError, match="p must be >= 1"):
        similarity_weights(torch.randn(2, 3), torch.tensor([0, 1]), torch.randn(3, 3),
                           metric="minkowski", p=0.5)
