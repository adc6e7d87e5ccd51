"""COCO128 readers, the committed fixture, transforms and the online conversions, on real fixture data."""

import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from metaloss.detection_seg.data import (
    VOC_CLASSES,
    DetectionImages,
    IdMap,
    SegmentationImages,
    coco128_root,
    coco_annotations_to_target,
    coco_category_index,
    coco_detection,
    collate_detection,
    collate_segmentation,
    denormalize,
    detection_transforms,
    fixture_root,
    read_class_mask,
    read_class_names,
    read_yolo_labels,
    segmentation_transforms,
    split_train_val,
    voc_annotation_to_target,
    voc_detection,
    voc_mask_to_target,
    voc_segmentation,
)

BACKGROUND = "000000000250"


@pytest.fixture(autouse=True)
def _no_data_root(monkeypatch):
    # coco128_root() must mean the committed fixture here, whatever the shell exports.
    monkeypatch.delenv("METALOSS_DATA", raising=False)


@pytest.fixture
def coco():
    return coco128_root()


def _mini_root(tmp_path, coco, stems=("000000000030",)):
    """A coco128 copy with the class files and a few train images (and their labels)."""
    root = tmp_path / "coco128"
    for name in ("detection/classes.yaml", "segmentation/classes.yaml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(coco / name, root / name)
    for folder in ("images/train2017", "detection/labels/train2017"):
        (root / folder).mkdir(parents=True)
    for stem in stems:
        for name in (f"images/train2017/{stem}.jpg", f"detection/labels/train2017/{stem}.txt"):
            shutil.copyfile(coco / name, root / name)
    return root


# --- the fixture and the root --------------------------------------------------------------------------


def test_fixture_is_a_small_coco128_with_a_background_image(coco):
    assert coco == fixture_root() / "coco128"
    train, val = DetectionImages(coco, "train2017"), DetectionImages(coco, "val2017")
    assert (len(train), len(val)) == (9, 4) and train.num_classes == 80 and train.names[0] == "person"
    assert [f.image.stem for f in train.files if f.labels is None] == [BACKGROUND]
    assert all(f.labels is not None for f in val.files)
    assert [f.image.name for f in train.files] == sorted(f.image.name for f in train.files)
    size = sum(p.stat().st_size for p in coco.rglob("*") if p.is_file())
    assert size <= 2_000_000


def test_root_comes_from_the_argument_then_the_environment(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no coco128/ folder"):
        coco128_root(tmp_path)
    (tmp_path / "coco128").mkdir()
    assert coco128_root(tmp_path) == tmp_path / "coco128"
    monkeypatch.setenv("METALOSS_DATA", str(tmp_path))
    assert coco128_root() == tmp_path / "coco128"
    with pytest.raises(TypeError, match="data root"):
        coco128_root(3)


# --- label and mask files -------------------------------------------------------------------------------


def test_detection_item_is_the_label_file_in_pixels(coco):
    data = DetectionImages(coco, "train2017")
    image, target = data[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape[0] == 3
    height, width = image.shape[-2:]
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format.name == "XYXY"
    assert tuple(boxes.canvas_size) == (height, width)
    lines = [line.split() for line in data.files[0].labels.read_text().splitlines() if line.strip()]
    label, cx, cy, w, h = int(lines[0][0]), *(float(v) for v in lines[0][1:])
    expected = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
    assert boxes[0].tolist() == pytest.approx(expected, abs=1e-3)
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist()[0] == label
    assert len(target["labels"]) == len(boxes) == len(lines)


def test_background_image_has_no_boxes(coco):
    data = DetectionImages(coco, "train2017")
    index = [f.image.stem for f in data.files].index(BACKGROUND)
    _, target = data[index]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    boxes, labels = read_yolo_labels(coco / "detection/labels/train2017/missing.txt", 80)
    assert boxes.shape == (0, 4) and labels.dtype == torch.int64


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.2", "expected 5 columns"),
    ("0 0.5 x 0.2 0.2", "must be numbers"),
    ("1.5 0.5 0.5 0.2 0.2", "must be an integer"),
    ("80 0.5 0.5 0.2 0.2", r"in \[0, 80\)"),
    ("-1 0.5 0.5 0.2 0.2", r"in \[0, 80\)"),
    ("0 1.2 0.5 0.2 0.2", r"normalised to \[0, 1\]"),
    ("0 0.5 0.5 nan 0.2", r"normalised to \[0, 1\]"),
    ("0 0.5 0.5 0.0 0.2", "must be > 0"),
])
def test_malformed_label_lines_name_the_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text(f"3 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(ValueError, match=message) as caught:
        read_yolo_labels(path, 80)
    assert "bad.txt, line 2" in str(caught.value)


def test_label_reader_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        read_yolo_labels(tmp_path / "x.txt", 0)
    with pytest.raises(TypeError, match="path"):
        read_yolo_labels(3, 80)


def test_mask_must_match_its_image(coco):
    path = coco / "segmentation/masks/val2017/000000000802.png"
    width, height = Image.open(coco / "images/val2017/000000000802.jpg").size
    ids = read_class_mask(path, (width, height))
    assert ids.shape == (height, width) and ids.dtype == torch.int64
    with pytest.raises(ValueError, match=rf"is {width}x{height} .* but its image is {width + 1}x{height}"):
        read_class_mask(path, (width + 1, height))
    with pytest.raises(ValueError, match="image_size"):
        read_class_mask(path, (width, 0))


def test_id_map_makes_panoptic_ids_contiguous(coco):
    classes = read_class_names(coco / "segmentation/classes.yaml")
    id_map = IdMap.from_yaml(coco / "segmentation/classes.yaml")
    # The file lists the ids that occur in COCO128 (129 of COCO panoptic's 133 classes).
    assert id_map.num_classes == len(classes) - 1 == len(id_map.names)
    assert id_map.names[0] == "person" and id_map.names[-1] == classes[200]
    raw = torch.tensor([[0, 1], [200, 2]])
    assert id_map(raw).tolist() == [[255, 0], [id_map.num_classes - 1, 1]]
    with pytest.raises(ValueError, match=r"raw ids \[12\]"):  # 12 is a gap in COCO's ids
        id_map(torch.tensor([1, 12]))
    with pytest.raises(ValueError, match="ignore_index"):
        IdMap({0: "unlabeled", 1: "a", 2: "b"}, ignore_index=1)


def test_segmentation_items_are_contiguous_masks_of_the_image_size(coco):
    data = SegmentationImages(coco, "val2017")
    assert len(data) == 4 and data.ignore_index == 255 and data.num_classes == len(data.names)
    image, mask = data[0]
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64
    assert mask.shape == image.shape[-2:]
    values = mask.unique()
    assert bool(((values < data.num_classes) | (values == 255)).all()) and (values < data.num_classes).any()
    assert len(SegmentationImages(coco, "train2017")) == 9  # the background image has a mask


def test_corrupt_image_names_the_file(tmp_path, coco):
    root = _mini_root(tmp_path, coco)
    (root / "images/train2017/000000000031.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    data = DetectionImages(root, "train2017")
    with pytest.raises(ValueError, match="cannot decode image .*000000000031.jpg"):
        data[1]


def test_orphan_labels_are_ignored_and_an_empty_split_refused(tmp_path, coco):
    root = _mini_root(tmp_path, coco)
    (root / "detection/labels/train2017/000000000656.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    assert [f.image.stem for f in DetectionImages(root, "train2017").files] == ["000000000030"]
    (root / "images/val2017").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        DetectionImages(root, "val2017")
    with pytest.raises(FileNotFoundError, match="splits found"):
        DetectionImages(root, "test2017")
    with pytest.raises(FileNotFoundError, match="has a mask"):
        SegmentationImages(root, "train2017")
    with pytest.raises(TypeError, match="transform"):
        DetectionImages(root, "train2017", transform=3)


# --- batches and splits ---------------------------------------------------------------------------------


def test_collate_stacks_images_and_keeps_targets(coco):
    detection = DetectionImages(coco, "val2017", detection_transforms(48, train=False))
    images, targets = collate_detection([detection[i] for i in range(3)])
    assert images.shape == (3, 3, 48, 48) and images.dtype == torch.float32 and len(targets) == 3
    segmentation = SegmentationImages(coco, "val2017", segmentation_transforms(48, train=False))
    images, masks = collate_segmentation([segmentation[i] for i in range(2)])
    assert images.shape == (2, 3, 48, 48) and masks.shape == (2, 48, 48) and masks.dtype == torch.int64
    with pytest.raises(ValueError, match="share one shape"):
        collate_detection([DetectionImages(coco, "val2017")[i] for i in range(2)])
    with pytest.raises(ValueError, match="non-empty"):
        collate_segmentation([])


def test_split_is_seeded_disjoint_and_sorted():
    train, val = split_train_val(128, 16, seed=0)
    assert len(val) == 16 and sorted(train + val) == list(range(128))
    assert train == sorted(train) and val == sorted(val)
    assert split_train_val(128, 16, seed=0) == (train, val)
    assert split_train_val(128, 16, seed=1)[1] != val
    for bad in (0, 128):
        with pytest.raises(ValueError, match="val_size"):
            split_train_val(128, bad, seed=0)


# --- transforms -----------------------------------------------------------------------------------------


def _bright_box(image: torch.Tensor) -> list[float]:
    """The pixel edges (x1, y1, x2, y2) of the bright pixels of a transformed image."""
    ys, xs = torch.nonzero(denormalize(image).float().mean(0) > 160, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_flip_moves_the_box_with_the_pixels():
    # A 40 x 40 image at size 40: the letterbox leaves it alone, so only the flip moves things.
    image = torch.zeros(3, 40, 40, dtype=torch.uint8)
    image[:, 4:10, 2:12] = 255
    boxes = tv_tensors.BoundingBoxes([[2.0, 4.0, 12.0, 10.0]], format="XYXY", canvas_size=(40, 40))
    transform = detection_transforms(40, train=True)
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        out, target = transform(tv_tensors.Image(image), {"boxes": boxes, "labels": torch.tensor([7])})
        box = target["boxes"][0].tolist()
        # mirrored: x -> 40 - x, so [2, 12] becomes [28, 38]
        assert box in ([2.0, 4.0, 12.0, 10.0], [28.0, 4.0, 38.0, 10.0])
        assert _bright_box(out) == pytest.approx(box)
        assert target["labels"].tolist() == [7]
        seen.add(box[0])
    assert seen == {2.0, 28.0}


def test_boxes_shrunk_below_a_pixel_are_dropped_with_their_labels():
    boxes = tv_tensors.BoundingBoxes([[0.0, 0.0, 50.0, 50.0], [60.0, 60.0, 62.0, 62.0]], format="XYXY",
                                     canvas_size=(100, 100))
    image = tv_tensors.Image(torch.zeros(3, 100, 100, dtype=torch.uint8))
    _, target = detection_transforms(10, train=False)(image, {"boxes": boxes, "labels": torch.tensor([1, 2])})
    assert target["boxes"].tolist() == [[0.0, 0.0, 5.0, 5.0]] and target["labels"].tolist() == [1]


def test_evaluation_letterboxes_at_the_bottom_right_keeping_the_aspect_ratio():
    image = tv_tensors.Image(torch.full((3, 50, 100), 200, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[10.0, 10.0, 50.0, 30.0]], format="XYXY", canvas_size=(50, 100))
    out, target = detection_transforms(40, train=False)(image, {"boxes": boxes, "labels": torch.tensor([3])})
    assert out.shape == (3, 40, 40)
    # scaled by 40 / 100 = 0.4 on both axes, not stretched: the box is [4, 4, 20, 12]
    assert target["boxes"].tolist() == [[4.0, 4.0, 20.0, 12.0]]
    assert _bright_box(out) == [0.0, 0.0, 40.0, 20.0]  # the image fills the top 20 rows
    mask = tv_tensors.Mask(torch.full((50, 100), 3, dtype=torch.int64))
    _, out_mask = segmentation_transforms(40, train=False)(image, mask)
    assert (out_mask[:20] == 3).all() and (out_mask[20:] == 255).all()  # the padding is unlabeled


@pytest.mark.parametrize("train", [True, False])
def test_mask_stays_aligned_with_the_image(train):
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    image[:, 8:24, 12:36] = 255
    mask = torch.zeros(40, 60, dtype=torch.int64)
    mask[8:24, 12:36] = 5
    transform = segmentation_transforms(30, train=train)
    for seed in range(4):
        torch.manual_seed(seed)
        out, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        assert out.shape == (3, 30, 30) and out.dtype == torch.float32 and out_mask.dtype == torch.int64
        ys, xs = torch.nonzero(out_mask == 5, as_tuple=True)
        class_box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        assert _bright_box(out) == class_box
        # nearest neighbour: no blended class ids; letterbox padding is "ignore"
        assert set(out_mask.unique().tolist()) <= {0, 5, 255}
        assert (out_mask == 255).any()  # a 40 x 60 image leaves a letterbox in either mode


def test_transforms_check_their_arguments():
    with pytest.raises(ValueError, match="size"):
        detection_transforms(0, train=True)
    with pytest.raises(TypeError, match="train"):
        segmentation_transforms(32, train="yes")
    with pytest.raises(ValueError, match="std must be > 0"):
        detection_transforms(32, train=False, std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="3 numbers"):
        segmentation_transforms(32, train=False, mean=(0.5,))


# --- online paths: the conversions, and the wrappers on local hand-made copies -----------------------


def _voc_annotation(*objects):
    return {"annotation": {"size": {"width": "50", "height": "40", "depth": "3"}, "object": list(objects)}}


def _voc_object(name, box, difficult="0"):
    return {"name": name, "difficult": difficult, "bndbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), box))}


def test_voc_annotation_becomes_zero_based_boxes():
    annotation = _voc_annotation(_voc_object("dog", ("1", "11", "20", "30")),
                                 _voc_object("person", ("30", "5", "60", "40"), difficult="1"))
    target = voc_annotation_to_target(annotation, (40, 50))
    # VOC counts pixels from 1: xmin 1 is the left edge 0; xmax 60 is clipped to the width 50.
    assert target["boxes"].tolist() == [[0.0, 10.0, 20.0, 30.0], [29.0, 4.0, 50.0, 40.0]]
    assert target["labels"].tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")]
    assert voc_annotation_to_target(annotation, (40, 50), keep_difficult=False)["labels"].tolist() == [11]
    assert voc_annotation_to_target(_voc_annotation(), (40, 50))["boxes"].shape == (0, 4)
    with pytest.raises(ValueError, match="VOC_CLASSES"):
        voc_annotation_to_target(_voc_annotation(_voc_object("unicorn", ("1", "1", "2", "2"))), (40, 50))
    with pytest.raises(ValueError, match="canvas_size"):
        voc_annotation_to_target(annotation, (40,))


def _palette_image(indices: np.ndarray) -> Image.Image:
    """A palette ("P") image holding ``indices`` as they are, like VOC's class PNGs."""
    image = Image.fromarray(indices.astype(np.uint8))
    image.putpalette([v for i in range(256) for v in (i, i, i)])
    return image


def test_voc_mask_keeps_255_as_ignore():
    mask = _palette_image(np.array([[0, 15], [255, 20]]))
    assert mask.mode == "P"
    assert voc_mask_to_target(mask).tolist() == [[0, 15], [255, 20]]
    with pytest.raises(ValueError, match="0..20 or 255"):
        voc_mask_to_target(torch.tensor([[21, 0]]))


def test_coco_annotations_use_contiguous_indices_and_skip_crowds():
    index, names = coco_category_index([{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}])
    assert index == {1: 0, 90: 1} and names == ["person", "toothbrush"]
    annotations = [{"bbox": [10, 20, 30, 5], "category_id": 90, "iscrowd": 0},
                   {"bbox": [0, 0, 5, 5], "category_id": 1, "iscrowd": 1},
                   {"bbox": [1, 1, 0, 4], "category_id": 1}]
    target = coco_annotations_to_target(annotations, (100, 100), index)
    assert target["boxes"].tolist() == [[10.0, 20.0, 40.0, 25.0]] and target["labels"].tolist() == [1]
    with pytest.raises(ValueError, match="category_id 5"):
        coco_annotations_to_target([{"bbox": [0, 0, 1, 1], "category_id": 5}], (10, 10), index)


def _voc_tree(tmp_path, coco):
    """A one-image VOC2012 folder (no download): image, XML annotation, class mask, split lists."""
    voc = tmp_path / "VOCdevkit/VOC2012"
    folders = ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation")
    for folder in folders:
        (voc / folder).mkdir(parents=True)
    shutil.copyfile(coco / "images/val2017/000000000802.jpg", voc / "JPEGImages/a.jpg")
    width, height = Image.open(voc / "JPEGImages/a.jpg").size
    xml = ET.Element("annotation")
    obj = ET.SubElement(xml, "object")
    ET.SubElement(obj, "name").text = "cat"
    ET.SubElement(obj, "difficult").text = "0"
    box = ET.SubElement(obj, "bndbox")
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (11, 21, 100, 80)):
        ET.SubElement(box, key).text = str(value)
    ET.ElementTree(xml).write(voc / "Annotations/a.xml")
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[: height // 3] = 8
    mask[-height // 4 :] = 255
    _palette_image(mask).save(voc / "SegmentationClass/a.png")
    for folder in ("Main", "Segmentation"):
        (voc / "ImageSets" / folder / "train.txt").write_text("a\n")
    return height, width


def test_voc_wrappers_read_a_local_copy(tmp_path, coco, monkeypatch):
    import torchvision.datasets.voc

    def no_network(*args, **kwargs):
        raise AssertionError("the VOC folder is there: nothing should be downloaded")

    monkeypatch.setattr(torchvision.datasets.voc, "download_and_extract_archive", no_network)
    height, width = _voc_tree(tmp_path, coco)
    detection = voc_detection(tmp_path)  # download=True, but the extracted folder exists
    image, target = detection[0]
    assert image.shape == (3, height, width) and detection.num_classes == 20
    assert target["boxes"].tolist() == [[10.0, 20.0, 100.0, 80.0]] and target["labels"].tolist() == [7]
    segmentation = voc_segmentation(tmp_path, download=False, transform=segmentation_transforms(32, False))
    image, mask = segmentation[0]
    assert image.shape == (3, 32, 32) and set(mask.unique().tolist()) == {0, 8, 255}
    with pytest.raises(TypeError, match="root"):
        voc_detection(None)


def test_coco_wrapper_reads_an_annotation_file(tmp_path, coco):
    import json

    shutil.copytree(coco / "images/val2017", tmp_path / "images")
    width, height = Image.open(tmp_path / "images/000000000802.jpg").size
    (tmp_path / "instances.json").write_text(json.dumps({
        "images": [{"id": 802, "file_name": "000000000802.jpg", "width": width, "height": height}],
        "annotations": [{"id": 1, "image_id": 802, "bbox": [5, 6, 20, 30], "category_id": 18, "iscrowd": 0,
                         "area": 600}],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }))
    data = coco_detection(tmp_path / "images", tmp_path / "instances.json")
    image, target = data[0]
    assert data.names == ["person", "dog"] and image.shape == (3, height, width)
    assert target["boxes"].tolist() == [[5.0, 6.0, 25.0, 36.0]] and target["labels"].tolist() == [1]
    with pytest.raises(FileNotFoundError, match="annotation_file"):
        coco_detection(tmp_path / "images", tmp_path / "missing.json")
