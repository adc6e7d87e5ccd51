"""Cut metaloss-detection-seg's committed COCO128 fixture from a full data root.

    python tools/make_detection_fixtures.py /path/to/data [--out DIR]

``/path/to/data`` holds ``coco128/`` (the folder ``$METALOSS_DATA`` names). Writes ``<out>/coco128/``
(default ``<out>``: the package's ``data/fixtures``), laid out like the source, replacing what is
there:

- in name order, the first ``--train`` train2017 and ``--val`` val2017 images that have both a
  label file and a mask and whose three files together take at most ``--max-item-bytes`` (the cap
  keeps the fixture small; it skips the largest photos, not a kind of scene);
- one train2017 background image without a label file (``--background``), with its mask if it has one;
- both classes.yaml files.

Every file is copied byte for byte, so reruns give identical output.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SPLITS = ("train2017", "val2017")


def item_files(coco: Path, split: str, stem: str) -> dict[str, Path]:
    """The image, label and mask paths of one image (whether they exist or not)."""
    return {
        "image": coco / "images" / split / f"{stem}.jpg",
        "labels": coco / "detection" / "labels" / split / f"{stem}.txt",
        "mask": coco / "segmentation" / "masks" / split / f"{stem}.png",
    }


def pick(coco: Path, split: str, count: int, max_bytes: int) -> list[str]:
    """The stems of the first ``count`` images of ``split`` with a label file and a mask, within the cap."""
    chosen = []
    for image in sorted((coco / "images" / split).glob("*.jpg")):
        files = item_files(coco, split, image.stem)
        complete = all(p.is_file() for p in files.values())
        if complete and sum(p.stat().st_size for p in files.values()) <= max_bytes:
            chosen.append(image.stem)
            if len(chosen) == count:
                return chosen
    raise SystemExit(f"only {len(chosen)} {split} images qualify, fewer than the {count} asked for")


def copy(source: Path, coco: Path, target: Path) -> None:
    destination = target / source.relative_to(coco)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="data root holding coco128/")
    parser.add_argument("--out", type=Path, default=None, help="fixture data root (default: the package's)")
    parser.add_argument("--train", type=int, default=8)
    parser.add_argument("--val", type=int, default=4)
    parser.add_argument("--max-item-bytes", type=int, default=160_000)
    parser.add_argument("--background", default="000000000250", help="a train2017 image with no label file")
    args = parser.parse_args()
    if args.out is None:
        from metaloss.detection_seg.data import fixture_root

        args.out = fixture_root()
    coco = args.source / "coco128"
    if not coco.is_dir():
        raise SystemExit(f"{str(coco)!r} is not a directory")

    background = item_files(coco, "train2017", args.background)
    if not background["image"].is_file() or background["labels"].exists():
        raise SystemExit(f"{args.background} must be a train2017 image without a label file")

    target = args.out / "coco128"
    if target.exists():
        shutil.rmtree(target)  # a rerun must not keep images a changed selection dropped
    for name in ("detection/classes.yaml", "segmentation/classes.yaml"):
        copy(coco / name, coco, target)
    for split, count in zip(SPLITS, (args.train, args.val)):
        for stem in pick(coco, split, count, args.max_item_bytes):
            for path in item_files(coco, split, stem).values():
                copy(path, coco, target)
    for path in background.values():
        if path.is_file():
            copy(path, coco, target)

    total = 0
    for path in sorted(target.rglob("*")):
        if path.is_file():
            total += path.stat().st_size
            print(f"{path.stat().st_size:>10,d}  {path.relative_to(args.out)}")
    print(f"{total:>10,d}  in all")


if __name__ == "__main__":
    main()
