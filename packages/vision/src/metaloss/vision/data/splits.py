"""``load_image_splits``: train / validation / test datasets for the image benchmarks, offline or online.

Where the data comes from: ``root`` (a recipe's config value), else ``$METALOSS_DATA``, else the
online path, where torchvision downloads into ``<cache_dir>/downloads/<name>`` (once; later calls
read what is there). With a data root nothing is downloaded: a dataset missing from it is an error.

No benchmark here has an official validation split the loader uses, so the validation set is always
carved out of the training split: a seeded, class-stratified 90/10 split by default. ``train_limit``
and ``test_limit`` keep the first N rows of a split (before the validation split), the CPU-scale
setting; the project's Parquet CIFAR-10 is shuffled, so its first rows are a fair random subset.
Normalisation statistics (``mean``, ``std``) are computed on the final training split only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from metaloss.core.checks import check_int

from .cifar import download_cifar10, download_cifar100, read_cifar10, read_cifar100
from .fashion_mnist import download_fashion_mnist, read_fashion_mnist
from .fine_grained import (
    download_fgvc_aircraft,
    download_stanford_cars,
    read_fgvc_aircraft,
    read_stanford_cars,
)
from .images import ImageDataset
from .paths import data_root, default_cache_dir
from .svhn import download_svhn, read_svhn
from .transforms import eval_transform, train_transform

# Images of every size (Stanford Cars, FGVC-Aircraft) are resized to this by default: the input size
# of the CIFAR-style models this project trains on CPU.
DEFAULT_IMAGE_SIZE = 32


@dataclass(frozen=True)
class _Source:
    # read(root, split, limit, image_size, cache_dir) -> (uint8 images NCHW, int64 labels, class names)
    read: Callable
    download: Callable[[Path], None]
    native_size: int | None  # None: images of every size, resized to image_size
    flip: bool  # whether a horizontal mirror keeps the label


DATASETS: dict[str, _Source] = {
    "cifar10": _Source(
        lambda r, s, n, size, cache: read_cifar10(r, s, n, cache_dir=cache), download_cifar10, 32, True
    ),
    "cifar100": _Source(lambda r, s, n, size, cache: read_cifar100(r, s, n), download_cifar100, 32, True),
    "svhn": _Source(lambda r, s, n, size, cache: read_svhn(r, s, n), download_svhn, 32, False),
    "fashion_mnist": _Source(
        lambda r, s, n, size, cache: read_fashion_mnist(r, s, n), download_fashion_mnist, 28, True
    ),
    "stanford_cars": _Source(
        lambda r, s, n, size, cache: read_stanford_cars(r, s, n, image_size=size, cache_dir=cache),
        download_stanford_cars, None, True,
    ),
    "fgvc_aircraft": _Source(
        lambda r, s, n, size, cache: read_fgvc_aircraft(r, s, n, image_size=size, cache_dir=cache),
        download_fgvc_aircraft, None, True,
    ),
}


@dataclass(frozen=True)
class ImageSplits:
    """The three datasets of one benchmark and what a recipe needs to know about them.

    ``train`` carries the training transform (augmentation + normalisation), ``val`` and ``test`` the
    evaluation one; ``train.with_transform(eval_transform(mean, std))`` gives un-augmented training
    images. ``train_indices`` / ``val_indices`` are the rows of the (limited) source training split
    that went to each, in increasing order; ``train[i]`` is source row ``train_indices[i]``.
    """

    name: str
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    num_classes: int
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_indices: torch.Tensor
    val_indices: torch.Tensor


def load_image_splits(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    val_size: int | None = None,
    val_fraction: float = 0.1,
    train_limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> ImageSplits:
    """Load ``name`` (one of ``DATASETS``) and split its training data into train and validation.

    root: data root (see ``data_root``); None means ``$METALOSS_DATA``, then the online path.
    val_size: validation examples (overrides ``val_fraction``, the share of the training rows).
    train_limit / test_limit: keep only the first N rows of each split (before the validation split).
    seed: seeds the stratified validation split.
    image_size: side of the square images for Stanford Cars / FGVC-Aircraft (default 32); the other
        datasets have one native size (32, Fashion-MNIST 28) and accept only that.
    download: on the online path, whether torchvision may download missing files.
    cache_dir: decoded-image cache and download folder (default ``~/.cache/metaloss``).
    """
    source = _source(name)
    check_int("seed", seed)
    _check_int("val_size", val_size, 1)
    _check_int("train_limit", train_limit, 2)
    _check_int("test_limit", test_limit, 1)
    _check_int("image_size", image_size, 1)
    is_number = isinstance(val_fraction, float | int) and not isinstance(val_fraction, bool)
    if not is_number or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be a number strictly between 0 and 1, got {val_fraction!r}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")
    if source.native_size is not None and image_size not in (None, source.native_size):
        raise ValueError(
            f"{name} images are {source.native_size}x{source.native_size}; image_size must be None or "
            f"{source.native_size}, got {image_size} (only stanford_cars and fgvc_aircraft are resized)"
        )
    size = image_size or source.native_size or DEFAULT_IMAGE_SIZE
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    base = data_root(root)
    train_x, train_y, classes = _read(source, name, base, "train", train_limit, size, cache, download)
    test_x, test_y, _ = _read(source, name, base, "test", test_limit, size, cache, download)
    for split, limit, labels in (("train", train_limit, train_y), ("test", test_limit, test_y)):
        if limit is not None and len(labels) < limit:
            raise ValueError(f"{split}_limit={limit} but {name} has only {len(labels)} {split} images")
    for split, labels in (("train", train_y), ("test", test_y)):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"{name} {split} labels must lie in [0, {len(classes) - 1}], "
                f"got [{labels.min()}, {labels.max()}]"
            )

    labels = torch.from_numpy(train_y)
    n = len(labels)
    count = val_size if val_size is not None else round(val_fraction * n)
    if not 1 <= count < n:
        given = f"val_size={val_size}" if val_size is not None else f"val_fraction={val_fraction}"
        raise ValueError(
            f"the validation split must hold between 1 and {n - 1} of the {n} {name} training images, "
            f"got {count} ({given})"
        )
    train_idx, val_idx = stratified_split(labels, count, seed=seed)
    images = torch.from_numpy(train_x)
    mean, std = channel_stats(images[train_idx])
    return ImageSplits(
        name=name,
        train=ImageDataset(
            images[train_idx], labels[train_idx], train_transform(mean, std, size, flip=source.flip)
        ),
        val=ImageDataset(images[val_idx], labels[val_idx], eval_transform(mean, std)),
        test=ImageDataset(torch.from_numpy(test_x), torch.from_numpy(test_y), eval_transform(mean, std)),
        num_classes=len(classes),
        classes=tuple(classes),
        mean=mean,
        std=std,
        train_indices=train_idx,
        val_indices=val_idx,
    )


def load_train_rows(
    name: str,
    start: int,
    stop: int,
    root: str | os.PathLike | None = None,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    download: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> ImageDataset:
    """Rows ``start:stop`` of ``name``'s source training split, un-augmented (``eval_transform(mean, std)``).

    For data beyond a ``load_image_splits(train_limit=start)`` call, e.g. the unlabeled pool
    of distillation with unlabeled examples; the normalisation comes from those splits.
    """
    source = _source(name)
    check_int("start", start, minimum=0)
    check_int("stop", stop, minimum=start + 1)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    size = source.native_size or DEFAULT_IMAGE_SIZE
    images, labels, _ = _read(source, name, data_root(root), "train", stop, size, cache, download)
    if len(labels) < stop:
        raise ValueError(f"rows {start}:{stop} asked for, but {name} has only {len(labels)} training images")
    return ImageDataset(torch.from_numpy(images[start:stop]).contiguous(),
                        torch.from_numpy(labels[start:stop]).contiguous(), eval_transform(mean, std))


def stratified_split(labels: torch.Tensor, val_size: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of ``range(len(labels))`` into (train, validation) index tensors, sorted.

    Each class gives the validation set its share of ``val_size`` (largest remainders round the
    shares to integers), so class proportions match the source's up to one example per class.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.dtype != torch.int64:
        raise ValueError(f"labels must be a 1-D int64 tensor, got {labels!r:.80}")
    n = len(labels)
    check_int("val_size", val_size, minimum=0, maximum=n)
    classes, counts = labels.unique(return_counts=True)
    # Integer arithmetic: exact shares, and the remainders decide who gets the leftover examples.
    shares, remainders = (counts * val_size) // n, (counts * val_size) % n
    leftover = val_size - int(shares.sum())
    shares[torch.argsort(remainders, descending=True, stable=True)[:leftover]] += 1
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c, share in zip(classes.tolist(), shares.tolist()):
        members = (labels == c).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:share]])
    in_val = torch.zeros(n, dtype=torch.bool)
    in_val[torch.cat(chosen)] = True
    return (~in_val).nonzero().flatten(), in_val.nonzero().flatten()


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W), on the [0, 1] scale."""
    is_images = isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and images.dim() == 4
    if not is_images or not images.numel():
        raise ValueError(f"images must be a non-empty uint8 tensor (N, C, H, W), got {images!r:.80}")
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    # Chunks keep the float64 copy small (the full CIFAR-10 set would need 1.1 GB at once).
    for chunk in images.split(1024):
        chunk = chunk.double()
        total += chunk.sum((0, 2, 3))
        squares += chunk.square().sum((0, 2, 3))
    count = images.numel() / images.shape[1]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())


def _read(source: _Source, name: str, base: Path | None, split, limit, size, cache: Path, download: bool):
    if base is not None:
        return source.read(base, split, limit, size, cache)
    downloads = cache / "downloads"
    try:
        return source.read(downloads, split, limit, size, cache)
    except FileNotFoundError as missing:
        if not download:
            raise FileNotFoundError(
                f"{missing}; no data root was given (root=None and $METALOSS_DATA unset) and download=False: "
                "pass a data root, set METALOSS_DATA, or allow the download"
            ) from missing
    source.download(downloads / name)
    return source.read(downloads, split, limit, size, cache)


def _source(name) -> _Source:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def _check_int(name: str, value, low: int) -> None:
    """``check_int`` for an optional argument: None passes, and the message says it would."""
    if value is None:
        return
    try:
        check_int(name, value, minimum=low)
    except ValueError as err:  # InputTypeError stays an InputTypeError
        raise type(err)(str(err).replace(", got", " or None, got")) from None
