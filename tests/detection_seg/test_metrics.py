"""Box mAP and the segmentation confusion matrix against hand-computed values."""

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from metaloss.detection_seg.data import DetectionImages, SegmentationImages, coco128_root
from metaloss.detection_seg.metrics import BoxMAP, ConfusionMatrix, box_map


@pytest.fixture(autouse=True)
def _no_data_root(monkeypatch):
    monkeypatch.delenv("METALOSS_DATA", raising=False)


def _as_predictions(targets):
    return [{**t, "scores": torch.ones(len(t["labels"]))} for t in targets]


def test_ground_truth_as_predictions_scores_one():
    targets = [target for _, target in DetectionImages(coco128_root(), "val2017")]
    assert sum(len(t["labels"]) for t in targets) > 4
    assert box_map(_as_predictions(targets), targets) == {"map_50": 1.0, "map": 1.0}


def _two_images(good_score: float, bad_score: float):
    """One ground-truth box per image; image A's prediction overlaps with IoU 0.72, image B's with 0.4."""
    gt = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    targets = [{"boxes": gt, "labels": torch.tensor([3])}, {"boxes": gt, "labels": torch.tensor([3])}]
    predictions = [
        {"boxes": torch.tensor([[0.0, 0.0, 100.0, 72.0]]), "scores": torch.tensor([good_score]),
         "labels": torch.tensor([3])},  # IoU 7200 / 10000 = 0.72
        {"boxes": torch.tensor([[0.0, 0.0, 100.0, 40.0]]), "scores": torch.tensor([bad_score]),
         "labels": torch.tensor([3])},  # IoU 4000 / 10000 = 0.40
    ]
    return predictions, targets


def test_two_box_case_matches_the_hand_computation():
    # COCO averages the interpolated precision at the 101 recalls 0, 0.01, ..., 1.
    # Good box ranked first: at IoU 0.5 the ranking is TP (P=1, R=0.5), FP (P=0.5, R=0.5); recall never
    # passes 0.5, so precision is 1 at the 51 recalls 0..0.50 and 0 beyond: AP@0.5 = 51/101.
    # IoU 0.72 also matches at thresholds 0.55, 0.60, 0.65, 0.70 (5 of the 10) and misses at
    # 0.75..0.95, so mAP@0.5:0.95 = (5 * 51/101 + 5 * 0) / 10.
    assert box_map(*_two_images(0.9, 0.8)) == pytest.approx({"map_50": 51 / 101, "map": 0.5 * 51 / 101})
    # Bad box ranked first: FP (P=0, R=0), TP (P=0.5, R=0.5); the precision envelope is 0.5 up to
    # recall 0.5: AP@0.5 = 0.5 * 51/101.
    expected = {"map_50": 0.5 * 51 / 101, "map": 0.25 * 51 / 101}
    assert box_map(*_two_images(0.8, 0.9)) == pytest.approx(expected)


def test_streaming_equals_one_call():
    predictions, targets = _two_images(0.9, 0.8)
    metric = BoxMAP()
    metric.update(predictions[:1], targets[:1])
    metric.update(predictions[1:], targets[1:])
    assert metric.compute() == pytest.approx(box_map(predictions, targets))
    metric.reset()
    metric.update(predictions[:1], targets[:1])
    assert metric.compute() == {"map_50": 1.0, "map": 0.5}


def test_box_map_checks_its_inputs():
    predictions, targets = _two_images(0.9, 0.8)
    with pytest.raises(ValueError, match="one dict per image"):
        box_map(predictions, targets[:1])
    with pytest.raises(ValueError, match=r"predictions\[0\]\['scores'\]"):
        box_map([{"boxes": predictions[0]["boxes"], "labels": predictions[0]["labels"]}], targets[:1])
    inverted = {**predictions[0], "boxes": torch.tensor([[10.0, 0.0, 5.0, 5.0]])}
    with pytest.raises(ValueError, match="x2 >= x1"):
        box_map([inverted], targets[:1])
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\] must have one entry per box"):
        box_map(predictions[:1], [{"boxes": targets[0]["boxes"], "labels": torch.tensor([1, 2])}])
    with pytest.raises(TypeError, match="list of dicts"):
        box_map(predictions[0], targets[0])


# 3 classes in a 4-class problem (class 3 never occurs); the bottom-right 2x2 block is ignored.
TARGET = torch.tensor([[[0, 0, 1, 1],
                        [0, 0, 1, 1],
                        [2, 2, 255, 255],
                        [2, 2, 255, 255]]])
PRED = torch.tensor([[[0, 0, 1, 0],
                      [0, 1, 1, 1],
                      [2, 2, 0, 1],
                      [2, 0, 2, 2]]])
# Over the 12 labelled pixels:
# class 0: 3 hits, 1 target-0 pixel called 1, 2 pixels called 0 that are 1 and 2: IoU 3 / 6 = 0.5
# class 1: 3 hits, 1 miss, 1 pixel called 1 that is 0: IoU 3 / 5 = 0.6
# class 2: 3 hits, 1 miss, none wrongly called 2 (the ignored pixels do not count): IoU 3 / 4 = 0.75
# class 3: no pixel in target or prediction: left out of the mean
HAND_IOU = [0.5, 0.6, 0.75]
HAND_MIOU = (0.5 + 0.6 + 0.75) / 3
HAND_ACCURACY = 9 / 12


def test_confusion_matrix_matches_the_hand_count():
    metric = ConfusionMatrix(4)
    metric.update(PRED, TARGET)
    result = metric.compute()
    assert result["iou"][:3].tolist() == pytest.approx(HAND_IOU) and torch.isnan(result["iou"][3])
    assert result["miou"] == pytest.approx(HAND_MIOU)
    assert result["pixel_accuracy"] == pytest.approx(HAND_ACCURACY)
    assert metric.matrix().sum() == 12 and metric.matrix()[0].tolist() == [3, 1, 0, 0]
    # torchmetrics' macro Jaccard index follows the same "classes that occur" rule
    jaccard = MulticlassJaccardIndex(4, average="macro", ignore_index=255)
    assert float(jaccard(PRED, TARGET)) == pytest.approx(result["miou"])


def test_ignored_pixels_do_not_count():
    metric = ConfusionMatrix(4)
    wrong_where_ignored = PRED.clone()
    wrong_where_ignored[:, 2:, 2:] = 3
    metric.update(wrong_where_ignored, TARGET)
    assert metric.compute()["miou"] == pytest.approx(HAND_MIOU)


def test_logits_and_batches_accumulate_like_one_update():
    logits = torch.nn.functional.one_hot(PRED, 4).permute(0, 3, 1, 2).float()
    metric = ConfusionMatrix(4)
    metric.update(logits, TARGET)
    metric.update(TARGET.clamp(max=2), TARGET)
    both = ConfusionMatrix(4)
    both.update(torch.cat([PRED, TARGET.clamp(max=2)]), torch.cat([TARGET, TARGET]))
    assert torch.equal(metric.matrix(), both.matrix())


def test_perfect_prediction_on_a_real_mask_scores_one():
    data = SegmentationImages(coco128_root(), "val2017")
    _, mask = data[0]
    prediction = mask.clone().as_subclass(torch.Tensor)
    prediction[prediction == 255] = 0  # whatever is predicted where the target is ignored
    metric = ConfusionMatrix(data.num_classes)
    metric.update(prediction[None], mask[None])
    result = metric.compute()
    assert result["miou"] == 1.0 and result["pixel_accuracy"] == 1.0
    present = mask[mask != 255].unique()
    assert int((~torch.isnan(result["iou"])).sum()) == len(present)


def test_confusion_matrix_checks_its_inputs():
    with pytest.raises(ValueError, match="ignore_index"):
        ConfusionMatrix(4, ignore_index=2)
    metric = ConfusionMatrix(4)
    with pytest.raises(ValueError, match="no labelled pixel"):
        metric.compute()
    with pytest.raises(ValueError, match="target's shape"):
        metric.update(PRED[:, :2], TARGET)
    with pytest.raises(ValueError, match=r"pred must hold class indices in \[0, 3\]"):
        metric.update(PRED + 2, TARGET)
    with pytest.raises(ValueError, match="target must hold class indices"):
        metric.update(PRED, TARGET.clamp(max=5) + 1)
    with pytest.raises(ValueError, match=r"logits must be \(B, 4, H, W\)"):
        metric.update(torch.zeros(1, 3, 4, 4), TARGET)
    with pytest.raises(ValueError, match="target must be an integer"):
        metric.update(PRED, TARGET.float())
