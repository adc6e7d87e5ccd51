"""Stanford Cars and FGVC-Aircraft: folders of JPEGs of every size, resized to one square size.

Both are read from torchvision's on-disk layout, under a data root either in ``<name>/`` (the
project's layout: ``<name>`` is torchvision's ``root``) or directly (the data root is torchvision's
``root``), with the torchvision classes used for the download only:

- Stanford Cars (196 classes): ``stanford_cars/devkit/{cars_meta.mat,cars_train_annos.mat}``,
  ``stanford_cars/cars_train/*.jpg``, ``stanford_cars/cars_test_annos_withlabels.mat``,
  ``stanford_cars/cars_test/*.jpg``; classes are 1-based in the .mat files. torchvision can no longer
  download it (the original URL is gone), so the online path fails with torchvision's message.
- FGVC-Aircraft (100 variants): ``fgvc-aircraft-2013b/data/{variants.txt,images_variant_trainval.txt,
  images_variant_test.txt,images/*.jpg}``. The official ``trainval`` pool is the training split (the
  loader carves its validation set out of it, as for every dataset), ``test`` the test split.

Each image is squashed to ``image_size`` x ``image_size`` (bilinear, antialiased), whatever its aspect
ratio, so the whole object stays in view; the project's CPU runs use 32 (the CIFAR models' input).
Bounding boxes are not used. Decoding is cached per (annotation file, image folder, limit, size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cache import cached_arrays, file_key
from .paths import find_in_root


def read_stanford_cars(root: Path, split: str, limit: int | None, *, image_size: int, cache_dir: Path):
    """Stanford Cars ``split`` ("train" or "test"): uint8 (N, 3, S, S), int64 (N,), class names."""
    import scipy.io

    base = find_in_root(root, "stanford_cars", ["stanford_cars/stanford_cars", "stanford_cars"])
    if split == "train":
        annotations, folder = base / "devkit" / "cars_train_annos.mat", base / "cars_train"
    else:
        annotations, folder = base / "cars_test_annos_withlabels.mat", base / "cars_test"
    _require(annotations, folder, base / "devkit" / "cars_meta.mat")
    records = np.atleast_1d(scipy.io.loadmat(annotations, squeeze_me=True)["annotations"])[:limit]
    files = [folder / str(r["fname"]) for r in records]
    labels = np.array([int(r["class"]) - 1 for r in records], dtype=np.int64)
    names = scipy.io.loadmat(base / "devkit" / "cars_meta.mat", squeeze_me=True)["class_names"]
    classes = tuple(str(n) for n in np.atleast_1d(names))
    images, labels = _decode_folder("stanford_cars", annotations, folder, files, labels, image_size,
                                    cache_dir)
    return images, labels, classes


def read_fgvc_aircraft(root: Path, split: str, limit: int | None, *, image_size: int, cache_dir: Path):
    """FGVC-Aircraft ``split`` ("train" = official trainval, or "test"): uint8 (N, 3, S, S), int64, names."""
    data = find_in_root(
        root, "fgvc_aircraft", ["fgvc_aircraft/fgvc-aircraft-2013b/data", "fgvc-aircraft-2013b/data"]
    )
    listing = data / f"images_variant_{'trainval' if split == 'train' else 'test'}.txt"
    _require(listing, data / "images", data / "variants.txt")
    classes = tuple(line.strip() for line in (data / "variants.txt").read_text().splitlines() if line.strip())
    index = {name: i for i, name in enumerate(classes)}
    rows = [line.strip().split(" ", 1) for line in listing.read_text().splitlines() if line.strip()][:limit]
    malformed = [" ".join(row) for row in rows if len(row) != 2]
    if malformed:
        raise ValueError(f"{listing}: expected lines '<image id> <variant>', got {malformed[:3]}")
    unknown = sorted({variant for _, variant in rows if variant not in index})
    if unknown:
        raise ValueError(f"{listing} names variants missing from {data / 'variants.txt'}: {unknown[:5]}")
    files = [data / "images" / f"{image_id}.jpg" for image_id, _ in rows]
    labels = np.array([index[variant] for _, variant in rows], dtype=np.int64)
    images, labels = _decode_folder("fgvc_aircraft", listing, data / "images", files, labels, image_size,
                                    cache_dir)
    return images, labels, classes


def download_stanford_cars(root: Path) -> None:
    """Ask torchvision to download Stanford Cars into ``root`` (it raises: the source is offline)."""
    from torchvision.datasets import StanfordCars

    StanfordCars(str(root), split="train", download=True)


def download_fgvc_aircraft(root: Path) -> None:
    """Download FGVC-Aircraft (all splits, one archive) into the torchvision root ``root``."""
    from torchvision.datasets import FGVCAircraft

    FGVCAircraft(str(root), split="trainval", download=True)


def _require(*paths: Path) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError("incomplete dataset folder, missing: " + ", ".join(missing))


def _decode_folder(tag: str, listing: Path, folder: Path, files: list[Path], labels: np.ndarray, size: int,
                   cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    key = {"listing": file_key(listing), "folder": file_key(folder), "count": len(files), "size": size}
    return cached_arrays(cache_dir, tag, key, lambda: (_decode_resized(files, size), labels))


def _decode_resized(files: list[Path], size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(files):
        with Image.open(path) as image:
            # draft() lets the JPEG decoder skip detail it would throw away: a big speed-up for the
            # full-resolution photos, and no loss, since it never goes below the requested size.
            image.draft("RGB", (size, size))
            rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(rgb).transpose(2, 0, 1)
    return out
