"""A disk cache of decoded images, so JPEG-backed datasets are decoded once per source file.

An entry is an uncompressed ``.npz`` (uint8 images, int64 labels) named by a hash of its key:
the source files' resolved paths, sizes and modification times plus whatever else shapes the result
(row limit, image size). A changed source file therefore misses the cache instead of serving stale
pixels. Entries are written atomically (``atomic_write``), so processes sharing a cache (several
ranks decoding at once) never read a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metaloss.core.harness import atomic_write

# Bump when the decoding changes, so old entries are not reused.
_FORMAT = 1


def file_key(path: Path) -> dict:
    """The part of a cache key that identifies one source file (or folder) as it is now."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def load_cached(cache_dir: Path, tag: str, key: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ``(images, labels)`` for ``key``, or None when there is no entry."""
    path = _entry_path(cache_dir, tag, key)
    if not path.exists():
        return None
    with np.load(path) as entry:
        return entry["images"], entry["labels"]


def cached_arrays(
    cache_dir: Path, tag: str, key: dict, compute: Callable[[], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """``compute()``'s ``(images, labels)``, from ``cache_dir/decoded`` when an entry for ``key`` exists."""
    hit = load_cached(cache_dir, tag, key)
    if hit is not None:
        return hit
    images, labels = compute()
    atomic_write(_entry_path(cache_dir, tag, key), lambda tmp: _save(tmp, images, labels))
    return images, labels


def _save(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a bare path
        np.savez(f, images=images, labels=labels)


def _entry_path(cache_dir: Path, tag: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps({"format": _FORMAT, **key}, sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / "decoded" / f"{tag}-{digest[:20]}.npz"
