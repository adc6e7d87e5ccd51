"""CIFAR-10 and CIFAR-100 readers, and their online download through torchvision.

Each reader returns ``(images, labels, classes)``: uint8 (N, 3, 32, 32), int64 (N,), class names.
On-disk layouts read, under a data root:

- CIFAR-10, Hugging Face Parquet (``cifar10`` schema): ``cifar10/{train,test}.parquet``, column
  ``img`` = struct{bytes, path} holding an encoded image (JPEG in the project's copy), ``label``.
  Decoding is cached (``cache.py``).
- CIFAR-10, torchvision: ``[cifar10/]cifar-10-batches-py/{data_batch_1..5,test_batch}``.
- CIFAR-100, torchvision: ``[cifar100/]cifar-100-python/{train,test,meta}``, fine labels (100 classes).

The torchvision pickles are read here rather than through ``torchvision.datasets`` because those
classes insist on the official MD5 sums; torchvision is used for the download only.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from .cache import cached_arrays, file_key, load_cached
from .paths import find_in_root

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_CIFAR10_PICKLES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def read_cifar10(root: Path, split: str, limit: int | None, *, cache_dir: Path):
    """CIFAR-10 ``split`` ("train" or "test"), first ``limit`` rows, from Parquet or torchvision pickles."""
    found = find_in_root(
        root, "cifar10", [f"cifar10/{split}.parquet", "cifar10/cifar-10-batches-py", "cifar-10-batches-py"]
    )
    if found.suffix == ".parquet":
        images, labels = read_image_parquet(found, limit, cache_dir=cache_dir)
    else:
        images, labels = _read_pickles([found / f for f in _CIFAR10_PICKLES[split]], "labels", limit)
    return images, labels, CIFAR10_CLASSES


def read_cifar100(root: Path, split: str, limit: int | None):
    """CIFAR-100 ``split`` ("train" or "test"), first ``limit`` rows, fine labels, from the pickles."""
    folder = find_in_root(root, "cifar100", ["cifar100/cifar-100-python", "cifar-100-python"])
    images, labels = _read_pickles([folder / split], "fine_labels", limit)
    with open(folder / "meta", "rb") as f:
        classes = tuple(pickle.load(f, encoding="latin1")["fine_label_names"])
    return images, labels, classes


def download_cifar10(root: Path) -> None:
    """Download CIFAR-10 (both splits) into the torchvision root ``root``."""
    from torchvision.datasets import CIFAR10

    CIFAR10(str(root), train=True, download=True)


def download_cifar100(root: Path) -> None:
    """Download CIFAR-100 (both splits) into the torchvision root ``root``."""
    from torchvision.datasets import CIFAR100

    CIFAR100(str(root), train=True, download=True)


def read_image_parquet(path: Path, limit: int | None, *, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode the first ``limit`` rows (all if None) of a Hugging Face image-classification Parquet file.

    A cached full decode is sliced when there is one, so a CPU-scale run after a full one is instant.
    """
    full = {"source": file_key(path), "rows": None}
    if limit is not None:
        hit = load_cached(cache_dir, "parquet", full)
        if hit is not None:
            # copies, so the full arrays can be freed
            return hit[0][:limit].copy(), hit[1][:limit].copy()
    key = full if limit is None else {**full, "rows": limit}
    return cached_arrays(cache_dir, "parquet", key, lambda: _decode_parquet(path, limit))


def _decode_parquet(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    image_column = next((c for c in ("img", "image") if c in schema.names), None)
    if image_column is None or "label" not in schema.names:
        raise ValueError(
            f"{path} is not an image-classification Parquet file: expected columns 'img' (or 'image') "
            f"and 'label', got {schema.names}"
        )
    table = pq.read_table(path, columns=[image_column, "label"])
    if limit is not None:
        table = table.slice(0, limit)
    encoded = table.column(image_column).combine_chunks().field("bytes").to_pylist()
    if not encoded:
        raise ValueError(f"{path} has no rows")
    images = [_decode_rgb(b) for b in encoded]
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"{path}: images must all have one size, got {sorted(shapes)[:3]}")
    labels = np.array(table.column("label").to_numpy(), dtype=np.int64)
    # (N, H, W, C) -> (N, C, H, W)
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)), labels


def _decode_rgb(encoded: bytes) -> np.ndarray:
    # PIL rather than torchvision.io, whose decoders are deprecated since torchvision 0.29.
    with Image.open(io.BytesIO(encoded)) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _read_pickles(paths: list[Path], label_key: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    data, labels = [], []
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"missing CIFAR file {str(path)!r}")
        with open(path, "rb") as f:
            # torchvision reads these Python-2 pickles the same way; they hold only arrays and lists.
            entry = pickle.load(f, encoding="latin1")
        data.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.extend(entry[label_key])
        if limit is not None and len(labels) >= limit:
            break
    images = np.concatenate(data).reshape(-1, 3, 32, 32)[:limit]
    return images, np.asarray(labels, dtype=np.int64)[:limit]
