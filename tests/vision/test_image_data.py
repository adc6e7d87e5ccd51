"""Image data: the committed fixtures, every dataset's on-disk format, transforms and the reproducible loader.

The torchvision-format folders (CIFAR-100, SVHN, Stanford Cars, FGVC-Aircraft) are built in tmp_path
from real CIFAR-10 fixture pixels, and checked against torchvision's own readers where it has one.
"""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision
from PIL import Image

import metaloss.vision.data.cifar as cifar_module
from metaloss.core import epoch_batches
from metaloss.vision.data import (
    ImageDataset,
    data_root,
    eval_transform,
    fixture_root,
    load_image_splits,
    make_loader,
    stratified_split,
    train_transform,
)

SHARED_DATA = Path(os.environ.get("METALOSS_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def cifar(cache):
    return load_image_splits("cifar10", fixture_root(), cache_dir=cache)


@pytest.fixture(scope="module")
def pixels(cifar):
    """Real (uint8 images, labels) to fill the tiny torchvision-format folders with."""
    return cifar.test.images[:24], cifar.test.labels[:24]


# ---------------------------------------------------------------- data root


def test_data_root_value_env_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("METALOSS_DATA", raising=False)
    assert data_root() is None
    assert data_root(tmp_path) == tmp_path and data_root(str(tmp_path)) == tmp_path
    monkeypatch.setenv("METALOSS_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root(fixture_root()) == fixture_root()  # the config value wins over the variable
    monkeypatch.setenv("METALOSS_DATA", "")
    assert data_root() is None  # an empty variable counts as unset
    monkeypatch.setenv("METALOSS_DATA", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"\$METALOSS_DATA .*nope' does not exist"):
        data_root()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data_root(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        data_root(tmp_path / "file")
    with pytest.raises(ValueError, match="empty string"):
        data_root("")
    with pytest.raises(TypeError, match="got int"):
        data_root(3)


# ---------------------------------------------------------------- CIFAR-10 from the committed fixture


def test_cifar10_fixture_shapes_split_and_stats(cifar):
    assert (len(cifar.train), len(cifar.val), len(cifar.test)) == (1800, 200, 1000)
    assert cifar.num_classes == 10 and cifar.classes[0] == "airplane" and cifar.classes[9] == "truck"
    for ds in (cifar.train, cifar.val, cifar.test):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (3, 32, 32)
        assert ds.labels.dtype == torch.int64 and 0 <= ds.labels.min() and ds.labels.max() <= 9
    image, label = cifar.val[0]
    assert image.dtype == torch.float32 and image.shape == (3, 32, 32) and isinstance(label, int)
    train, val = set(cifar.train_indices.tolist()), set(cifar.val_indices.tolist())
    assert not train & val and train | val == set(range(2000))
    # stratified: every class's share of the validation set is within one example of 10%
    per_class = torch.bincount(torch.cat([cifar.train.labels, cifar.val.labels]), minlength=10)
    assert (torch.bincount(cifar.val.labels, minlength=10) - per_class * 0.1).abs().max() < 1
    # the usual CIFAR-10 statistics, from 1800 real images
    assert np.allclose(cifar.mean, (0.491, 0.482, 0.447), atol=0.02)
    assert np.allclose(cifar.std, (0.247, 0.243, 0.261), atol=0.02)
    # a normalised validation image is (pixels / 255 - mean) / std
    expected = (cifar.val.images[0].double() / 255 - torch.tensor(cifar.mean)[:, None, None]) / torch.tensor(
        cifar.std
    )[:, None, None]
    assert torch.allclose(image.double(), expected, atol=1e-5)


def test_cifar10_limits_val_size_and_seeds(cache):
    small = load_image_splits("cifar10", fixture_root(), train_limit=500, test_limit=100, cache_dir=cache)
    assert (len(small.train), len(small.val), len(small.test)) == (450, 50, 100)
    assert int(torch.cat([small.train_indices, small.val_indices]).max()) == 499  # the first 500 rows
    sized = load_image_splits("cifar10", fixture_root(), val_size=300, train_limit=1000, cache_dir=cache)
    assert (len(sized.train), len(sized.val)) == (700, 300)
    limits = {"train_limit": 500, "test_limit": 100, "cache_dir": cache}
    again = load_image_splits("cifar10", fixture_root(), **limits)
    other = load_image_splits("cifar10", fixture_root(), seed=1, **limits)
    assert torch.equal(small.val_indices, again.val_indices)
    assert torch.equal(small.train.images, again.train.images)
    assert not torch.equal(small.val_indices, other.val_indices)
    # the first rows are the same images whatever the limit
    full = load_image_splits("cifar10", fixture_root(), cache_dir=cache)
    assert torch.equal(small.test.images, full.test.images[:100])


def test_decoded_images_are_cached_and_refreshed(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "cifar10").mkdir(parents=True)
    for split in ("train", "test"):
        name = Path("cifar10") / f"{split}.parquet"
        (root / name).write_bytes((fixture_root() / name).read_bytes())
    first = load_image_splits("cifar10", root, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npz"))) == 2

    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(cifar_module, "_decode_parquet", no_decoding)
    second = load_image_splits("cifar10", root, cache_dir=tmp_path / "cache")
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.labels, second.test.labels)
    # a limited load slices the full entry
    limited = load_image_splits("cifar10", root, train_limit=100, cache_dir=tmp_path / "cache")
    assert torch.equal(limited.test.images, first.test.images)
    os.utime(root / "cifar10" / "test.parquet", ns=(1, 1))  # a changed source misses the cache
    with pytest.raises(AssertionError, match="decoded again"):
        load_image_splits("cifar10", root, cache_dir=tmp_path / "cache")


def test_full_cifar10_from_shared_data(tmp_path):
    if not (SHARED_DATA / "cifar10" / "train.parquet").exists():
        pytest.skip(f"no full CIFAR-10 under {SHARED_DATA}")
    splits = load_image_splits("cifar10", SHARED_DATA, cache_dir=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (45000, 5000, 10000)
    assert torch.equal(torch.bincount(splits.val.labels), torch.full((10,), 500))


# ---------------------------------------------------------------- Fashion-MNIST (IDX)


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    data = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("layout", ["fashion_mnist/{}.gz", "fashion_mnist/FashionMNIST/raw/{}"])
def test_fashion_mnist_from_idx(tmp_path, layout, pixels):
    grey = pixels[0][:, 0, 2:30, 2:30].numpy()  # 24 real 28x28 grey images
    labels = pixels[1].numpy().astype(np.uint8)
    for prefix, n in (("train", 20), ("t10k", 4)):
        for kind, array in (("images-idx3", grey[:n]), ("labels-idx1", labels[:n])):
            _write_idx(tmp_path / layout.format(f"{prefix}-{kind}-ubyte"), array, layout.endswith(".gz"))
    splits = load_image_splits("fashion_mnist", tmp_path, val_size=5, cache_dir=tmp_path / "cache")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 4)
    assert splits.train.images.shape[1:] == (1, 28, 28) and splits.num_classes == 10
    assert torch.equal(splits.test.images[:, 0], torch.from_numpy(grey[:4]))
    assert torch.equal(splits.val.labels, torch.from_numpy(labels[splits.val_indices.numpy()]).long())
    assert splits.train[0][0].shape == (1, 28, 28)


def test_fashion_mnist_fixture(cache):
    splits = load_image_splits("fashion_mnist", fixture_root(), cache_dir=cache)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (900, 100, 500)
    assert len(splits.mean) == 1 and abs(splits.mean[0] - 0.286) < 0.02  # Fashion-MNIST's usual mean
    assert torch.bincount(splits.test.labels, minlength=10).min() > 0


def test_bad_idx_files(tmp_path):
    base = tmp_path / "fashion_mnist"
    base.mkdir()
    (base / "train-images-idx3-ubyte").write_bytes(b"\x08\x03\x00\x00" + bytes(100))
    (base / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x01")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        load_image_splits("fashion_mnist", tmp_path, cache_dir=tmp_path)
    _write_idx(base / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), False)
    (base / "train-images-idx3-ubyte").write_bytes((base / "train-images-idx3-ubyte").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_image_splits("fashion_mnist", tmp_path, cache_dir=tmp_path)


# ---------------------------------------------------------------- torchvision on-disk formats


def _write_cifar100(root: Path, pixels) -> None:
    images, labels = pixels
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, part in (("train", slice(0, 16)), ("test", slice(16, 24))):
        entry = {"data": images[part].reshape(-1, 3072).numpy(), "fine_labels": (labels[part] * 7).tolist(),
                 "coarse_labels": labels[part].tolist()}
        (folder / split).write_bytes(pickle.dumps(entry))
    names = {"fine_label_names": [f"class{i}" for i in range(100)],
             "coarse_label_names": [str(i) for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(names))


def test_cifar100_torchvision_format(tmp_path, pixels, monkeypatch):
    _write_cifar100(tmp_path / "cifar100", pixels)
    splits = load_image_splits("cifar100", tmp_path, val_size=4, download=False, cache_dir=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 8) and splits.num_classes == 100
    assert torch.equal(splits.test.images, pixels[0][16:24])
    assert torch.equal(splits.test.labels, pixels[1][16:24] * 7)
    # torchvision reads the same files the same way (its MD5 check switched off for the tiny copies)
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    reference = torchvision.datasets.CIFAR100(str(tmp_path / "cifar100"), train=False)
    assert np.array_equal(reference.data, splits.test.images.permute(0, 2, 3, 1).numpy())
    assert reference.targets == splits.test.labels.tolist() and reference.classes[3] == "class3"
    # a torchvision root works as a data root too
    direct = load_image_splits("cifar100", tmp_path / "cifar100", val_size=4, download=False,
                               cache_dir=tmp_path)
    assert torch.equal(direct.test.images, splits.test.images)


def test_cifar10_torchvision_pickles(tmp_path, pixels, monkeypatch):
    images, labels = pixels
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):  # four images per file
        part = slice(4 * k, 4 * k + 4)
        entry = {"data": images[part].reshape(-1, 3072).numpy(), "labels": labels[part].tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a"] * 10}))
    splits = load_image_splits("cifar10", tmp_path, val_size=4, train_limit=18, download=False,
                               cache_dir=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (14, 4, 4)
    assert torch.equal(splits.test.images, images[20:24]) and splits.classes[1] == "automobile"
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)
    reference = torchvision.datasets.CIFAR10(str(tmp_path / "cifar10"), train=True)
    kept = torch.cat([splits.train_indices, splits.val_indices])
    assert np.array_equal(reference.data[kept.numpy()], torch.cat([splits.train.images, splits.val.images])
                          .permute(0, 2, 3, 1).numpy())


def test_online_path_downloads_once_into_the_cache(tmp_path, pixels, monkeypatch):
    monkeypatch.delenv("METALOSS_DATA", raising=False)
    calls = []

    def fake_cifar100(root, train, download):
        calls.append((Path(root), download))
        _write_cifar100(Path(root), pixels)

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", fake_cifar100)
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_image_splits("cifar100", download=False, cache_dir=tmp_path)
    assert calls == []
    splits = load_image_splits("cifar100", val_size=4, cache_dir=tmp_path)
    assert calls == [(tmp_path / "downloads" / "cifar100", True)] and len(splits.test) == 8
    load_image_splits("cifar100", val_size=4, cache_dir=tmp_path)
    assert len(calls) == 1  # already there: read, not downloaded again


def test_svhn_torchvision_format(tmp_path, pixels, monkeypatch):
    images, labels = pixels
    for split, part in (("train", slice(0, 16)), ("test", slice(16, 24))):
        y = labels[part].numpy().copy()
        y[y == 0] = 10  # SVHN stores the digit 0 as 10
        mat = {"X": images[part].permute(2, 3, 1, 0).numpy(), "y": y[:, None].astype(np.uint8)}
        (tmp_path / "svhn").mkdir(exist_ok=True)
        scipy.io.savemat(tmp_path / "svhn" / f"{split}_32x32.mat", mat)
    splits = load_image_splits("svhn", tmp_path, val_fraction=0.25, test_limit=5, download=False,
                               cache_dir=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 5)
    assert torch.equal(splits.test.images, images[16:21]) and torch.equal(splits.test.labels, labels[16:21])
    assert not any(isinstance(t, torchvision.transforms.v2.RandomHorizontalFlip)
                   for t in splits.train.transform.transforms)  # mirrored digits change meaning
    monkeypatch.setattr("torchvision.datasets.svhn.check_integrity", lambda *args, **kwargs: True)
    reference = torchvision.datasets.SVHN(str(tmp_path / "svhn"), split="test")
    assert np.array_equal(reference.data[:5], splits.test.images.numpy())
    assert np.array_equal(reference.labels[:5], splits.test.labels.numpy())


def _jpegs(folder: Path, images: torch.Tensor, names: list[str]) -> None:
    """Save real images as JPEGs of different sizes and aspect ratios."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (image, name) in enumerate(zip(images, names)):
        size = (40 + 13 * i, 30 + 7 * (i % 3))
        Image.fromarray(image.permute(1, 2, 0).numpy()).resize(size).save(folder / name, quality=95)


def _annotations(names: list[str], classes: list[int]) -> np.ndarray:
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    records = np.zeros((1, len(names)), dtype=[(f, "O") for f in fields])
    for i, (name, c) in enumerate(zip(names, classes)):
        records[0, i] = (1, 1, 20, 20, c, name)
    return records


def test_stanford_cars_torchvision_format(tmp_path, pixels):
    base = tmp_path / "stanford_cars" / "stanford_cars"  # torchvision root = <data root>/stanford_cars
    images, labels = pixels
    train_names, test_names = [f"{i:05d}.jpg" for i in range(1, 17)], [f"{i:05d}.jpg" for i in range(1, 9)]
    _jpegs(base / "cars_train", images[:16], train_names)
    _jpegs(base / "cars_test", images[16:], test_names)
    (base / "devkit").mkdir()
    names = np.array([f"Car {i}" for i in range(196)], dtype=object)
    scipy.io.savemat(base / "devkit" / "cars_meta.mat", {"class_names": names[None]})
    scipy.io.savemat(base / "devkit" / "cars_train_annos.mat",
                     {"annotations": _annotations(train_names, (labels[:16] + 1).tolist())})
    scipy.io.savemat(base / "cars_test_annos_withlabels.mat",
                     {"annotations": _annotations(test_names, (labels[16:] + 1).tolist())})
    splits = load_image_splits("stanford_cars", tmp_path, val_size=4, image_size=16, download=False,
                               cache_dir=tmp_path / "cache")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 8) and splits.num_classes == 196
    assert splits.test.images.shape == (8, 3, 16, 16) and splits.classes[5] == "Car 5"
    assert torch.equal(splits.test.labels, labels[16:])  # 1-based on disk
    reference = torchvision.datasets.StanfordCars(str(tmp_path / "stanford_cars"), split="test")
    assert [t for _, t in reference._samples] == splits.test.labels.tolist()
    # squashed to 16x16, the pictures still look like the originals
    original = torch.nn.functional.interpolate(images[16:].float(), size=16, mode="area")
    assert (splits.test.images.float() - original).abs().mean() < 12
    # default size 32; the torchvision root as the data root
    default = load_image_splits("stanford_cars", tmp_path / "stanford_cars", val_size=4, download=False,
                                cache_dir=tmp_path / "cache")
    assert default.train.images.shape[2:] == (32, 32)


def test_fgvc_aircraft_torchvision_format(tmp_path, pixels):
    data = tmp_path / "fgvc_aircraft" / "fgvc-aircraft-2013b" / "data"
    images, labels = pixels
    variants = [f"Boeing 7{i}7-200" for i in range(100)]
    ids = [f"{1000000 + i}" for i in range(24)]
    _jpegs(data / "images", images, [f"{i}.jpg" for i in ids])
    (data / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    for split, part in (("trainval", slice(0, 16)), ("test", slice(16, 24))):
        lines = [f"{i} {variants[int(c) * 3]}\n" for i, c in zip(ids[part], labels[part])]
        (data / f"images_variant_{split}.txt").write_text("".join(lines))
    splits = load_image_splits("fgvc_aircraft", tmp_path, val_size=4, image_size=24, download=False,
                               cache_dir=tmp_path / "cache")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 8) and splits.num_classes == 100
    assert splits.train.images.shape[1:] == (3, 24, 24) and torch.equal(splits.test.labels, labels[16:] * 3)
    reference = torchvision.datasets.FGVCAircraft(str(tmp_path / "fgvc_aircraft"), split="test")
    assert reference._labels == splits.test.labels.tolist() and tuple(reference.classes) == splits.classes


# ---------------------------------------------------------------- transforms


def test_transforms(cifar):
    image = cifar.val.images[0].float() / 255
    train = train_transform(cifar.mean, cifar.std, 32)
    evaluate = eval_transform(cifar.mean, cifar.std)
    assert torch.equal(evaluate(image), evaluate(image))
    clean = evaluate(image)
    outputs = []
    for seed in range(8):
        torch.manual_seed(seed)
        outputs.append(train(image))
    assert all(o.shape == (3, 32, 32) for o in outputs)
    assert sum(not torch.equal(o, clean) for o in outputs) >= 6  # crops and flips move pixels
    # without padding or flip, training = evaluation
    assert torch.equal(train_transform(cifar.mean, cifar.std, 32, padding=0, flip=False)(image), clean)
    constant = torch.full((3, 4, 4), 0.5)
    out = eval_transform((0.5, 0.25, 0.0), (0.25, 0.5, 1.0))(constant)
    assert torch.allclose(out[:, 0, 0], torch.tensor([0.0, 0.5, 0.5]))
    grey = train_transform((0.3,), (0.35,), 28)(torch.rand(1, 28, 28))
    assert grey.shape == (1, 28, 28)
    with pytest.raises(ValueError, match="one value per channel"):
        eval_transform((0.5, 0.5), (0.2,))
    with pytest.raises(ValueError, match="std finite and > 0"):
        eval_transform((0.5,), (0.0,))
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        train_transform((0.5,), (0.2,), 0)


def test_image_dataset_validates():
    with pytest.raises(ValueError, match="uint8 tensor"):
        ImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="same length"):
        ImageDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))
    ds = ImageDataset(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8), torch.tensor([0, 1]))
    assert torch.equal(ds[1][0], torch.ones(1, 2, 2)) and ds[1][1] == 1
    assert ds.with_transform(lambda x: x * 2)[0][0].max() == 2 and ds.with_transform(None).images is ds.images


# ---------------------------------------------------------------- make_loader


def _epoch(dataset, **kwargs):
    return [tuple(t.clone() for t in batch) for batch in make_loader(dataset, 8, **kwargs)]


def test_loader_is_a_pure_function_of_seed_and_epoch(cifar):
    dataset = ImageDataset(cifar.train.images[:40], cifar.train.labels[:40], cifar.train.transform)
    loader = make_loader(dataset, 8, train=True, seed=1, epoch=3)
    assert isinstance(loader, torch.utils.data.DataLoader) and loader.num_workers == 2
    state = torch.get_rng_state()
    first = _epoch(dataset, train=True, seed=1, epoch=3, return_index=True)
    again = _epoch(dataset, train=True, seed=1, epoch=3, return_index=True)
    in_process = _epoch(dataset, train=True, seed=1, epoch=3, return_index=True, workers=0)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is untouched
    assert len(first) == 5 and all(len(batch) == 3 for batch in first)
    for a, b, c in zip(first, again, in_process):
        assert all(torch.equal(x, y) and torch.equal(x, z) for x, y, z in zip(a, b, c))
    index = torch.cat([batch[0] for batch in first])
    assert sorted(index.tolist()) == list(range(40))
    # on one process the batches are exactly core's epoch_batches
    assert [b[0].tolist() for b in first] == [b.tolist() for b in epoch_batches(40, 8, seed=1, epoch=3)]
    assert torch.equal(torch.cat([batch[2] for batch in first]), dataset.labels[index])  # indices match items
    next_epoch = _epoch(dataset, train=True, seed=1, epoch=4, return_index=True)
    assert not torch.equal(index, torch.cat([batch[0] for batch in next_epoch]))
    # the same example, augmented differently in another epoch
    pixels = {int(i): x for batch in first for i, x in zip(batch[0], batch[1])}
    later = {int(i): x for batch in next_epoch for i, x in zip(batch[0], batch[1])}
    assert sum(not torch.equal(pixels[i], later[i]) for i in range(40)) > 20


def test_loader_shards_eval_order_and_subsets(cifar):
    dataset = cifar.val.with_transform(None)
    shards = [torch.cat([b[0] for b in _epoch(dataset, train=True, seed=0, epoch=0, rank=r, world_size=3,
                                                 workers=0, return_index=True)]) for r in range(3)]
    assert [len(s) for s in shards] == [66, 66, 66]  # equal steps on every rank
    assert len(set(torch.cat(shards).tolist())) == 198  # disjoint
    plain = _epoch(dataset, train=False, seed=0, epoch=0, workers=0)
    assert len(plain[0]) == 2  # no index unless asked for
    assert torch.equal(torch.cat([b[1] for b in plain]), dataset.labels)  # dataset order
    halves = [torch.cat([b[0] for b in _epoch(dataset, train=False, seed=0, epoch=0, rank=r, world_size=2,
                                                 workers=0, return_index=True)]) for r in range(2)]
    assert sorted(torch.cat(halves).tolist()) == list(range(200))  # evaluation sees every example once
    subset = _epoch(dataset, train=True, seed=0, epoch=0, indices=[5, 9, 11, 40, 41], workers=0,
                    return_index=True)
    assert sorted(subset[0][0].tolist()) == [5, 9, 11, 40, 41]
    dropped = _epoch(dataset, train=True, seed=0, epoch=0, workers=0, drop_last=True)
    assert len(dropped) == 25 and all(len(b[0]) == 8 for b in dropped)


def test_loader_bad_inputs(cifar):
    with pytest.raises(ValueError, match="rank must be < world_size=2, got 2"):
        make_loader(cifar.val, 8, train=True, seed=0, epoch=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        make_loader(cifar.val, 0, train=True, seed=0, epoch=0)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 199\]"):
        make_loader(cifar.val, 8, train=True, seed=0, epoch=0, indices=[3, 200])
    with pytest.raises(TypeError, match="train must be a bool"):
        make_loader(cifar.val, 8, train=1, seed=0, epoch=0)
    with pytest.raises(TypeError, match="map-style dataset"):
        make_loader(iter([]), 8, train=True, seed=0, epoch=0)


# ---------------------------------------------------------------- bad input


def test_loader_errors_are_clear(tmp_path, cache):
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar11'; expected one of \['cifar10', 'cifar1"):
        load_image_splits("cifar11", fixture_root())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_splits("cifar10", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"no cifar100 data under .*cifar-100-python"):
        load_image_splits("cifar100", fixture_root(), cache_dir=cache)
    with pytest.raises(ValueError, match="between 1 and 499 of the 500 cifar10 training images, got 500"):
        load_image_splits("cifar10", fixture_root(), train_limit=500, val_size=500, cache_dir=cache)
    with pytest.raises(ValueError, match="val_fraction must be a number strictly between 0 and 1, got 1.5"):
        load_image_splits("cifar10", fixture_root(), val_fraction=1.5)
    with pytest.raises(ValueError, match="train_limit=5000 but cifar10 has only 2000 train images"):
        load_image_splits("cifar10", fixture_root(), train_limit=5000, cache_dir=cache)
    with pytest.raises(ValueError, match="image_size must be None or 32, got 64"):
        load_image_splits("cifar10", fixture_root(), image_size=64)
    with pytest.raises(ValueError, match="train_limit must be an int >= 2 or None, got 1"):
        load_image_splits("cifar10", fixture_root(), train_limit=1)
    with pytest.raises(ValueError, match="val_size must be an int"):
        stratified_split(torch.tensor([0, 1]), 3, seed=0)


def test_features_are_the_normalised_unaugmented_images():
    images = torch.randint(0, 256, (3, 2, 4, 4), dtype=torch.uint8)
    dataset = ImageDataset(images, torch.tensor([0, 1, 0]))
    features = dataset.features((0.5, 0.25), (0.5, 2.0))
    assert features.shape == (3, 2, 4, 4)
    torch.testing.assert_close(features[:, 1], (images[:, 1].float() / 255 - 0.25) / 2.0)
    with pytest.raises(ValueError, match="one value per channel"):
        dataset.features((0.5,), (0.5,))
