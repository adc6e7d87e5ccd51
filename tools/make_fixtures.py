"""Cut the committed image fixtures from a full data root (e.g. the folder ``$METALOSS_DATA`` names).

    python tools/make_fixtures.py /path/to/data [--out DIR]

Writes, under ``--out`` (default: metaloss-vision's ``data/fixtures`` folder), the first rows of
``cifar10/{train,test}.parquet`` (same schema, same encoded bytes) and of the four Fashion-MNIST IDX
files (same format, header counts rewritten, gzipped with a zero timestamp so reruns are byte-identical).
The source rows are shuffled with a fixed seed by their publisher, so the first rows are a fair
random subset.
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def cut_parquet(source: Path, target: Path, rows: int) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    if table.num_rows < rows:
        raise SystemExit(f"{source} has {table.num_rows} rows, fewer than the {rows} asked for")
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.slice(0, rows), target)


def cut_idx(source: Path, target: Path, rows: int) -> None:
    with gzip.open(source, "rb") as f:
        magic = f.read(4)
        if magic[:3] != b"\0\0\x08":
            raise SystemExit(f"{source} is not an unsigned-byte IDX file (header {magic.hex(' ')})")
        dims = list(struct.unpack(f">{magic[3]}I", f.read(4 * magic[3])))
        if dims[0] < rows:
            raise SystemExit(f"{source} has {dims[0]} rows, fewer than the {rows} asked for")
        row_bytes = 1
        for d in dims[1:]:
            row_bytes *= d
        data = f.read(rows * row_bytes)
    dims[0] = rows
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.compress(magic + struct.pack(f">{len(dims)}I", *dims) + data, mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="data root holding cifar10/ and fashion_mnist/")
    parser.add_argument("--out", type=Path, default=None, help="fixture folder (default: the package's)")
    parser.add_argument("--cifar-train", type=int, default=2000)
    parser.add_argument("--cifar-test", type=int, default=1000)
    parser.add_argument("--fmnist-train", type=int, default=1000)
    parser.add_argument("--fmnist-test", type=int, default=500)
    args = parser.parse_args()
    if args.out is None:
        from metaloss.vision.data import fixture_root

        args.out = fixture_root()
    if not args.source.is_dir():
        raise SystemExit(f"source {str(args.source)!r} is not a directory")

    for split, rows in (("train", args.cifar_train), ("test", args.cifar_test)):
        name = Path("cifar10") / f"{split}.parquet"
        cut_parquet(args.source / name, args.out / name, rows)
    for split, rows in (("train", args.fmnist_train), ("test", args.fmnist_test)):
        for name in FMNIST_FILES[split]:
            cut_idx(args.source / "fashion_mnist" / name, args.out / "fashion_mnist" / name, rows)
    for path in sorted(args.out.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>10,d}  {path.relative_to(args.out)}")


if __name__ == "__main__":
    main()
