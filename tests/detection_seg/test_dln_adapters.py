"""The DLN inside the detector's and the segmenter's losses, taught through K look-ahead steps of a
model with several outputs (core's L2TDLN with an objective), AMAL's per-image weights of the detector's
loss parts, and PSPNet's per-pixel loss."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metaloss.core import (
    L2TDLN,
    DynamicLossNetwork,
    Lookahead,
    unroll,
    unrolled_hypergradient,
    unrolled_logits,
)
from metaloss.detection_seg.losses import pixel_cross_entropy, pspnet_loss, yolo_loss
from metaloss.detection_seg.training import part_mixing


class TinyDetector(nn.Module):
    """Three YOLO scales (strides 8, 16, 32) of a 64 x 64 image from one conv layer and pooling."""

    def __init__(self, num_classes=3):
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 3 * (5 + num_classes), 1)

    def forward(self, x):
        h = torch.tanh(self.bn(self.stem(x)))
        outputs = []
        for stride in (8, 16, 32):
            raw = self.head(F.avg_pool2d(h, stride))
            b, _, gh, gw = raw.shape
            outputs.append(raw.view(b, 3, 5 + self.num_classes, gh, gw).permute(0, 1, 3, 4, 2))
        return tuple(outputs)


class TinySegmenter(nn.Module):
    """A main and an auxiliary head, as PSPNet has in training."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.body = nn.Conv2d(3, 6, 3, padding=1)
        self.main, self.aux = nn.Conv2d(6, num_classes, 1), nn.Conv2d(6, num_classes, 1)

    def forward(self, x):
        h = torch.tanh(self.body(x))
        return self.main(h), self.aux(h)


def _boxes(n_images, with_boxes=True):
    box = {"boxes": torch.tensor([[8.0, 10.0, 40.0, 50.0], [30.0, 4.0, 60.0, 20.0]], dtype=torch.float64),
           "labels": torch.tensor([2, 0])}
    empty = {"boxes": torch.zeros(0, 4, dtype=torch.float64), "labels": torch.zeros(0, dtype=torch.long)}
    return [box if with_boxes else empty for _ in range(n_images)]


def _detector_problem(with_boxes=True):
    torch.manual_seed(0)
    model = TinyDetector().double()
    dln = DynamicLossNetwork(seed=0).double()
    steps_data = [(torch.randn(2, 3, 64, 64, dtype=torch.float64), _boxes(2, with_boxes)) for _ in range(2)]
    val = (torch.randn(2, 3, 64, 64, dtype=torch.float64), _boxes(2))
    return model, dln, steps_data, val


def _dln_on(dln, phi):
    names = [n for n, _ in dln.named_parameters()]

    def call(logits, labels):
        return torch.func.functional_call(dln, dict(zip(names, phi)), (logits, labels))
    return call


def test_the_dln_class_loss_hypergradient_through_k_steps_of_a_detector_matches_finite_differences(
        float64_default):
    model, dln, data, (vx, vy) = _detector_problem()
    phi = tuple(p.detach().clone() for p in dln.parameters())

    def steps(values):
        return [(x, lambda out, p, y=y: yolo_loss(out, y, cls_loss=_dln_on(dln, p)).total().mean())
                for x, y in data]

    def outer(out):
        return yolo_loss(out, vy).total().mean()

    grads = unrolled_hypergradient(model, steps(phi), vx, outer, phi, lookahead=0.01)
    assert all(g.abs().sum() > 0 for g in grads)

    def value(values):
        ahead = unroll(model, steps(values), values, lookahead=0.01, create_graph=False)
        return float(outer(unrolled_logits(model, ahead, vx)))

    eps = 1e-6
    for layer in (0, 4):
        index = int(grads[layer].abs().argmax())
        plus, minus = [p.clone() for p in phi], [p.clone() for p in phi]
        plus[layer].view(-1)[index] += eps
        minus[layer].view(-1)[index] -= eps
        numeric = (value(tuple(plus)) - value(tuple(minus))) / (2 * eps)
        assert grads[layer].view(-1)[index].item() == pytest.approx(numeric, rel=1e-4, abs=1e-10)


@pytest.mark.parametrize("upper", [None, 1.0])
def test_amal_weights_of_the_detector_loss_parts_start_at_the_standard_loss_and_follow_the_lookahead(
        float64_default, upper):
    """AMAL eq. 2 over (loc, cls, conf): at (1, 1, 1) the mixed loss is the standard loss; a meta step's
    per-image gradient is B x d L_val(theta'(w)) / d w (eqs. 4-6 through all three YOLO scales); the
    step keeps every weight in [0, upper]."""
    model, _, [(x, y), _], (vx, vy) = _detector_problem()
    task = SimpleNamespace(parts=lambda out, t: yolo_loss(out, t).per_image(),
                           part_names=("loc", "cls", "conf"))
    mixing = part_mixing(task, 5, {"lr": 0.1, "every": 1, "inner_steps": 1, "mode": "exact", "upper": upper})
    indices = torch.tensor([3, 1])
    with torch.no_grad():
        torch.testing.assert_close(mixing.loss(indices, task.parts(model(x), y)),
                                   yolo_loss(model(x), y).total().mean())
    lookahead = Lookahead(lr=0.01)
    got = mixing.meta_step(model, indices, x, lambda out: task.parts(out, y), lookahead=lookahead,
                           val_inputs=vx, val_targets=vy,
                           outer_loss=lambda out, t: yolo_loss(out, t).total().mean())
    assert got.shape == (2, 3) and got.abs().min() > 0

    def val_loss_after_step(weights):
        ahead = unroll(model, [(x, lambda out, w: (task.parts(out, y) * w).sum(1).mean())], weights,
                       lookahead=lookahead, create_graph=False)
        return float(yolo_loss(unrolled_logits(model, ahead, vx), vy).total().mean())

    eps, weights = 1e-6, torch.ones(2, 3)
    for i in range(2):
        for k in range(3):
            plus, minus = weights.clone(), weights.clone()
            plus[i, k] += eps
            minus[i, k] -= eps
            numeric = (val_loss_after_step(plus) - val_loss_after_step(minus)) / (2 * eps)
            assert got[i, k].item() == pytest.approx(2 * numeric, rel=1e-4, abs=1e-10)
    assert (got < 0).any()  # some weight is pushed above 1, so the bound has something to stop
    mixing.weights.step()  # each weight moved against its gradient, from 1
    torch.testing.assert_close(mixing.weights.table[indices], (1 - 0.1 * got).clamp(min=0, max=upper))


def test_without_objects_the_dln_class_loss_gets_no_gradient_from_the_teacher(float64_default):
    """The DLN is the class loss of assigned anchors only: with no boxes in the training batches it
    does not touch the detector, so the validation loss cannot depend on it."""
    model, dln, data, val = _detector_problem(with_boxes=False)
    l2t = L2TDLN(dln, teacher="adam",
                 objective=lambda out, y, d: yolo_loss(out, y, cls_loss=d).total(),
                 val_loss=lambda out, y: yolo_loss(out, y).total().mean())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = l2t.teach(model, optimizer, data, val)
    assert step.dln_grad_norm == 0.0 and step.dln_change == 0.0
    _, dln, data, val = _detector_problem(with_boxes=True)
    l2t = L2TDLN(dln, teacher="adam", objective=lambda out, y, d: yolo_loss(out, y, cls_loss=d).total(),
                 val_loss=lambda out, y: yolo_loss(out, y).total().mean())
    assert l2t.teach(TinyDetector().double(), torch.optim.SGD(model.parameters(), lr=0.01), data, val
                     ).dln_grad_norm > 0


def test_the_per_pixel_dln_of_a_two_headed_segmenter_is_taught_through_k_steps(float64_default):
    torch.manual_seed(0)
    model = TinySegmenter().double()
    masks = torch.randint(0, 4, (2, 8, 8))
    masks[:, :2] = 255  # unlabeled rows
    data = [(torch.randn(2, 3, 8, 8), masks) for _ in range(2)]
    val = (torch.randn(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8)))
    l2t = L2TDLN(DynamicLossNetwork(seed=0).double(), ignore_index=255,
                 objective=lambda out, m, d: pspnet_loss(out, m, pixel_loss=d),
                 val_loss=lambda out, m: pixel_cross_entropy(out[0], m).mean())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    aux_before = model.aux.weight.detach().clone()
    step = l2t.teach(model, optimizer, data, val)
    assert step.dln_grad_norm > 0 and step.val_loss == step.val_loss
    assert not torch.equal(model.aux.weight.detach(), aux_before)  # the auxiliary head's DLN term trains it


def test_pspnet_loss_is_main_plus_0_4_aux_mean_ce_over_labelled_pixels():
    torch.manual_seed(0)
    main, aux = torch.randn(2, 5, 6, 6), torch.randn(2, 5, 6, 6)
    masks = torch.randint(0, 5, (2, 6, 6))
    masks[0, :3] = 255
    masks[1] = 255  # an image with no labelled pixel adds nothing
    loss = pspnet_loss((main, aux), masks)
    expected_0 = (F.cross_entropy(main[:1], masks[:1], ignore_index=255)
                  + 0.4 * F.cross_entropy(aux[:1], masks[:1], ignore_index=255))
    torch.testing.assert_close(loss, torch.stack([expected_0, torch.tensor(0.0)]))
    # every 2nd pixel of each row and column: the same loss on the subsampled tensors
    strided = pspnet_loss((main, aux), masks, loss_stride=2)
    torch.testing.assert_close(strided, pspnet_loss((main[..., ::2, ::2], aux[..., ::2, ::2]),
                                                    masks[:, ::2, ::2]))
    torch.testing.assert_close(pspnet_loss(main, masks), pixel_cross_entropy(main, masks))
    # the DLN fits as the per-pixel loss: its per-image mean over labelled pixels and pairs
    dln = DynamicLossNetwork(seed=0)
    per_image = pspnet_loss(main, masks, pixel_loss=lambda z, m: dln(z, m, ignore_index=255))
    assert per_image.shape == (2,) and per_image[1] == 0


def test_pspnet_loss_refuses_mismatched_inputs():
    masks = torch.zeros(2, 6, 6, dtype=torch.long)
    with pytest.raises(ValueError, match="main logits must be"):
        pspnet_loss(torch.randn(2, 5, 4, 4), masks)
    with pytest.raises(ValueError, match="main logits or"):
        pspnet_loss((torch.randn(2, 5, 6, 6),) * 3, masks)
    with pytest.raises(TypeError, match="masks"):
        pspnet_loss(torch.randn(2, 5, 6, 6), masks.float())
    with pytest.raises(ValueError, match="loss_stride"):
        pspnet_loss(torch.randn(2, 5, 6, 6), masks, loss_stride=0)
