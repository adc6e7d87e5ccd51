"""The YOLOv3 loss of the L2T-DLN supplement (eqs. 28-30): assignment, parts, decoding, gradients, checks."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from metaloss.detection_seg.boxes import COCO_ANCHORS, STRIDES, anchor_tensor, check_boxes, decode
from metaloss.detection_seg.losses import YOLOLossParts, assign_targets, yolo_loss

A = 3


def grids_for(size, strides=STRIDES):
    return [(size // s, size // s) for s in strides]


def flat_index(grids, s, a, gy, gx):
    """Position of (scale s, anchor a, cell (gx, gy)) in the flattened anchor order."""
    h, w = grids[s]
    return sum(A * gh * gw for gh, gw in grids[:s]) + (a * h + gy) * w + gx


def unflatten(raw, grids):
    """Per-scale outputs (B, A, H, W, 5 + C) viewing the flattened raw (B, A_total, 5 + C)."""
    outputs, start = [], 0
    for h, w in grids:
        outputs.append(raw[:, start:start + A * h * w].reshape(raw.shape[0], A, h, w, raw.shape[2]))
        start += A * h * w
    return outputs


def target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def centred(cx, cy, w, h):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def perfect_raw(targets, grids, num_classes, big=30.0, **kwargs):
    """Raw outputs that decode exactly to the targets, confident in the right class and objectness."""
    total = sum(A * h * w for h, w in grids)
    raw = torch.zeros(len(targets), total, 5 + num_classes)
    raw[..., 4] = -big
    t = assign_targets(unflatten(raw, grids), targets, **kwargs)
    pos = t.positive
    raw[..., 0:2][pos] = torch.logit(t.box[..., 0:2][pos].double()).float()
    raw[..., 2:4][pos] = t.box[..., 2:4][pos]
    raw[..., 4][pos] = big
    raw[..., 5:][pos] = torch.where(F.one_hot(t.labels[pos], num_classes).bool(), big, -big)
    return raw, t


def test_perfect_prediction_has_zero_loss():
    grids = grids_for(64)
    targets = [target([centred(20, 28, 30, 20), centred(45, 13, 6, 10), centred(40, 40, 48, 40)], [0, 3, 1]),
               target([centred(30, 30, 14, 28)], [2])]
    raw, t = perfect_raw(targets, grids, num_classes=4)
    assert t.positive.sum(1).tolist() == [3, 1]
    decoded = decode(unflatten(raw, grids)).boxes
    for b, tgt in enumerate(targets):
        got = decoded[b][t.positive[b]]
        order = t.labels[b][t.positive[b]].argsort()  # labels are distinct per image: match boxes by label
        expected = tgt["boxes"][tgt["labels"].argsort()]
        torch.testing.assert_close(got[order], expected, atol=1e-4, rtol=0)
    parts = yolo_loss(unflatten(raw, grids), targets)
    assert parts.loc.abs().max() < 1e-8
    assert parts.cls.abs().max() < 1e-8
    assert parts.conf.abs().max() < 1e-8
    assert parts.total().abs().max() < 1e-8


def test_small_boxes_weigh_more_by_two_minus_wh():
    grids = grids_for(64)
    big, small = (48, 40), (6, 5)
    targets = [target([centred(30, 30, *big), centred(58, 58, *small)], [0, 1])]
    raw, t = perfect_raw(targets, grids, num_classes=2)
    raw[..., 2][t.positive] += 0.3  # the same tw error on both boxes
    loc = yolo_loss(unflatten(raw, grids), targets).loc[0]
    scale_big, scale_small = 2 - big[0] * big[1] / 64**2, 2 - small[0] * small[1] / 64**2
    loc_big, loc_small = loc[t.labels[0] == 0].item(), loc[t.labels[0] == 1].item()
    assert loc_big == pytest.approx(scale_big * 0.09, rel=1e-4)
    assert loc_small == pytest.approx(scale_small * 0.09, rel=1e-4)
    assert loc_big / loc_small == pytest.approx(scale_big / scale_small, rel=1e-5)
    assert loc[~t.positive[0]].abs().max() == 0


def test_an_ignored_anchor_has_no_confidence_loss():
    grids = grids_for(64)
    targets = [target([centred(20, 28, 30, 20)], [1])]
    raw = torch.zeros(1, sum(A * h * w for h, w in grids), 7)
    # an anchor that is not the box's (scale 2, anchor 2, cell (0, 0)) predicting the box exactly
    j = flat_index(grids, 2, 2, 0, 0)
    raw[0, j, :5] = torch.tensor([math.log(0.625 / 0.375), math.log(0.875 / 0.125),
                                  math.log(30 / 373), math.log(20 / 326), 0.3])
    t = assign_targets(unflatten(raw, grids), targets)
    assert not t.positive[0, j] and t.ignored[0, j]
    assert not (t.positive & t.ignored).any()
    parts = yolo_loss(unflatten(raw, grids), targets)
    assert parts.conf[0, j] == 0

    strict = yolo_loss(unflatten(raw, grids), targets, ignore_threshold=1.0)
    assert not assign_targets(unflatten(raw, grids), targets, ignore_threshold=1.0).ignored.any()
    assert strict.conf[0, j].item() == pytest.approx(torch.sigmoid(torch.tensor(0.3)).item() ** 2)
    others = ~t.positive[0]
    others[j] = False
    torch.testing.assert_close(strict.conf[0, others], torch.full((int(others.sum()),), 0.25))


def test_assignment_of_a_box_shaped_like_anchor_4():
    grids = grids_for(128)
    parts_targets = [target([centred(50, 70, 62, 45)], [3])]
    t = assign_targets(unflatten(torch.zeros(1, sum(A * h * w for h, w in grids), 9), grids), parts_targets)
    j = flat_index(grids, 1, 1, 4, 3)  # stride 16: cell (floor(50/16), floor(70/16)) = (3, 4)
    assert j == 867
    assert t.positive.sum() == 1 and t.positive[0, j]
    torch.testing.assert_close(t.box[0, j], torch.tensor([50 / 16 - 3, 70 / 16 - 4, 0.0, 0.0]))
    assert t.scale[0, j].item() == pytest.approx(2 - 62 * 45 / 128**2)
    assert t.labels[0, j] == 3 and (t.labels[0] >= 0).sum() == 1


@pytest.mark.parametrize(("size", "scale", "anchor"), [
    ((40, 80), 1, 0),  # IoU 0.57 with (30, 61) against 0.46 with (59, 119)
    ((50, 100), 1, 2),  # IoU 0.37 with (30, 61) against 0.71 with (59, 119)
    ((14, 28), 0, 1),
    ((100, 100), 2, 0),
])
def test_the_best_shaped_anchor_gets_the_box(size, scale, anchor):
    grids = grids_for(128)
    t = assign_targets(unflatten(torch.zeros(1, sum(A * h * w for h, w in grids), 6), grids),
                       [target([centred(64, 64, *size)], [0])])
    cell = 64 // STRIDES[scale]
    j = flat_index(grids, scale, anchor, cell, cell)
    assert t.positive[0].nonzero().flatten().tolist() == [j]
    aw, ah = COCO_ANCHORS[3 * scale + anchor]
    expected = torch.tensor([math.log(size[0] / aw), math.log(size[1] / ah)])
    torch.testing.assert_close(t.box[0, j, 2:], expected)


@pytest.mark.parametrize(("labels", "winner"), [([0, 2], 2), ([2, 0], 0)])
def test_the_later_box_on_the_same_anchor_and_cell_wins(labels, winner):
    grids = grids_for(128)
    first, second = centred(50, 70, 62, 45), centred(52, 72, 62, 45)
    t = assign_targets(unflatten(torch.zeros(1, sum(A * h * w for h, w in grids), 9), grids),
                       [target([first, second], labels)])
    j = flat_index(grids, 1, 1, 4, 3)
    assert t.positive.sum() == 1 and t.labels[0, j] == winner
    torch.testing.assert_close(t.box[0, j, :2], torch.tensor([52 / 16 - 3, 72 / 16 - 4]))


def test_an_image_without_boxes_only_pays_for_objectness():
    grids = grids_for(32)
    raw = torch.randn(2, sum(A * h * w for h, w in grids), 8)
    targets = [target([centred(12, 12, 10, 14)], [1]), target([], [])]
    t = assign_targets(unflatten(raw, grids), targets)
    assert not t.positive[1].any() and not t.ignored[1].any() and (t.labels[1] == -1).all()
    parts = yolo_loss(unflatten(raw, grids), targets)
    assert (parts.loc[1] == 0).all() and (parts.cls[1] == 0).all()
    torch.testing.assert_close(parts.conf[1], torch.sigmoid(raw[1, :, 4]) ** 2)
    empty = yolo_loss(unflatten(raw, grids), [target([], []), target([], [])])
    assert empty.loc.abs().sum() == 0 and empty.cls.abs().sum() == 0
    torch.testing.assert_close(empty.per_image()[:, 2], (torch.sigmoid(raw[..., 4]) ** 2).sum(1))


def test_cls_loss_hook_sees_the_positive_anchors_and_fills_cls():
    grids = grids_for(64)
    raw = torch.randn(2, sum(A * h * w for h, w in grids), 8, requires_grad=True)
    targets = [target([centred(20, 28, 30, 20), centred(45, 40, 6, 10)], [0, 2]),
               target([centred(30, 30, 14, 28)], [1])]
    calls = []

    def hook(logits, labels):
        calls.append((logits.detach().clone(), labels.clone()))
        return logits.sum(1) * (labels + 1)

    parts = yolo_loss(unflatten(raw, grids), targets, cls_loss=hook)
    t = assign_targets(unflatten(raw, grids), targets)
    assert len(calls) == 1
    logits, labels = calls[0]
    torch.testing.assert_close(logits, raw.detach()[..., 5:][t.positive])
    assert torch.equal(labels, t.labels[t.positive]) and sorted(labels.tolist()) == [0, 1, 2]
    torch.testing.assert_close(parts.cls[t.positive], logits.sum(1) * (labels + 1))
    assert (parts.cls[~t.positive] == 0).all()
    parts.cls.sum().backward()
    assert (raw.grad[..., 5:][~t.positive] == 0).all() and (raw.grad[..., 5:][t.positive] != 0).all()
    assert (raw.grad[..., :5] == 0).all()


def test_decode_a_hand_computed_box():
    grids, strides = [(2, 2), (1, 1)], (8, 16)
    anchors = ((5, 5), (20, 10), (7, 7), (3, 4), (6, 6), (9, 12))
    raw = torch.zeros(1, 15, 7)
    j = flat_index(grids, 0, 1, 1, 0)  # anchor (20, 10) at cell x = 0, y = 1
    raw[0, j] = torch.tensor([0.0, math.log(0.25 / 0.75), math.log(2.0), 0.0, 1.5, -1.0, 2.0])
    decoded = decode(unflatten(raw, grids), anchors, strides)
    # centre ((0 + 0.5) * 8, (1 + 0.25) * 8) = (4, 10), size (20 * 2, 10) = (40, 10)
    torch.testing.assert_close(decoded.boxes[0, j], torch.tensor([-16.0, 5.0, 24.0, 15.0]))
    assert decoded.objectness[0, j] == 1.5 and decoded.class_logits[0, j].tolist() == [-1.0, 2.0]
    # the second scale comes after all of the first: its anchor 2 (9, 12) at its only cell
    torch.testing.assert_close(decoded.boxes[0, 14], torch.tensor([3.5, 2.0, 12.5, 14.0]))
    assert decoded.boxes.shape == (1, 15, 4)


def tiny_case():
    grids, strides = [(2, 2), (1, 1)], (16, 32)
    anchors = ((4, 6), (8, 8), (6, 12), (12, 10), (20, 16), (28, 30))
    targets = [target([centred(9, 21, 7, 11), centred(17, 15, 22, 18)], [2, 0])]
    return grids, dict(anchors=anchors, strides=strides), targets


def test_gradient_matches_finite_differences(float64_default):
    grids, kwargs, targets = tiny_case()
    raw = (torch.randn(1, 15, 8) * 0.7).requires_grad_()
    t = assign_targets(unflatten(raw, grids), targets, **kwargs)
    assert t.positive.sum() == 2

    def loss(r):
        return yolo_loss(unflatten(r, grids), targets, **kwargs).total().sum()

    (grad,) = torch.autograd.grad(loss(raw), raw)
    # every coordinate of the two positive anchors, then random directions through all of them
    # (all 120 coordinates one by one would take too long on a shared CPU)
    directions = []
    for j in t.positive[0].nonzero().flatten().tolist():
        for c in range(8):
            direction = torch.zeros_like(raw)
            direction[0, j, c] = 1
            directions.append(direction)
    directions += [torch.randn_like(raw) for _ in range(12)]
    eps = 1e-6
    with torch.no_grad():
        for v in directions:
            numeric = (loss(raw + eps * v) - loss(raw - eps * v)) / (2 * eps)
            assert (grad * v).sum().item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-7)
    assert (grad[..., :4][t.positive] != 0).all()


def test_second_order_through_functional_call_and_a_learned_cls_loss():
    grids, kwargs, targets = tiny_case()
    head = torch.nn.Linear(4, 15 * 8)
    dln = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    features = torch.randn(1, 4)

    def learned(logits, labels):
        return dln(torch.cat((logits, F.one_hot(labels, 3).to(logits.dtype)), dim=1)).squeeze(1).abs()

    params = dict(head.named_parameters())
    inner = yolo_loss(unflatten(head(features).reshape(1, 15, 8), grids), targets, cls_loss=learned, **kwargs)
    grads = torch.autograd.grad(inner.total().sum(), list(params.values()), create_graph=True)
    ahead = {name: p - 0.1 * g for (name, p), g in zip(params.items(), grads)}
    out = functional_call(head, ahead, (features,)).reshape(1, 15, 8)
    outer = yolo_loss(unflatten(out, grids), targets, **kwargs).total().sum()
    meta = torch.autograd.grad(outer, list(dln.parameters()))
    assert all(torch.isfinite(g).all() for g in meta) and any(g.abs().sum() > 0 for g in meta)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    grids = grids_for(64)
    raw = torch.randn(2, sum(A * h * w for h, w in grids), 8)
    targets = [target([centred(20, 28, 30, 20), centred(45, 40, 6, 10)], [0, 2]), target([], [])]
    cpu = yolo_loss(unflatten(raw, grids), targets)
    gpu = yolo_loss(unflatten(raw.cuda(), grids), targets)  # the targets stay on the CPU on purpose
    for name in YOLOLossParts._fields:
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name))


def test_parts_sum_per_image():
    parts = YOLOLossParts(loc=torch.tensor([[1.0, 2.0], [0.0, 1.0]]),
                          cls=torch.tensor([[0.5, 0.0], [2.0, 0.0]]),
                          conf=torch.tensor([[0.0, 0.25], [1.0, 1.0]]))
    torch.testing.assert_close(parts.per_image(), torch.tensor([[3.0, 0.5, 0.25], [1.0, 2.0, 2.0]]))
    torch.testing.assert_close(parts.total(), torch.tensor([3.75, 5.0]))


def test_anchor_tensor_accepts_pairs_or_a_tensor():
    table = anchor_tensor(COCO_ANCHORS, 3)
    assert table.shape == (3, 3, 2) and table[1, 1].tolist() == [62.0, 45.0]
    assert torch.equal(anchor_tensor(table, 3), table)


def _outputs(size=32, classes=3, batch=1, strides=STRIDES):
    return [torch.zeros(batch, A, size // s, size // s, 5 + classes) for s in strides]


def _boxes(*rows, labels=None):
    return [target(list(rows), labels if labels is not None else [0] * len(rows))]


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: decode(torch.zeros(1, 3, 4, 4, 8)), TypeError, "outputs must be a non-empty list"),
    (lambda: decode([torch.zeros(3, 4, 4, 8)] * 3), ValueError, r"outputs\[0\] must have 5 dimensions"),
    (lambda: decode([torch.zeros(1, 3, 4, 4, 8), torch.zeros(1, 3, 2, 2, 9), torch.zeros(1, 3, 1, 1, 8)]),
     ValueError, r"outputs\[1\] must have shape \(1, 3, H, W, 8\)"),
    (lambda: decode([torch.zeros(1, 3, 4, 4, 8), torch.zeros(1, 3, 3, 3, 8), torch.zeros(1, 3, 1, 1, 8)]),
     ValueError, "must describe one input image"),
    (lambda: decode(_outputs(), strides=(8, 16)), ValueError, r"one stride per output scale \(3\), got 2"),
    (lambda: decode(_outputs(), anchors=COCO_ANCHORS[:6]), ValueError, "3 anchors per scale .* got 2"),
    (lambda: decode(_outputs(), anchors=COCO_ANCHORS[:8]), ValueError, "split evenly into 3 scales, got 8"),
    (lambda: decode(_outputs(), anchors=((0, 1),) * 9), ValueError, "finite positive"),
    (lambda: anchor_tensor(torch.ones(3, 3), 3), ValueError, r"shape \(3, A, 2\), got \(3, 3\)"),
    (lambda: yolo_loss(_outputs(batch=2), _boxes([1, 1, 5, 5])), ValueError,
     r"one dict per image of the batch \(2\), got 1"),
    (lambda: yolo_loss(_outputs(), [torch.zeros(1, 4)]), TypeError, r"targets\[0\] must be a dict"),
    (lambda: yolo_loss(_outputs(), _boxes([1, 1, 5, 5], [20, 2, 33, 9])), ValueError,
     r"targets\[0\]\['boxes'\]\[1\] = \[20.0, 2.0, 33.0, 9.0\] must lie inside the image \[0, 32\]"),
    (lambda: yolo_loss(_outputs(), _boxes([-1, 1, 5, 5])), ValueError, "inside the image"),
    (lambda: yolo_loss(_outputs(), _boxes([4, 1, 4, 5])), ValueError,
     r"\[0\] = \[4.0, 1.0, 4.0, 5.0\] must have x2 > x1"),
    (lambda: yolo_loss(_outputs(), _boxes([1, 1, 5, 5], labels=[3])), ValueError,
     r"targets\[0\]\['labels'\]\[0\] = 3 must be a class index in \[0, 2\]"),
    (lambda: yolo_loss(_outputs(), _boxes([1, 1, 5, 5], labels=[-1])), ValueError,
     r"= -1 must be a class index"),
    (lambda: yolo_loss(_outputs(), [{"boxes": torch.ones(1, 4), "labels": torch.ones(1)}]), TypeError,
     "must be int64"),
    (lambda: yolo_loss(_outputs(), [{"boxes": torch.ones(1, 5), "labels": torch.zeros(1, dtype=torch.long)}]),
     ValueError, r"shape \(N, 4\)"),
    (lambda: yolo_loss(_outputs(), _boxes(), ignore_threshold=0), ValueError,
     r"ignore_threshold must be an IoU threshold in \(0, 1\], got 0"),
    (lambda: assign_targets(_outputs(), _boxes(), ignore_threshold=1.5), ValueError, r"\(0, 1\], got 1.5"),
    (lambda: yolo_loss(_outputs(), _boxes(), cls_loss="bce"), TypeError, "cls_loss must be a callable"),
    (lambda: yolo_loss(_outputs(), _boxes([1, 1, 9, 9]), cls_loss=lambda lg, lb: lg), ValueError,
     r"cls_loss must return one loss per positive anchor, shape \(1,\), got \(1, 3\)"),
    (lambda: check_boxes("gt", torch.ones(2, 4), torch.zeros(1, dtype=torch.int64), 3, (8, 8)), ValueError,
     r"gt\['labels'\] must give one label per box \(2\), got 1"),
])
def test_bad_inputs_are_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()
