"""The detection, segmentation and AMAL-weight pictures: PNGs of the expected grid; bad inputs refused."""

import matplotlib
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from metaloss.detection_seg.data import DetectionImages, SegmentationImages, coco128_root
from metaloss.detection_seg.plots import (
    DPI,
    PANEL_INCHES,
    palette,
    plot_detections,
    plot_part_weights,
    plot_segmentations,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend; imported once, at collection)

PANEL = PANEL_INCHES * DPI


@pytest.fixture(autouse=True)
def _no_data_root(monkeypatch):
    monkeypatch.delenv("METALOSS_DATA", raising=False)


@pytest.fixture(scope="module")
def detections():
    # Real pairs scaled down together (boxes follow), so that drawing them is quick.
    data = DetectionImages(coco128_root(), "val2017", transform=v2.Resize(160))
    images, targets = zip(*(data[i] for i in range(2)))
    predictions = [{"boxes": t["boxes"] + 3, "labels": t["labels"],
                    "scores": torch.linspace(0.9, 0.1, len(t["labels"]))} for t in targets]
    return list(images), predictions, list(targets), data.names


@pytest.fixture(scope="module")
def segmentations():
    data = SegmentationImages(coco128_root(), "val2017")
    # 160 x 160 crops of real pairs: small enough to draw fast, masks untouched by interpolation.
    images, masks = zip(*((image[:, :160, :160], mask[:160, :160]) for image, mask in (data[0], data[1])))
    predictions = [m.as_subclass(torch.Tensor).clamp(max=data.num_classes - 1) for m in masks]
    return list(images), predictions, list(masks), data.names


def test_detection_grid_is_a_png_of_two_columns(tmp_path, detections):
    images, predictions, targets, names = detections
    path = plot_detections(images, predictions, targets, names, tmp_path / "new" / "det.png", max_images=2)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (2 * PANEL, 2 * PANEL)
    path = plot_detections(images, predictions, targets, names, tmp_path / "one.png", max_images=1,
                           score_threshold=1.0)
    with Image.open(path) as png:
        assert png.size == (2 * PANEL, PANEL)


def test_segmentation_grid_is_a_png_of_three_columns_and_its_figure_is_closed(tmp_path, segmentations):
    open_figures = len(plt.get_fignums())
    images, predictions, targets, names = segmentations
    path = plot_segmentations(images, predictions, targets, names, tmp_path / "seg.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (3 * PANEL, 2 * PANEL)
    assert len(plt.get_fignums()) == open_figures


def test_bad_inputs_are_refused(tmp_path, detections, segmentations):
    open_figures = len(plt.get_fignums())
    images, predictions, targets, names = detections
    with pytest.raises(ValueError, match="one entry per image"):
        plot_detections(images, predictions[:1], targets, names, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"images\[0\] must be a uint8"):
        plot_detections([images[0].float(), images[1]], predictions, targets, names, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"labels'\] must index names"):
        plot_detections(images, predictions, targets, names[:1], tmp_path / "x.png")
    with pytest.raises(ValueError, match="score_threshold"):
        plot_detections(images, predictions, targets, names, tmp_path / "x.png", score_threshold=2)
    images, predictions, targets, names = segmentations
    with pytest.raises(ValueError, match="one entry per image"):
        plot_segmentations(images, predictions, targets[:1], names, tmp_path / "x.png")
    with pytest.raises(ValueError, match="of its image's size"):
        plot_segmentations(images, [p[:-1] for p in predictions], targets, names, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"targets\[0\] must hold indices 0..0 or 255"):
        plot_segmentations(images, predictions, targets, names[:1], tmp_path / "x.png", max_images=1)
    with pytest.raises(TypeError, match="path"):
        plot_segmentations(images, predictions, targets, names, None)
    assert not (tmp_path / "x.png").exists() and len(plt.get_fignums()) == open_figures


def test_palette_is_fixed_and_never_black():
    colours = palette(133)
    assert colours.shape == (133, 3) and colours.dtype == torch.uint8
    assert torch.equal(colours, palette(133)) and bool((colours.int().sum(1) > 100).all())
    assert len({tuple(c) for c in colours.tolist()}) == 133


def test_part_weights_are_one_histogram_per_part(tmp_path):
    open_figures = len(plt.get_fignums())
    table = torch.rand(50, 3) + 0.5
    path = plot_part_weights(table, ["loc", "cls", "conf"], tmp_path / "plots" / "w.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (3 * PANEL, int(0.75 * PANEL))
    assert len(plt.get_fignums()) == open_figures
    with pytest.raises(ValueError, match="names must name the table's 3 parts, got 2"):
        plot_part_weights(table, ["loc", "cls"], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"table must be \(images, parts\)"):
        plot_part_weights(table[0], ["loc", "cls", "conf"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
