"""The online path, for users with a network: Pascal VOC (downloaded by torchvision) and COCO (an
image folder and its annotation file), with items in COCO128's format.

Detection items are ``(tv_tensors.Image uint8 (3, H, W), {"boxes": BoundingBoxes XYXY pixels,
"labels": int64 (N,)})`` and segmentation items ``(tv_tensors.Image, tv_tensors.Mask int64 (H, W))``
with 255 = ignore, so ``detection_transforms``, ``segmentation_transforms``, the collate functions
and the metrics serve them unchanged. The conversion functions are public so that they can be
checked on hand-made annotations without a download.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .coco128 import IGNORE_INDEX, pil_to_image

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
# VOC's segmentation masks give index 0 to background, a real class there; 255 marks object borders.
VOC_SEGMENTATION_CLASSES = ("background", *VOC_CLASSES)


def _check_canvas(canvas_size) -> tuple[int, int]:
    ok = isinstance(canvas_size, Sequence) and len(canvas_size) == 2
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in canvas_size):
        raise ValueError(f"canvas_size must be (height, width), two ints >= 1, got {canvas_size!r}")
    return int(canvas_size[0]), int(canvas_size[1])


def _target(boxes: list[list[float]], labels: list[int], canvas: tuple[int, int]) -> dict:
    height, width = canvas
    xyxy = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    limit = torch.tensor([width, height, width, height], dtype=torch.float32)
    xyxy = torch.minimum(xyxy.clamp(min=0), limit)
    return {"boxes": tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=canvas),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def voc_annotation_to_target(annotation: Mapping, canvas_size: tuple[int, int],
                             keep_difficult: bool = True) -> dict:
    """A VOC annotation as ``VOCDetection`` parses it (``{"annotation": {"object": [{"name": ...,
    "bndbox": {"xmin": ..., ...}, "difficult": "0"}, ...]}}``, values as strings) -> target dict.

    Labels index ``VOC_CLASSES``. VOC numbers pixels from 1, so ``xmin`` and ``ymin`` move down by
    one to give the box's edges in 0-based pixel coordinates; boxes are clipped to ``canvas_size``
    (height, width). ``keep_difficult=False`` drops the objects VOC flags as difficult.
    """
    canvas = _check_canvas(canvas_size)
    if not isinstance(keep_difficult, bool):
        raise TypeError(f"keep_difficult must be a bool, got {type(keep_difficult).__name__}")
    if not isinstance(annotation, Mapping) or not isinstance(annotation.get("annotation"), Mapping):
        raise ValueError("annotation must be VOCDetection's dict {'annotation': {...}}, "
                         f"got {annotation!r:.80}")
    objects = annotation["annotation"].get("object", [])
    if isinstance(objects, Mapping):  # one object not wrapped in a list
        objects = [objects]
    boxes, labels = [], []
    for obj in objects:
        name = obj.get("name")
        if name not in VOC_CLASSES:
            raise ValueError(f"VOC object name must be one of VOC_CLASSES, got {name!r}")
        if not keep_difficult and str(obj.get("difficult", "0")).strip() == "1":
            continue
        try:
            xmin, ymin, xmax, ymax = (float(obj["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (KeyError, TypeError, ValueError):
            bndbox = obj.get("bndbox")
            raise ValueError(f"VOC object {name!r} needs a numeric bndbox, got {bndbox!r}") from None
        if not xmin <= xmax or not ymin <= ymax:
            raise ValueError(f"VOC object {name!r} has an inverted box {[xmin, ymin, xmax, ymax]}")
        boxes.append([xmin - 1, ymin - 1, xmax, ymax])
        labels.append(VOC_CLASSES.index(name))
    return _target(boxes, labels, canvas)


def voc_mask_to_target(mask: Image.Image | torch.Tensor) -> tv_tensors.Mask:
    """A VOC class mask (palette PNG or integer (H, W) tensor) -> ``tv_tensors.Mask`` int64 (H, W).

    Its values already are ``VOC_SEGMENTATION_CLASSES`` indices 0..20 with 255 on object borders,
    which stays as the ignore index.
    """
    if isinstance(mask, Image.Image):
        if mask.mode not in ("P", "L"):
            raise ValueError(f"mask must be a palette or grey image of class indices, got mode {mask.mode}")
        mask = torch.from_numpy(np.array(mask).astype(np.int64))
    if not isinstance(mask, torch.Tensor) or mask.is_floating_point() or mask.dim() != 2:
        raise ValueError(f"mask must be a PIL image or an integer (H, W) tensor, got {mask!r:.80}")
    mask = mask.long()
    valid = ((mask >= 0) & (mask < len(VOC_SEGMENTATION_CLASSES))) | (mask == IGNORE_INDEX)
    if not bool(valid.all()):
        raise ValueError(f"mask values must be 0..{len(VOC_SEGMENTATION_CLASSES) - 1} or {IGNORE_INDEX}, "
                         f"got {mask[~valid].unique()[:10].tolist()}")
    return tv_tensors.Mask(mask)


def coco_category_index(categories: Sequence[Mapping]) -> tuple[dict[int, int], list[str]]:
    """``({category id: index}, names)`` from a COCO annotation file's ``categories``: the sparse ids
    (1..90 for the 80 detection classes) in increasing order get indices 0..K-1, the order of
    COCO128's ``detection/classes.yaml``."""
    if not isinstance(categories, Sequence) or not categories:
        raise ValueError("categories must be a non-empty list of {'id', 'name'} dicts, "
                         f"got {categories!r:.80}")
    table = {}
    for category in categories:
        if not isinstance(category, Mapping) or not isinstance(category.get("id"), int):
            raise ValueError(f"each category needs an int 'id' and a 'name', got {category!r:.80}")
        table[category["id"]] = str(category.get("name"))
    if len(table) != len(categories):
        raise ValueError("categories must not repeat an id")
    ids = sorted(table)
    return {c: i for i, c in enumerate(ids)}, [table[c] for c in ids]


def coco_annotations_to_target(annotations: Sequence[Mapping], canvas_size: tuple[int, int],
                               category_index: Mapping[int, int]) -> dict:
    """COCO annotations of one image (``CocoDetection``'s target: dicts with ``bbox`` = [x, y, w, h]
    in pixels and ``category_id``) -> target dict with labels from ``category_index``.

    Crowd regions (``iscrowd`` = 1) are left out, as COCO's evaluation does not count them as
    objects, and so are the few zero-area boxes COCO holds; boxes are clipped to ``canvas_size``.
    """
    canvas = _check_canvas(canvas_size)
    if not isinstance(annotations, Sequence):
        raise ValueError(f"annotations must be a list of COCO annotation dicts, got {annotations!r:.80}")
    if not isinstance(category_index, Mapping):
        raise TypeError(f"category_index must be a mapping, got {type(category_index).__name__}")
    boxes, labels = [], []
    for annotation in annotations:
        if not isinstance(annotation, Mapping) or "bbox" not in annotation or "category_id" not in annotation:
            raise ValueError(f"each annotation needs 'bbox' and 'category_id', got {annotation!r:.80}")
        if annotation.get("iscrowd", 0):
            continue
        if annotation["category_id"] not in category_index:
            raise ValueError(f"category_id {annotation['category_id']!r} is not in category_index")
        x, y, w, h = (float(v) for v in annotation["bbox"])
        if w <= 0 or h <= 0:
            continue
        boxes.append([x, y, x + w, y + h])
        labels.append(category_index[annotation["category_id"]])
    return _target(boxes, labels, canvas)


def _convert_voc_detection(keep_difficult: bool, image: Image.Image, annotation: Mapping):
    image = pil_to_image(image)
    return image, voc_annotation_to_target(annotation, tuple(image.shape[-2:]), keep_difficult)


def _convert_voc_segmentation(image: Image.Image, mask: Image.Image):
    return pil_to_image(image), voc_mask_to_target(mask)


def _convert_coco(category_index: Mapping[int, int], image: Image.Image, annotations: Sequence[Mapping]):
    image = pil_to_image(image)
    return image, coco_annotations_to_target(annotations, tuple(image.shape[-2:]), category_index)


class ConvertedDataset(Dataset):
    """A torchvision dataset whose items pass through ``convert(image, target)`` and then
    ``transform``; ``names`` lists the classes its labels index."""

    def __init__(self, base: Dataset, convert: Callable, names: Sequence[str],
                 transform: Callable | None = None):
        if not callable(convert):
            raise TypeError(f"convert must be callable, got {type(convert).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.base = base
        self.convert = convert
        self.names = list(names)
        self.num_classes = len(self.names)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, target = self.convert(*self.base[index])
        if self.transform is not None:
            return self.transform(image, target)
        return image, target


def _check_root(root) -> Path:
    if not isinstance(root, str | os.PathLike):
        raise TypeError(f"root must be a str or os.PathLike, got {type(root).__name__}")
    return Path(root).expanduser()


def _voc_download(root: Path, year: str, image_set: str, download: bool) -> bool:
    """Download only when the extracted folder is missing: torchvision would unpack the archive again."""
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")
    key = "2007-test" if (year, image_set) == ("2007", "test") else year
    if not download or key not in DATASET_YEAR_DICT:  # torchvision names a wrong year itself
        return False
    return not (root / DATASET_YEAR_DICT[key]["base_dir"]).is_dir()


def voc_detection(root: str | os.PathLike, year: str = "2012", image_set: str = "train",
                  download: bool = True, transform: Callable | None = None,
                  keep_difficult: bool = True) -> ConvertedDataset:
    """Pascal VOC detection (20 classes, ``VOC_CLASSES``) through ``torchvision.datasets.VOCDetection``,
    downloaded into ``root`` when ``download`` and not already there."""
    from torchvision.datasets import VOCDetection

    root = _check_root(root)
    if not isinstance(keep_difficult, bool):
        raise TypeError(f"keep_difficult must be a bool, got {type(keep_difficult).__name__}")
    base = VOCDetection(root, year=year, image_set=image_set,
                        download=_voc_download(root, year, image_set, download))
    return ConvertedDataset(base, partial(_convert_voc_detection, keep_difficult), VOC_CLASSES, transform)


def voc_segmentation(root: str | os.PathLike, year: str = "2012", image_set: str = "train",
                     download: bool = True, transform: Callable | None = None) -> ConvertedDataset:
    """Pascal VOC semantic segmentation (21 classes with background, ``VOC_SEGMENTATION_CLASSES``; 255 =
    ignore) through ``torchvision.datasets.VOCSegmentation``, downloaded into ``root`` if needed."""
    from torchvision.datasets import VOCSegmentation

    root = _check_root(root)
    base = VOCSegmentation(root, year=year, image_set=image_set,
                           download=_voc_download(root, year, image_set, download))
    return ConvertedDataset(base, _convert_voc_segmentation, VOC_SEGMENTATION_CLASSES, transform)


def coco_detection(images: str | os.PathLike, annotation_file: str | os.PathLike,
                   transform: Callable | None = None) -> ConvertedDataset:
    """COCO detection through ``torchvision.datasets.CocoDetection``: ``images`` is an image folder
    (e.g. ``train2017/``) and ``annotation_file`` its ``instances_*.json``, both fetched by the user
    from cocodataset.org. Labels index the file's categories in id order (``coco_category_index``).

    CocoDetection reads the file with pycocotools; without it, faster-coco-eval's compatible reader
    (a dependency of this package) stands in under that name.
    """
    from torchvision.datasets import CocoDetection

    images, annotation_file = _check_root(images), _check_root(annotation_file)
    if not images.is_dir():
        raise FileNotFoundError(f"images {str(images)!r} is not a directory")
    if not annotation_file.is_file():
        raise FileNotFoundError(f"annotation_file {str(annotation_file)!r} does not exist")
    try:
        import pycocotools.coco  # noqa: F401
    except ImportError:
        import faster_coco_eval

        faster_coco_eval.init_as_pycocotools()
    base = CocoDetection(images, annotation_file)
    category_index, names = coco_category_index(base.coco.dataset.get("categories", []))
    return ConvertedDataset(base, partial(_convert_coco, category_index), names, transform)
