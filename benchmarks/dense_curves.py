"""Per-unit facts from the epoch rows of a detection or segmentation run folder (issue 16's RESULTS text).

For each (method, seed) of ``<run>/metrics.jsonl`` it prints the unit's seconds (the span of its rows'
``time``), the largest training loss from epoch ``--from-epoch`` on, and the last row's AMAL part
weights (``weight_*``) where the method logs them. Then, per seed, each other method against
``--reference`` on the selection metric over epochs ``--from-epoch`` to the last: the epochs where it is
ahead, both medians, and the epochs below ``--low``. Selection and training data only: the test
metric is not read.

    python benchmarks/dense_curves.py results/dense_coco128_cpu/detection
    python benchmarks/dense_curves.py results/dense_coco128_cpu/segmentation --metric val_miou
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from metaloss.core.harness.report import read_metrics


def unit_rows(metrics_jsonl: str) -> dict[tuple[str, int], dict[int, dict]]:
    """``{(method, seed): {epoch: row}}``; a re-logged epoch keeps its last row, as ``metric_series`` does."""
    units: dict[tuple[str, int], dict[int, dict]] = defaultdict(dict)
    for row in read_metrics(metrics_jsonl):
        if all(k in row for k in ("method", "seed", "epoch")):
            units[(row["method"], row["seed"])][row["epoch"]] = row
    return units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--metric", default="val_map_50", help="the selection metric per epoch")
    parser.add_argument("--reference", default="standard")
    parser.add_argument("--from-epoch", type=int, default=15)
    parser.add_argument("--low", type=float, default=0.005)
    args = parser.parse_args()
    units = unit_rows(f"{args.run_dir}/metrics.jsonl")
    if not units:
        raise SystemExit(f"no epoch rows in {args.run_dir}/metrics.jsonl")

    print(f"| method | seed | epochs | s / unit | max train_loss from epoch {args.from_epoch} | "
          "last weights |")
    print("|---|---|---|---|---|---|")
    for (method, seed), rows in sorted(units.items()):
        times = [r["time"] for r in rows.values()]
        late = [r["train_loss"] for e, r in rows.items() if e >= args.from_epoch and "train_loss" in r]
        last = rows[max(rows)]
        weights = ", ".join(f"{k[7:]} {v:.3f}" for k, v in last.items() if k.startswith("weight_"))
        late_max = f"{max(late):.1f}" if late else "-"
        seconds = max(times) - min(times)
        print(f"| {method} | {seed} | {len(rows)} | {seconds:.0f} | {late_max} | {weights or '-'} |")

    print(f"\n{args.metric} from epoch {args.from_epoch}, each method against {args.reference}:\n")
    print(f"| method | seed | epochs | ahead | median | {args.reference} median | below {args.low} | "
          f"{args.reference} below {args.low} |")
    print("|---|---|---|---|---|---|---|---|")
    for (method, seed), rows in sorted(units.items()):
        reference = units.get((args.reference, seed))
        if method == args.reference or reference is None:
            continue
        epochs = [e for e in sorted(rows) if e >= args.from_epoch and e in reference
                  and args.metric in rows[e] and args.metric in reference[e]]
        if not epochs:
            continue
        ours = [rows[e][args.metric] for e in epochs]
        theirs = [reference[e][args.metric] for e in epochs]
        print(f"| {method} | {seed} | {len(epochs)} | {sum(a > b for a, b in zip(ours, theirs))} | "
              f"{statistics.median(ours):.4f} | {statistics.median(theirs):.4f} | "
              f"{sum(a < args.low for a in ours)} | {sum(b < args.low for b in theirs)} |")


if __name__ == "__main__":
    main()
