"""Fashion-MNIST from the original IDX files, parsed with numpy, and its download through torchvision.

IDX (LeCun's MNIST format): a big-endian header, two zero bytes, a type code (0x08 = unsigned byte),
the number of dimensions d, then d 4-byte sizes, then the row-major data. Images are (N, 28, 28)
with a 16-byte header, labels (N,) with an 8-byte header. Files may be gzipped (``.gz``) or not.
Looked for under a data root as ``fashion_mnist/<file>`` (the original release, the project's
layout) or ``[fashion_mnist/]FashionMNIST/raw/<file>`` (where torchvision downloads them).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .paths import find_in_root

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path, limit: int | None = None) -> np.ndarray:
    """The uint8 array in an IDX file (gzipped if its name ends in .gz), first ``limit`` rows if given."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        magic = f.read(4)
        if len(magic) != 4 or magic[:2] != b"\0\0" or magic[2] != 0x08 or magic[3] == 0:
            raise ValueError(
                f"{path} is not an unsigned-byte IDX file: expected a header 00 00 08 <ndim>, "
                f"got {magic.hex(' ')}"
            )
        shape = list(np.frombuffer(f.read(4 * magic[3]), dtype=">u4").astype(int))
        if len(shape) != magic[3]:
            raise ValueError(f"{path} ends inside its IDX header")
        if limit is not None:
            shape[0] = min(shape[0], limit)
        count = int(np.prod(shape))
        data = f.read(count)
    if len(data) != count:
        raise ValueError(f"{path} is truncated: its header promises {count} bytes of data, found {len(data)}")
    # bytearray: a writable buffer, so torch.from_numpy can share it without a warning.
    return np.frombuffer(bytearray(data), dtype=np.uint8).reshape(shape)


def read_fashion_mnist(root: Path, split: str, limit: int | None):
    """Fashion-MNIST ``split`` ("train" or "test"): uint8 (N, 1, 28, 28), int64 (N,), class names."""
    image_file, label_file = _FILES[split]
    folders = ("fashion_mnist/", "fashion_mnist/FashionMNIST/raw/", "FashionMNIST/raw/")
    places = [f"{folder}{image_file}{gz}" for folder in folders for gz in (".gz", "")]
    images_path = find_in_root(root, "fashion_mnist", places)
    # The labels sit next to the images, in the same compression.
    labels_path = images_path.with_name(images_path.name.replace(image_file, label_file))
    images = read_idx(images_path, limit)
    labels = read_idx(labels_path, limit).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{images_path} and {labels_path} must hold (N, H, W) images and (N,) labels, "
            f"got shapes {images.shape} and {labels.shape}"
        )
    return images[:, None], labels, FASHION_MNIST_CLASSES


def download_fashion_mnist(root: Path) -> None:
    """Download Fashion-MNIST (both splits) into the torchvision root ``root``."""
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(root), train=True, download=True)
