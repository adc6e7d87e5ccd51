"""COCO128 on disk: where it lives, its label and mask files, and the two datasets built on them.

Layout of a ``coco128/`` folder (the full one under a data root, and the committed fixture alike)::

    images/<split>/<stem>.jpg                     RGB images, split = train2017 or val2017
    detection/classes.yaml                        ``names: {0: person, ..., 79: toothbrush}``
    detection/labels/<split>/<stem>.txt           YOLO lines ``class cx cy w h`` (normalised)
    segmentation/classes.yaml                     ``classes: {0: unlabeled, 1: person, ..., 200: rug-merged}``
    segmentation/masks/<split>/<stem>.png         raw COCO panoptic class ids per pixel, 0 = unlabeled

An image without a label file is a background image (no boxes); a label file without an image is
ignored; only the images that have a mask take part in segmentation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2.functional import pil_to_tensor

from metaloss.core.checks import check_int, describe
from metaloss.core.data_root import data_root

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# COCO panoptic's "no segment here" id: never a class, always ignored.
UNLABELED_ID = 0
# Masks are 8- or 16-bit single-channel PNGs (L, P for palette-coded ids, I;16 / I for wider ids).
MASK_MODES = ("L", "P", "I;16", "I")


def fixture_root() -> Path:
    """The committed mini data root: ``coco128/`` with 8 train and 4 val images (see fixtures/README.md)."""
    return Path(__file__).resolve().parent / "fixtures"


def coco128_root(root: str | os.PathLike | None = None) -> Path:
    """The ``coco128`` folder: ``data_root(root) / "coco128"`` when a data root is given or
    ``$METALOSS_DATA`` is set, else the committed fixture (a small real subset, for tests and CPU runs).

    COCO128 has no download of its own; users with a network use ``data.online`` (VOC, COCO) instead.
    """
    base = data_root(root)
    folder = (fixture_root() if base is None else base) / "coco128"
    if not folder.is_dir():
        where = "the committed fixture" if base is None else f"the data root {str(base)!r}"
        raise FileNotFoundError(f"no coco128/ folder in {where}: expected {str(folder)!r}")
    return folder


def _as_path(name: str, value) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(value).__name__}")
    return Path(value)


def _check_transform(transform) -> None:
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")


def read_class_names(yaml_path: str | os.PathLike) -> dict[int, str]:
    """``{id: name}`` from a classes.yaml: the ``names`` mapping (or list) of the detection file, or the
    ``classes`` mapping of the segmentation file."""
    path = _as_path("yaml_path", yaml_path)
    if not path.is_file():
        raise FileNotFoundError(f"class file {str(path)!r} does not exist")
    content = yaml.safe_load(path.read_text())
    table = None
    if isinstance(content, dict):
        table = content.get("names", content.get("classes"))
    if isinstance(table, list):
        table = dict(enumerate(table))
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{str(path)!r} must hold a non-empty 'names' or 'classes' mapping of id -> name")
    for key, name in table.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 0 or not isinstance(name, str):
            raise ValueError(f"{str(path)!r}: class entries must be 'int >= 0: name', got {key!r}: {name!r}")
    return dict(sorted(table.items()))


def read_yolo_labels(path: str | os.PathLike | None, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes and labels of one YOLO label file: float32 (N, 4) ``cx cy w h`` in [0, 1], int64 (N,).

    A missing file (or ``path=None``) means a background image and gives zero boxes, as in YOLO's
    own loaders; blank lines are skipped. Any malformed line raises ValueError naming the file and
    the line number.
    """
    check_int("num_classes", num_classes, minimum=1)
    if path is None:
        return torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
    path = _as_path("path", path)
    if not path.exists():
        return torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64)
    boxes, labels = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        if len(fields) != 5:
            raise ValueError(f"{where}: expected 5 columns 'class cx cy w h', got {len(fields)}: {line!r}")
        try:
            label = int(fields[0])
        except ValueError:
            raise ValueError(f"{where}: the class id must be an integer, got {fields[0]!r}") from None
        if not 0 <= label < num_classes:
            raise ValueError(f"{where}: the class id must lie in [0, {num_classes}), got {label}")
        try:
            box = [float(v) for v in fields[1:]]
        except ValueError:
            raise ValueError(f"{where}: coordinates must be numbers, got {fields[1:]}") from None
        if not all(0.0 <= v <= 1.0 for v in box):  # also refuses nan
            raise ValueError(f"{where}: coordinates must be normalised to [0, 1], got {box}")
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"{where}: width and height must be > 0, got w={box[2]}, h={box[3]}")
        boxes.append(box)
        labels.append(label)
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.int64)


def _check_size(value) -> tuple[int, int]:
    ok = isinstance(value, Sequence) and len(value) == 2
    if not ok or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise ValueError(f"image_size must be (width, height), two ints >= 1, got {value!r}")
    return int(value[0]), int(value[1])


def read_class_mask(path: str | os.PathLike, image_size: tuple[int, int]) -> torch.Tensor:
    """The raw class ids of a mask PNG as an int64 tensor (H, W); ``image_size`` is its image's
    (width, height), which the mask must match pixel for pixel."""
    path = _as_path("path", path)
    width, height = _check_size(image_size)
    if not path.is_file():
        raise FileNotFoundError(f"mask {str(path)!r} does not exist")
    try:
        with Image.open(path) as mask:
            mode, size = mask.mode, mask.size
            ids = np.array(mask)
    except OSError as error:  # also PIL's UnidentifiedImageError
        raise ValueError(f"cannot read mask {str(path)!r}: {error}") from None
    if mode not in MASK_MODES:
        raise ValueError(f"mask {str(path)!r} must be a single-channel image ({', '.join(MASK_MODES)}), "
                         f"got mode {mode}")
    if size != (width, height):
        raise ValueError(f"mask {str(path)!r} is {size[0]}x{size[1]} (W x H) "
                         f"but its image is {width}x{height}")
    return torch.from_numpy(ids.astype(np.int64))


class IdMap:
    """Raw class ids (e.g. COCO panoptic's 1..200, with gaps) -> contiguous indices 0..K-1.

    ``classes`` is ``{raw id: name}`` (a segmentation classes.yaml); id 0 (unlabeled) is never a
    class: it maps to ``ignore_index``, which the loss and the metrics skip. Indices follow the
    sorted raw ids, so ``names[i]`` is the class of index ``i``.
    """

    def __init__(self, classes: Mapping[int, str], ignore_index: int = IGNORE_INDEX):
        if not isinstance(classes, Mapping):
            raise TypeError(f"classes must be a mapping of raw id -> name, got {type(classes).__name__}")
        for key, name in classes.items():
            if isinstance(key, bool) or not isinstance(key, int) or key < 0 or not isinstance(name, str):
                raise ValueError(f"classes must map ints >= 0 to names, got {key!r}: {name!r}")
        self.ids = sorted(k for k in classes if k != UNLABELED_ID)
        if not self.ids:
            raise ValueError("classes must hold at least one id besides 0 (unlabeled)")
        self.names = [classes[k] for k in self.ids]
        self.num_classes = len(self.ids)
        check_int("ignore_index", ignore_index, minimum=0)
        if ignore_index < self.num_classes:
            raise ValueError(f"ignore_index must not be a class index (0..{self.num_classes - 1}), "
                             f"got {ignore_index}")
        self.ignore_index = ignore_index
        # One gather does the whole mask; -1 marks ids absent from the class file.
        self._table = torch.full((self.ids[-1] + 1,), -1, dtype=torch.int64)
        self._table[torch.tensor(self.ids)] = torch.arange(self.num_classes)
        self._table[UNLABELED_ID] = ignore_index

    @classmethod
    def from_yaml(cls, yaml_path: str | os.PathLike, ignore_index: int = IGNORE_INDEX) -> IdMap:
        """The map of a segmentation classes.yaml."""
        return cls(read_class_names(yaml_path), ignore_index)

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        """Contiguous int64 indices of an integer tensor of raw ids; unknown ids raise ValueError."""
        if not isinstance(raw, torch.Tensor) or raw.is_floating_point() or raw.dtype == torch.bool:
            raise TypeError(f"raw must be an integer tensor of class ids, got {describe(raw)}")
        raw = raw.long()
        known = (raw >= 0) & (raw < len(self._table))
        mapped = torch.full_like(raw, -1)
        mapped[known] = self._table.to(raw.device)[raw[known]]
        if bool((mapped < 0).any()):
            unknown = raw[mapped < 0].unique()[:10].tolist()
            raise ValueError(f"raw ids {unknown} are not in the class file (known: 0 and {self.ids[:5]}...)")
        return mapped

    def __repr__(self) -> str:
        return f"IdMap(num_classes={self.num_classes}, ignore_index={self.ignore_index})"


class DetectionFile(NamedTuple):
    image: Path
    labels: Path | None  # None: no label file, a background image


class SegmentationFile(NamedTuple):
    image: Path
    mask: Path


def pil_to_image(image: Image.Image) -> tv_tensors.Image:
    """A PIL image as a ``tv_tensors.Image`` uint8 (3, H, W) RGB (grey and CMYK photos converted)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, got {type(image).__name__}")
    return tv_tensors.Image(pil_to_tensor(image.convert("RGB")))


def _read_image(path: Path) -> tv_tensors.Image:
    # Raw stored orientation (no EXIF rotation): the boxes and masks were drawn on these pixels.
    try:
        with Image.open(path) as image:
            return pil_to_image(image)
    except OSError as error:  # also PIL's UnidentifiedImageError and "image file is truncated"
        raise ValueError(f"cannot decode image {str(path)!r}: {error}") from None


def _split_images(root: Path, split: str) -> list[Path]:
    if not isinstance(split, str):
        raise TypeError(f"split must be a str such as 'train2017', got {type(split).__name__}")
    folder = root / "images" / split
    if not folder.is_dir():
        found = sorted(p.name for p in (root / "images").iterdir()) if (root / "images").is_dir() else []
        raise FileNotFoundError(f"no split {split!r} in {str(root)!r}: {str(folder)!r} is missing "
                                f"(splits found: {found})")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"split folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def _root(root) -> Path:
    path = _as_path("root", root)
    if not path.is_dir():
        raise FileNotFoundError(f"root {str(path)!r} is not a directory (pass coco128_root())")
    return path


class _SplitImages(Dataset):
    """What both datasets share: the root, the split, the transform, ``files`` and the item's ending."""

    def __init__(self, root: str | os.PathLike, split: str, transform: Callable | None):
        self.root = _root(root)
        _check_transform(transform)
        self.split = split
        self.transform = transform
        self.files: list = []

    def __len__(self) -> int:
        return len(self.files)

    def _item(self, image: tv_tensors.Image, target):
        return (image, target) if self.transform is None else self.transform(image, target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


class DetectionImages(_SplitImages):
    """The images of one split with their boxes: item ``i`` is ``(image, target)``.

    ``image``: ``tv_tensors.Image`` uint8 (3, H, W) RGB. ``target``: ``{"boxes": BoundingBoxes``
    (N, 4) XYXY in pixels, ``canvas_size=(H, W)``, ``"labels": int64 (N,)}``; N = 0 for a background
    image. ``transform(image, target)`` is applied when given (see ``detection_transforms``).

    ``files``: one ``DetectionFile(image, labels)`` per image of ``images/<split>``, in name order
    (``labels`` None for a background image); ``names``: the 80 class names; ``num_classes``: 80.
    """

    def __init__(self, root: str | os.PathLike, split: str, transform: Callable | None = None):
        super().__init__(root, split, transform)
        names = read_class_names(self.root / "detection" / "classes.yaml")
        if list(names) != list(range(len(names))):
            raise ValueError(f"{self.root / 'detection' / 'classes.yaml'}: detection class ids must be "
                             f"0..{len(names) - 1}, got {list(names)[:5]}...")
        self.names = list(names.values())
        self.num_classes = len(self.names)
        labels = self.root / "detection" / "labels" / split
        for image in _split_images(self.root, split):
            label = labels / f"{image.stem}.txt"
            self.files.append(DetectionFile(image, label if label.is_file() else None))

    def __getitem__(self, index: int):
        entry = self.files[index]
        image = _read_image(entry.image)
        height, width = image.shape[-2:]
        cxcywh, labels = read_yolo_labels(entry.labels, self.num_classes)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)
        half = cxcywh[:, 2:] / 2
        xyxy = torch.cat([cxcywh[:, :2] - half, cxcywh[:, :2] + half], dim=1) * scale
        # Six-digit rounding in the label files pushes a few edges a hair past the border.
        xyxy = torch.minimum(xyxy.clamp(min=0), scale)
        boxes = tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=(height, width))
        return self._item(image, {"boxes": boxes, "labels": labels})


class SegmentationImages(_SplitImages):
    """The images of one split that have a mask: item ``i`` is ``(image, mask)``.

    ``image``: ``tv_tensors.Image`` uint8 (3, H, W) RGB. ``mask``: ``tv_tensors.Mask`` int64 (H, W) of
    contiguous class indices (``names``), ``ignore_index`` (255) where COCO has no segment.
    ``transform(image, mask)`` moves both together (see ``segmentation_transforms``).

    ``files``: one ``SegmentationFile(image, mask)`` per image with a mask, in name order; ``names``
    and ``num_classes``: the classes of ``segmentation/classes.yaml`` without "unlabeled" (129 for
    COCO128); ``id_map``: the ``IdMap`` from raw ids to indices.
    """

    ignore_index = IGNORE_INDEX

    def __init__(self, root: str | os.PathLike, split: str, transform: Callable | None = None):
        super().__init__(root, split, transform)
        self.id_map = IdMap.from_yaml(self.root / "segmentation" / "classes.yaml", self.ignore_index)
        self.names = self.id_map.names
        self.num_classes = self.id_map.num_classes
        masks = self.root / "segmentation" / "masks" / split
        self.files = [SegmentationFile(image, masks / f"{image.stem}.png")
                      for image in _split_images(self.root, split) if (masks / f"{image.stem}.png").is_file()]
        if not self.files:
            raise FileNotFoundError(f"no image of split {split!r} has a mask in {str(masks)!r}")

    def __getitem__(self, index: int):
        entry = self.files[index]
        image = _read_image(entry.image)
        height, width = image.shape[-2:]
        mask = tv_tensors.Mask(self.id_map(read_class_mask(entry.mask, (width, height))))
        return self._item(image, mask)


def _stack(name: str, tensors: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"{name} of a batch must share one shape (resize them with the transforms), "
                         f"got {sorted(shapes)}")
    return torch.stack([t.as_subclass(torch.Tensor) for t in tensors])


def _check_batch(batch) -> None:
    if not isinstance(batch, Sequence) or not batch:
        raise ValueError(f"batch must be a non-empty sequence of (image, target) pairs, got {batch!r:.80}")
    for item in batch:
        if not isinstance(item, Sequence) or len(item) != 2 or not isinstance(item[0], torch.Tensor):
            raise ValueError(f"batch items must be (image tensor, target) pairs, got {type(item).__name__}")


def collate_detection(batch: Sequence[tuple]) -> tuple[torch.Tensor, list[dict]]:
    """``(images (B, 3, H, W), [target, ...])``: images stacked, targets kept one per image (their box
    counts differ)."""
    _check_batch(batch)
    for _, target in batch:
        if not isinstance(target, Mapping) or not {"boxes", "labels"} <= set(target):
            raise ValueError(f"targets must be dicts with 'boxes' and 'labels', got {target!r:.80}")
    return _stack("images", [image for image, _ in batch]), [target for _, target in batch]


def collate_segmentation(batch: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (B, 3, H, W), masks (B, H, W))``, both stacked."""
    _check_batch(batch)
    for _, mask in batch:
        if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
            raise ValueError(f"masks must be (H, W) tensors, got {describe(mask)}")
    return _stack("images", [image for image, _ in batch]), _stack("masks", [mask for _, mask in batch])


def split_train_val(dataset_len: int, val_size: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``range(dataset_len)`` into (train, validation) index lists, each sorted.

    COCO128 has no separate validation split for model selection: cut one from train2017 and keep
    val2017 for the final numbers.
    """
    check_int("dataset_len", dataset_len, minimum=2)
    check_int("val_size", val_size, minimum=1, maximum=dataset_len - 1)
    check_int("seed", seed, minimum=0)
    order = torch.randperm(dataset_len, generator=torch.Generator().manual_seed(seed))
    return sorted(order[val_size:].tolist()), sorted(order[:val_size].tolist())

